"""SOQL text built from untrusted values: string literals, IN lists, datetime literals.

User data (e-mail addresses, company names) ends up inside SOQL statements, so every value
goes through `quote`; nothing else in the package concatenates values into SOQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

# Escape sequences SOQL understands inside a quoted string (Salesforce SOQL reference,
# "Quoted String Escape Sequences"). Backslash is handled by the same table, so each
# character is escaped exactly once.
_ESCAPES = {
    "\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
    "\b": "\\b", "\f": "\\f",
}
# Other control characters have no SOQL escape and cannot travel in the SOAP API's XML;
# Salesforce cannot hold them in a text field either, so they are dropped from the literal.
_DROPPED = {chr(code): "" for code in (*range(0x20), 0x7F) if chr(code) not in _ESCAPES}
_TRANSLATION = str.maketrans({**_ESCAPES, **_DROPPED})

# Salesforce refuses a string literal longer than this many characters.
MAX_LITERAL_CHARS = 4_000


def quote(value: str) -> str:
    """`value` as a single-quoted SOQL string literal that cannot end early."""
    return "'" + str(value).translate(_TRANSLATION) + "'"


def in_clauses(field: str, values: Iterable[str], *, max_values: int = 1000,
               max_chars: int = 90_000) -> Iterator[str]:
    """`Field IN ('a','b')` conditions covering every distinct value, in input order.

    Chunks are bounded by count and by characters, because 1,000 long e-mail addresses can
    exceed what one statement (100,000 characters) or one request may carry.
    """
    if max_values < 1:
        raise ValueError(f"max_values must be at least 1, got {max_values}")
    prefix = f"{field} IN ("
    overhead = len(prefix) + 1  # the closing parenthesis
    chunk: list[str] = []
    size = overhead
    seen: set[str] = set()
    for value in values:
        if value in seen:
            continue
        seen.add(value)
        literal = quote(value)
        if len(literal) - 2 > MAX_LITERAL_CHARS:
            raise ValueError(
                f"{field}: value of {len(literal) - 2} characters exceeds Salesforce's "
                f"{MAX_LITERAL_CHARS}-character string literal limit: {value[:40]!r}...")
        added = len(literal) + (1 if chunk else 0)  # comma separator
        if overhead + len(literal) > max_chars:
            raise ValueError(
                f"{field}: one value alone ({len(literal)} characters quoted) does not fit "
                f"max_chars={max_chars}")
        if chunk and (len(chunk) >= max_values or size + added > max_chars):
            yield prefix + ",".join(chunk) + ")"
            chunk, size = [], overhead
            added = len(literal)
        chunk.append(literal)
        size += added
    if chunk:
        yield prefix + ",".join(chunk) + ")"


def datetime_literal(dt: datetime) -> str:
    """A SOQL datetime literal in UTC (unquoted), e.g. 2024-01-01T00:00:00Z.

    SOQL has no fractional seconds, so the value is floored to the second: with `>` or
    `>=` a floored bound can re-read a row, never skip one. A naive datetime is taken as UTC.
    """
    moment = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
