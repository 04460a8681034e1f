"""Describe → JSON Schema, and the value normalisation that keeps records true to it.

Types come from the org's own `describe`, so a field added by an admin (or a type changed)
is right without a hand-written schema. A field the integration user cannot read is absent
from describe: discovery fails on it with the object, the field and the permission to grant,
because a silently missing column would blank that attribute downstream.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from target_salesforce_crm.errors import SalesforceError

STRING_TYPES = frozenset({
    "id", "string", "textarea", "email", "phone", "url", "picklist", "multipicklist",
    "reference", "combobox", "encryptedstring", "base64",
})
NUMBER_TYPES = frozenset({"double", "currency", "percent"})
INTEGER_TYPES = frozenset({"int", "long"})
# Compound and polymorphic fields carry structured or variable values: accept any JSON value.
ANY_TYPES = frozenset({"address", "location", "anyType", "complexvalue"})
ANY_JSON = ["string", "number", "integer", "boolean", "object", "array", "null"]


class FieldAccessError(SalesforceError):
    """A field the stream needs is not readable by the integration user (or does not exist)."""


def field_schema(field: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of one describe field.

    Only `id` fields are non-null: a deleted record, or one written before a field became
    required, may lack values the org requires today, and a target must not reject it.
    """
    sf_type = str(field.get("type", ""))
    nullable = sf_type != "id"
    schema: dict[str, Any]
    if sf_type in STRING_TYPES:
        schema = {"type": "string"}
    elif sf_type in NUMBER_TYPES:
        schema = {"type": "number"}
    elif sf_type in INTEGER_TYPES:
        schema = {"type": "integer"}
    elif sf_type == "boolean":
        schema = {"type": "boolean"}
    elif sf_type == "date":
        schema = {"type": "string", "format": "date"}
    elif sf_type == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif sf_type == "time":
        schema = {"type": "string", "format": "time"}
    else:
        return {"type": list(ANY_JSON)}
    if nullable:
        schema["type"] = [schema["type"], "null"]
    return schema


def fields_by_name(describe: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Describe fields keyed by lower-cased name (SOQL names are case-insensitive)."""
    return {str(f["name"]).lower(): f for f in describe.get("fields", [])}


def resolve_fields(
    describe: Mapping[str, Any], wanted: Mapping[str, str]
) -> dict[str, Mapping[str, Any]]:
    """Canonical describe field per wanted name; every unreadable one is named in ONE error.

    `wanted` maps a field name (any case) to where it was asked for, e.g. "mapping file
    transforms/crm-to-personalization.yml", so the message says what to change.
    """
    by_name = fields_by_name(describe)
    found: dict[str, Mapping[str, Any]] = {}
    missing: list[str] = []
    for name, origin in wanted.items():
        field = by_name.get(name.lower())
        if field is None:
            missing.append(_missing_text(describe, name, origin))
        else:
            found[str(field["name"])] = field
    if missing:
        sobject = describe.get("name", "?")
        raise FieldAccessError(
            f"{sobject} field(s) not readable by the integration user: {'; '.join(missing)}. "
            f"Grant Read access in the integration user's profile or permission set (Setup > "
            f"Object Manager > {sobject} > Fields & Relationships > <field> > Set Field-Level "
            f"Security), or remove the field where it is named, then run discovery again."
        )
    return found


def _missing_text(describe: Mapping[str, Any], name: str, origin: str) -> str:
    names = [str(f["name"]) for f in describe.get("fields", [])]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    hint = f", did you mean {close[0]}?" if close else ""
    return f"{name} (named in {origin}{hint})"


def object_schema(fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Stream schema from SOQL expression → describe field.

    A relationship field (`Campaign.Name`) becomes a nested, nullable object property
    (`Campaign: {Name}`), the shape REST returns and mapping source paths such as
    `Account.Name` read; schema flattening turns it into `Campaign__Name` if a target wants.
    """
    properties: dict[str, Any] = {}
    for expression, field in fields.items():
        if "." in expression:
            relation, name = expression.split(".", 1)
            parent = properties.setdefault(
                relation, {"type": ["object", "null"], "properties": {}}
            )
            parent["properties"][name] = field_schema(field)
        else:
            properties[expression] = field_schema(field)
    return {"type": "object", "properties": properties}


def columns_of(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """SOQL expressions a schema stands for: `Name`, and `Campaign.Name` for nested objects."""
    columns: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        nested = prop.get("properties")
        if isinstance(nested, Mapping) and nested:
            columns.extend(f"{name}.{sub}" for sub in nested)
        else:
            columns.append(name)
    return tuple(columns)


def property_at(schema: Mapping[str, Any], expression: str) -> Mapping[str, Any]:
    """The property schema of a SOQL expression (nested for relationship fields)."""
    node: Mapping[str, Any] = schema
    for step in expression.split("."):
        node = node.get("properties", {}).get(step, {})
    return node


def datetime_columns(schema: Mapping[str, Any]) -> frozenset[str]:
    """Expressions whose values must be normalised to RFC 3339."""
    return frozenset(
        column for column in columns_of(schema)
        if property_at(schema, column).get("format") == "date-time"
    )


def normalize_datetime(value: str) -> str:
    """`2024-01-01T00:00:00.000+0000` (REST) → `2024-01-01T00:00:00.000Z` (RFC 3339, UTC).

    Every datetime (and so every bookmark) then has one fixed-width shape, which keeps the
    values valid for `format: date-time` and makes string order equal time order.
    """
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    parsed = parsed.astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def typed_value(text: str | None, prop: Mapping[str, Any]) -> Any:
    """A CSV cell (Bulk API 2.0 results are all text) → the JSON value its schema declares.

    Bulk 2.0 query CSV writes null as an empty cell.
    """
    if text is None or text == "":
        return None
    types = prop.get("type")
    kinds = set(types) if isinstance(types, list) else {types}
    if "integer" in kinds and "string" not in kinds:
        return int(float(text)) if "." in text or "e" in text.lower() else int(text)
    if "number" in kinds and "string" not in kinds:
        return float(text)
    if "boolean" in kinds and "string" not in kinds:
        return text.strip().lower() == "true"
    if prop.get("format") == "date-time":
        return normalize_datetime(text)
    return text


def merge_origins(*groups: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Field name → first place it was asked for, case-insensitively de-duplicated."""
    merged: dict[str, str] = {}
    seen: set[str] = set()
    for group in groups:
        for name, origin in group:
            if name.lower() not in seen:
                seen.add(name.lower())
                merged[name] = origin
    return merged
