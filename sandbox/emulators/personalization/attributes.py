"""Attribute rules shared by the Event API and the ETL feeds.

Choices where the Personalization docs are silent (strict reading):
- Attribute names match `[A-Za-z][A-Za-z0-9_]*` (at most 64 characters).
- A dataset holds at most 100 user and 100 account attribute definitions; the identity
  attributes `emailAddress`, `sfcrmContactId` and `sfcrmLeadId` are predefined and count.
  An attribute is defined by its first write, with the type of that value (`string`,
  `number` or `boolean`; feed cells, being text, define `string`).
- Later writes must fit the type: JSON values of another type are rejected; feed text is
  converted (numbers as JSON would read them, booleans `true`/`false`).
- Values are scalars of at most 1,024 UTF-8 bytes. An Event API value `null` clears the
  attribute (feeds cannot clear: a blank cell leaves the stored value unchanged).
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_VALUE_BYTES = 1024
MAX_ATTRIBUTES_PER_DATASET = 100
IDENTITY_ATTRIBUTES = ("emailAddress", "sfcrmContactId", "sfcrmLeadId")
TYPES = ("string", "number", "boolean")


class InvalidAttribute(ValueError):
    """A value or name the dataset refuses; the message names the attribute."""


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidAttribute(
            f"attribute name {name!r} is invalid: use letters, digits and _ (start with a letter, "
            "at most 64 characters)")


def type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _from_text(name: str, kind: str, text: str) -> Any:
    if kind == "string":
        return text
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise InvalidAttribute(f"attribute {name} is boolean; {text!r} is not true or false")
    try:
        number = json.loads(text.strip())
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise InvalidAttribute(f"attribute {name} is a number; {text!r} is not a number")
    return number


class AttributeCatalog:
    """The attribute definitions of one entity (user or account) within one transaction."""

    def __init__(self, conn: sqlite3.Connection, entity: str) -> None:
        self._conn = conn
        self.entity = entity
        self.types = {row[0]: row[1] for row in conn.execute(
            "SELECT name, type FROM attribute_defs WHERE entity = ?", (entity,))}

    def ensure_room(self, names: list[str]) -> None:
        """Raise when defining the new names among `names` would pass the dataset limit."""
        new = [name for name in dict.fromkeys(names) if name not in self.types]
        if len(self.types) + len(new) > MAX_ATTRIBUTES_PER_DATASET:
            raise InvalidAttribute(
                f"{self.entity} attribute limit reached: the dataset has {len(self.types)} of "
                f"{MAX_ATTRIBUTES_PER_DATASET} {self.entity} attributes; cannot define "
                f"{', '.join(new)}")

    def declare_columns(self, names: list[str]) -> None:
        """Define a feed's new attribute columns (as strings) before any row is applied."""
        for name in names:
            check_name(name)
        self.ensure_room(names)
        for name in names:
            if name not in self.types:
                self._define(name, "string")

    def _define(self, name: str, kind: str) -> None:
        self.ensure_room([name])
        self._conn.execute(
            "INSERT INTO attribute_defs(entity, name, type) VALUES (?, ?, ?)",
            (self.entity, name, kind))
        self.types[name] = kind

    def accept_json(self, name: str, value: Any) -> Any:
        """A JSON value (Event API) checked against the definition; None means clear."""
        check_name(name)
        if value is None:
            return None
        if isinstance(value, dict | list):
            raise InvalidAttribute(f"attribute {name} must be a string, number or boolean")
        _check_size(name, value)
        kind = self.types.get(name)
        if kind is None:
            self._define(name, type_of(value))
        elif type_of(value) != kind:
            raise InvalidAttribute(f"attribute {name} is a {kind}; got {type_of(value)} {value!r}")
        return value

    def accept_text(self, name: str, text: str) -> Any:
        """A non-blank feed cell converted to the attribute's type."""
        _check_size(name, text)
        kind = self.types.get(name)
        if kind is None:
            self._define(name, "string")
            kind = "string"
        return _from_text(name, kind, text)


def _check_size(name: str, value: Any) -> None:
    size = len(str(value).encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise InvalidAttribute(
            f"attribute {name} value is {size} bytes; the limit is {MAX_VALUE_BYTES}")
