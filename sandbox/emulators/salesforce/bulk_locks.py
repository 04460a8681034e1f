"""Parent-record locks between Bulk batches processed at the same time.

Salesforce locks a child's parent while it writes the child (a Contact's Account, a
CampaignMember's Campaign), so two batches processed at once that touch children of the
same parent contend: the second waits (up to about 10 s in a real org) and its rows fail
`UNABLE_TO_LOCK_ROW` if the first still holds the parent. A batch here keeps the parents
it locked until it ends, which is what makes records ordered by parent (one parent's
children in one batch) or a Serial job the cure, as Salesforce's guidance says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from emulators.salesforce.ids import normalize_id
from emulators.salesforce.soql_text import quote

# Child object -> the reference field whose record Salesforce locks with it.
PARENT_FIELDS = {"Contact": "AccountId", "CampaignMember": "CampaignId"}


class RecordReader(Protocol):
    def records(self, sobject: str, where: str | None = None,
                fields: list[str] | None = None) -> list[dict[str, Any]]: ...


class ParentLocks:
    """Which batch holds which parent; waiting batches are woken when one releases."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._holder: dict[str, str] = {}
        self._held: dict[str, set[str]] = {}

    def acquire(self, batch_id: str, parents: Iterable[str], wait: float) -> set[str]:
        """Lock `parents` for the batch; the ones still held by others after `wait` s.

        Parents obtained stay locked even when others are refused, as a real transaction
        keeps what it locked until it ends.
        """
        wanted = set(parents)
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                for parent in list(wanted):
                    holder = self._holder.get(parent)
                    if holder is None or holder == batch_id:
                        self._holder[parent] = batch_id
                        self._held.setdefault(batch_id, set()).add(parent)
                        wanted.discard(parent)
                remaining = deadline - time.monotonic()
                if not wanted or remaining <= 0:
                    return wanted
                self._changed.wait(remaining)

    def release(self, batch_id: str) -> None:
        with self._changed:
            for parent in self._held.pop(batch_id, set()):
                del self._holder[parent]
            self._changed.notify_all()


def _value(record: dict[str, Any], name: str) -> Any:
    """A field of a Bulk record; Salesforce reads field names case-insensitively."""
    for key, value in record.items():
        if key.lower() == name.lower():
            return value
    return None


def parents_of(store: RecordReader, sobject: str, operation: str,
               external_id_field: str | None, records: Sequence[dict[str, Any]]) -> list[set[str]]:
    """The parent ids each record locks: the stored parent of the row it writes, and the
    new one when the record sets it. Empty sets for objects without a locking parent."""
    field = PARENT_FIELDS.get(sobject)
    if field is None:
        return [set() for _ in records]
    key_field = "Id" if operation in ("update", "delete") else external_id_field
    stored: dict[str, str] = {}
    keys = [] if key_field is None else [_key(_value(r, key_field), key_field) for r in records]
    wanted = sorted({key for key in keys if key})
    if wanted and key_field is not None:
        rows = store.records(sobject, f"{key_field} IN ({', '.join(map(quote, wanted))})",
                             [key_field, field])
        for row in rows:
            key = _key(row.get(key_field), key_field)
            if key and row.get(field):
                stored[key] = _key(row[field], "Id") or ""
    result: list[set[str]] = []
    for position, record in enumerate(records):
        parents = {stored.get(keys[position]) if keys and keys[position] else None,
                   _key(_value(record, field), "Id")}
        result.append({parent for parent in parents if parent})
    return result


def _key(value: Any, field: str) -> str | None:
    """Ids compared on their 15 case-sensitive characters; other keys as text."""
    if value is None or value == "":
        return None
    if field.lower() == "id":
        normal = normalize_id(str(value))
        return normal[:15] if normal else None
    return str(value)
