"""SOQL string literals built by the sandbox itself (record look-ups by Id)."""

from __future__ import annotations

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
            "\f": "\\f", '"': '\\"'}


def quote(value: str) -> str:
    """`value` as a quoted SOQL string literal, every special character escaped."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"
