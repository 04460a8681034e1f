"""SOQL literal escaping, IN-list chunking and datetime literals."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from target_salesforce_crm import soql

# A SOQL string literal: quote, then escaped characters or anything but quote/backslash.
_LITERAL = re.compile(r"'(?:\\[\\'\"nrtbf]|[^'\\])*'")


def _unquote(literal: str) -> str:
    """Reverse of quote(), written independently: what Salesforce would read."""
    assert _LITERAL.fullmatch(literal), literal
    table = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b",
             "f": "\f"}
    return re.sub(r"\\(.)", lambda m: table[m.group(1)], literal[1:-1])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain@example.com", "'plain@example.com'"),
        ("O'Brien", r"'O\'Brien'"),
        ('say "hi"', r"""'say \"hi\"'"""),
        ("back\\slash", r"'back\\slash'"),
        ("line\nbreak\r\ttab", r"'line\nbreak\r\ttab'"),
        ("bell\bfeed\f", r"'bell\bfeed\f'"),
        ("Zoë Łódź 東京 😀", "'Zoë Łódź 東京 😀'"),
        ("", "''"),
    ],
)
def test_quote_escapes(value: str, expected: str) -> None:
    assert soql.quote(value) == expected
    assert _unquote(soql.quote(value)) == value


def test_quote_stops_injection() -> None:
    attack = "x' OR Name != '"
    literal = soql.quote(attack)
    assert literal == r"'x\' OR Name != \''"
    # The whole attack stays one literal: the statement has exactly one string token.
    statement = " ".join(("SELECT Id FROM Contact WHERE Email =", literal))
    assert _LITERAL.findall(statement) == [literal]
    assert _unquote(literal) == attack


def test_quote_backslash_before_quote_cannot_close_literal() -> None:
    attack = "x\\' OR Id != null OR Name = \\'"
    literal = soql.quote(attack)
    assert _LITERAL.fullmatch(literal)
    assert _unquote(literal) == attack


def test_quote_drops_control_characters_soql_cannot_express() -> None:
    assert soql.quote("a\x00b\x01c\x1fd\x7f") == "'abcd'"


def test_in_clauses_single_chunk_keeps_order_and_dedupes() -> None:
    clauses = list(soql.in_clauses("Email", ["b@x.io", "a@x.io", "b@x.io", "O'x@x.io"]))
    assert clauses == [r"Email IN ('b@x.io','a@x.io','O\'x@x.io')"]


def test_in_clauses_split_by_count() -> None:
    values = [f"v{i}" for i in range(2500)]
    clauses = list(soql.in_clauses("Name", values))
    assert [c.count(",") + 1 for c in clauses] == [1000, 1000, 500]
    assert _values_of(clauses) == values


def test_in_clauses_split_by_chars_for_long_emails() -> None:
    emails = [f"{'firstname.lastname.' * 5}{i:04d}@a-rather-long-domain-name.example.com"
              for i in range(1000)]
    assert sum(len(e) + 3 for e in emails) > 90_000  # too much for one statement
    clauses = list(soql.in_clauses("Email", emails))
    assert len(clauses) == 2
    assert all(len(c) <= 90_000 for c in clauses)
    assert _values_of(clauses) == emails


def test_in_clauses_respect_small_char_budget() -> None:
    values = [f"value-{i:03d}" for i in range(100)]
    clauses = list(soql.in_clauses("F__c", values, max_chars=200))
    assert all(len(c) <= 200 for c in clauses)
    assert len(clauses) > 1
    assert _values_of(clauses) == values


def test_in_clauses_empty_and_oversized() -> None:
    assert list(soql.in_clauses("Email", [])) == []
    with pytest.raises(ValueError, match="4000-character"):
        list(soql.in_clauses("Email", ["x" * 4001]))
    with pytest.raises(ValueError, match="max_chars=50"):
        list(soql.in_clauses("Email", ["y" * 60], max_chars=50))


def _values_of(clauses: list[str]) -> list[str]:
    out: list[str] = []
    for clause in clauses:
        assert clause.endswith(")")
        out.extend(_unquote(lit) for lit in _LITERAL.findall(clause))
    return out


def test_datetime_literal() -> None:
    assert soql.datetime_literal(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00Z"
    paris = timezone(timedelta(hours=2))
    assert (soql.datetime_literal(datetime(2024, 6, 1, 12, 30, 5, 999_999, tzinfo=paris))
            == "2024-06-01T10:30:05Z")
    assert soql.datetime_literal(datetime(2024, 1, 1, 8, 0)) == "2024-01-01T08:00:00Z"
