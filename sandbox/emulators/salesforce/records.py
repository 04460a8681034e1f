"""Turn the data store's typed rows into the REST JSON record shape.

The store nests parent relationship fields as plain dicts (`{"Account": {"Name": ...}}`);
the wire format also names each nested record's sObject type, which only describe knows
(`ConvertedContact` is a Contact), so the mapping is looked up once per object and cached.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol


class Describer(Protocol):
    def describe(self, sobject: str) -> dict[str, Any]: ...


class RelationshipTypes:
    """`(sObject, relationship name) -> referenced sObject`, from describe."""

    def __init__(self, store: Describer) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, str]] = {}

    def target(self, sobject: str, relationship: str) -> str:
        with self._lock:
            known = self._cache.get(sobject)
        if known is None:
            known = {}
            for item in self._store.describe(sobject).get("fields", []):
                name, targets = item.get("relationshipName"), item.get("referenceTo") or []
                if name and targets:
                    known[name] = targets[0]
            with self._lock:
                self._cache[sobject] = known
        return known.get(relationship, relationship)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def record_url(version: str, sobject: str, record_id: Any) -> str:
    return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"


def rest_record(row: dict[str, Any], sobject: str, version: str,
                types: RelationshipTypes) -> dict[str, Any]:
    """A store row with `attributes` added, recursively for parent relationships."""
    attributes: dict[str, Any] = {"type": sobject}
    if row.get("Id"):
        attributes["url"] = record_url(version, sobject, row["Id"])
    shaped: dict[str, Any] = {"attributes": attributes}
    for name, value in row.items():
        if isinstance(value, dict):
            value = rest_record(value, types.target(sobject, name), version, types)
        shaped[name] = value
    return shaped


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(body: Any) -> str:
    """JSON text of a reply; tolerates date and decimal values from the store."""
    return json.dumps(body, default=_encode, separators=(",", ":"))
