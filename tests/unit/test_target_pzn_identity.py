"""target-personalization identity check: the API's resolution rule, from an exported index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tap_personalization.target.changes import DEFAULT_IDENTITY_ATTRIBUTES
from tap_personalization.target.identity import IdentityIndex, export_rows

USERS = [
    {"id": "u-1", "emailAddress": "Ada@Example.com", "attributes": {}},
    {"id": "u-2", "emailAddress": "bob@example.com",
     "attributes": {"sfcrmContactId": "003B"}},
    # list-shaped attributes, as some payloads serve them
    {"id": "u-3", "emailAddress": None,
     "attributes": [{"name": "sfcrmLeadId", "value": "00QC", "updated": 1}]},
    {"id": "u-4", "emailAddress": "twin@example.com", "attributes": {}},
    {"id": "u-5", "emailAddress": "twin@example.com", "attributes": {}},
    {"emailAddress": "no-id@example.com"},
]


EXACT = [(attribute, ()) for attribute in DEFAULT_IDENTITY_ATTRIBUTES]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IdentityIndex]:
    found = IdentityIndex(tmp_path, [*EXACT, ("emailAddress", ("email",))])
    assert found.load_users(USERS) == 5
    assert found.load_accounts([{"id": "example-corp"}, {"name": "no id"}]) == 1
    yield found
    found.close()


def test_values_compare_exactly_like_the_api(index: IdentityIndex) -> None:
    assert index.resolve([("emailAddress", "Ada@Example.com")]).user_id == "u-1"
    unknown = index.resolve([("emailAddress", "ada@example.com")])
    assert unknown.user_id is None
    assert (unknown.outcome, unknown.reason) == ("unmatched", "unknown_identity")
    assert "emailAddress='ada@example.com'" in unknown.message


def test_a_rules_normalisers_apply_to_personalizations_values_too(
    index: IdentityIndex,
) -> None:
    found = index.resolve([("emailAddress", "ada@example.com")], [("email",)])
    assert found.user_id == "u-1"
    assert found.links == ()  # found: the stored "Ada@Example.com" is left as it is
    index.learn("u-2", [("emailAddress", " Bob.New@Example.com")])
    assert index.resolve([("emailAddress", "bob.new@example.com")], [("email",)]).user_id == "u-2"
    assert index.resolve([("emailAddress", " Bob.New@Example.com")]).user_id == "u-2"


def test_found_user_gets_the_identity_values_it_lacks_as_links(index: IdentityIndex) -> None:
    found = index.resolve([("sfcrmContactId", "003A"), ("emailAddress", "Ada@Example.com")])
    assert found.user_id == "u-1"
    assert found.links == (("sfcrmContactId", "003A"),)
    index.learn("u-1", found.links)
    assert index.resolve([("sfcrmContactId", "003A")]).user_id == "u-1"


def test_list_shaped_attributes_are_indexed(index: IdentityIndex) -> None:
    assert index.resolve([("sfcrmLeadId", "00QC")]).user_id == "u-3"
    assert index.resolve([("sfcrmContactId", "003B")]).user_id == "u-2"


def test_shared_value_is_ambiguous_and_disagreeing_values_conflict(index: IdentityIndex) -> None:
    twin = index.resolve([("emailAddress", "twin@example.com")])
    assert (twin.outcome, twin.reason) == ("rejected", "ambiguous_identity")
    assert "u-4" in twin.message
    conflict = index.resolve([("sfcrmContactId", "003B"), ("emailAddress", "Ada@Example.com")])
    assert (conflict.outcome, conflict.reason) == ("rejected", "conflicting_identity")
    refusal = conflict.refusal("contacts", "Contact", "003X", {"k": "v"})
    assert (refusal.stream, refusal.key, refusal.details) == ("contacts", "003X", {"k": "v"})


def test_learning_replaces_the_users_previous_value(index: IdentityIndex) -> None:
    index.learn("u-2", [("sfcrmContactId", "003NEW")])
    assert index.resolve([("sfcrmContactId", "003NEW")]).user_id == "u-2"
    assert index.resolve([("sfcrmContactId", "003B")]).user_id is None


def test_accounts(index: IdentityIndex) -> None:
    assert index.account_exists("example-corp")
    assert not index.account_exists("other")


def test_export_rows_pages_until_the_first_empty_page() -> None:
    calls: list[tuple[str, int, int]] = []

    def read_page(export: str, *, page: int, page_size: int) -> list[Any]:
        calls.append((export, page, page_size))
        rows = [{"id": f"u-{n}"} for n in range(5)]
        return rows[page * page_size:(page + 1) * page_size]

    assert [row["id"] for row in export_rows(read_page, "users", 2)] == [
        "u-0", "u-1", "u-2", "u-3", "u-4"]
    assert calls == [("users", 0, 2), ("users", 1, 2), ("users", 2, 2), ("users", 3, 2)]
