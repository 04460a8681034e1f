"""Look-up validation: one statement per chunk, rule priority, ambiguity, account names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from crm_sync_mapping.model import FuzzyRule, MatchRule, ObjectMapping
from target_salesforce_crm.target.matching import Candidate, ObjectMatcher, normalize_domain
from target_salesforce_crm.target.outcomes import SourceRef

CONTACT_DESCRIBE = {"fields": [
    {"name": "Id", "type": "id", "length": 18},
    {"name": "Email", "type": "email", "length": 80},
    {"name": "Personalization_User_Id__c", "type": "string", "length": 120},
    {"name": "LastModifiedDate", "type": "datetime"},
]}
ACCOUNT_DESCRIBE = {"fields": [
    {"name": "Id", "type": "id", "length": 18},
    {"name": "Name", "type": "string", "length": 255},
    {"name": "Website", "type": "url", "length": 255},
    {"name": "Personalization_Account_Id__c", "type": "string", "length": 120},
    {"name": "LastModifiedDate", "type": "datetime"},
]}


class FakeQueryClient:
    """Returns every stored row (the matcher decides client-side); records statements."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.statements: list[str] = []

    def soap_query(self, soql: str, *, include_deleted: bool = False,
                   batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        self.statements.append(soql)
        for row in self.rows:
            if "IsConverted = false" in soql and row.get("IsConverted"):
                continue
            yield row


def contact_mapping(**overrides: Any) -> ObjectMapping:
    settings: dict[str, Any] = {
        "sobject": "Contact", "stream": "users", "key": "id",
        "match": (
            MatchRule("Personalization_User_Id__c", "id", ("trim",)),
            MatchRule("Email", "emailAddress", ("email",)),
        ),
    }
    settings.update(overrides)
    return ObjectMapping(**settings)


def account_mapping(**overrides: Any) -> ObjectMapping:
    settings: dict[str, Any] = {
        "sobject": "Account", "stream": "accounts", "key": "id",
        "match": (
            MatchRule("Personalization_Account_Id__c", "id"),
            MatchRule("Name", "name"),
            MatchRule("Name", "name", ("company_name",)),
            MatchRule("Name", "name", ("company_name",),
                      fuzzy=FuzzyRule(85, "domain", "Website")),
        ),
    }
    settings.update(overrides)
    return ObjectMapping(**settings)


def candidates(records: list[dict[str, Any]], stream: str = "users") -> list[Candidate]:
    return [Candidate(SourceRef(stream, str(r["id"]), n), r) for n, r in enumerate(records)]


def contact(n: int, email: str, **extra: Any) -> dict[str, Any]:
    return {"Id": f"003{n:015d}", "Email": email, "Personalization_User_Id__c": None,
            "LastModifiedDate": "2024-01-01T00:00:00.000Z", **extra}


def test_one_statement_per_chunk_with_rules_ored_and_matching_ignores_case() -> None:
    rows = [contact(n, f"User{n}@Example.com") for n in range(2500)]
    client = FakeQueryClient(rows)
    matcher = ObjectMatcher(client, contact_mapping(), CONTACT_DESCRIBE, lookup_batch_size=1000)
    users = [{"id": f"u-{n}", "emailAddress": f"user{n}@example.COM"} for n in range(2500)]

    results = list(matcher.match(candidates(users)))

    assert len(client.statements) == 3
    assert matcher.lookup_calls == 3
    assert all(
        s.startswith("SELECT Id, LastModifiedDate, Personalization_User_Id__c, Email FROM Contact"
                     " WHERE (Personalization_User_Id__c IN (")
        and ") OR Email IN (" in s
        for s in client.statements
    )
    assert [r.status for r in results] == ["matched"] * 2500
    assert results[1234].ids == (f"003{1234:015d}",)
    assert results[1234].rule == "Email"


def test_rule_order_prefers_external_id_over_email() -> None:
    rows = [
        contact(1, "ada@example.com"),
        contact(2, "other@example.com", Personalization_User_Id__c="u-1"),
    ]
    matcher = ObjectMatcher(FakeQueryClient(rows), contact_mapping(), CONTACT_DESCRIBE)

    [result] = matcher.match(candidates([{"id": "u-1", "emailAddress": "ada@example.com"}]))

    assert result.status == "matched"
    assert result.ids == (f"003{2:015d}",)
    assert result.rule == "Personalization_User_Id__c"


def test_quotes_backslashes_and_unicode_are_escaped_and_still_match() -> None:
    tricky = ["o'brien@example.com", "back\\slash@example.com", "zoë@exämple.com",
              "x') OR Name != ('@example.com"]
    rows = [contact(n, email) for n, email in enumerate(tricky)]
    client = FakeQueryClient(rows)
    matcher = ObjectMatcher(client, contact_mapping(match=(MatchRule("Email", "email",
                                                                     ("email",)),)),
                            CONTACT_DESCRIBE)

    results = list(matcher.match(candidates(
        [{"id": f"u-{n}", "email": e.upper()} for n, e in enumerate(tricky)]
    )))

    [statement] = client.statements
    assert "'o\\'brien@example.com'" in statement
    assert "'back\\\\slash@example.com'" in statement
    assert "'x\\') or name != (\\'@example.com'" in statement
    assert "zoë@exämple.com" in statement
    assert [r.ids for r in results] == [(f"003{n:015d}",) for n in range(4)]


def test_values_longer_than_the_field_are_not_asked_and_stay_unmatched() -> None:
    client = FakeQueryClient([])
    matcher = ObjectMatcher(client, contact_mapping(match=(MatchRule("Email", "email"),)),
                            CONTACT_DESCRIBE)
    long_email = "a" * 90 + "@example.com"

    [result] = matcher.match(candidates([{"id": "u-1", "email": long_email}]))

    assert result.status == "unmatched"
    assert client.statements == []


def test_records_without_any_key_cost_no_call() -> None:
    client = FakeQueryClient([])
    matcher = ObjectMatcher(client, contact_mapping(), CONTACT_DESCRIBE)

    results = list(matcher.match(candidates([{"id": " ", "emailAddress": None}])))

    assert [r.status for r in results] == ["unmatched"]
    assert client.statements == []


@pytest.mark.parametrize(
    ("policy", "status", "ids"),
    [
        ("reject", "ambiguous", (f"003{1:015d}", f"003{2:015d}")),
        ("update_all", "matched", (f"003{1:015d}", f"003{2:015d}")),
        ("most_recent", "matched", (f"003{2:015d}",)),
    ],
)
def test_ambiguity_policies(policy: str, status: str, ids: tuple[str, ...]) -> None:
    rows = [
        contact(1, "twin@example.com", LastModifiedDate="2024-01-01T00:00:00.000Z"),
        contact(2, "TWIN@example.com", LastModifiedDate="2024-06-01T00:00:00.000Z"),
    ]
    matcher = ObjectMatcher(FakeQueryClient(rows), contact_mapping(ambiguity=policy),
                            CONTACT_DESCRIBE)

    [result] = matcher.match(candidates([{"id": "u-1", "emailAddress": "twin@example.com"}]))

    assert (result.status, result.ids) == (status, ids)


def test_most_recent_with_equal_dates_is_still_ambiguous() -> None:
    rows = [contact(1, "twin@example.com"), contact(2, "twin@example.com")]
    matcher = ObjectMatcher(FakeQueryClient(rows), contact_mapping(ambiguity="most_recent"),
                            CONTACT_DESCRIBE)

    [result] = matcher.match(candidates([{"id": "u-1", "emailAddress": "twin@example.com"}]))

    assert result.status == "ambiguous"


def test_converted_leads_are_excluded_in_the_where_clause() -> None:
    rows = [contact(1, "lead@example.com", IsConverted=True)]
    client = FakeQueryClient(rows)
    lead = contact_mapping(sobject="Lead", exclude_converted=True,
                           match=(MatchRule("Email", "email", ("email",)),))
    matcher = ObjectMatcher(client, lead, CONTACT_DESCRIBE)

    [result] = matcher.match(candidates([{"id": "u-1", "email": "lead@example.com"}]))

    assert result.status == "unmatched"
    assert client.statements[0].endswith(" AND IsConverted = false")


def account(n: int, name: str, website: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"Id": f"001{n:015d}", "Name": name, "Website": website,
            "Personalization_Account_Id__c": None,
            "LastModifiedDate": "2024-01-01T00:00:00.000Z", **extra}


def test_account_rules_id_then_exact_then_normalised_then_fuzzy_with_domain() -> None:
    rows = [
        account(1, "Initech", Personalization_Account_Id__c="initech"),
        account(2, "Globex"),
        account(3, "Example Corporation"),
        account(4, "Umbrella Holdings Group", "https://www.umbrella.com/about"),
        account(5, "Umbrella Holding Group", "umbrella.org"),
    ]
    client = FakeQueryClient(rows)
    matcher = ObjectMatcher(client, account_mapping(), ACCOUNT_DESCRIBE)
    inputs = [
        {"id": "initech", "name": "Something else"},
        {"id": "globex", "name": "Globex"},
        {"id": "example", "name": "Example Corp."},
        {"id": "umbrella", "name": "Umbrella Holdings Grp", "domain": "umbrella.com"},
        {"id": "nobody", "name": "Nobody Ltd"},
    ]

    results = list(matcher.match(candidates(inputs, "accounts")))

    assert [(r.status, r.ids, r.rule) for r in results] == [
        ("matched", (f"001{1:015d}",), "Personalization_Account_Id__c"),
        ("matched", (f"001{2:015d}",), "Name"),
        ("matched", (f"001{3:015d}",), "Name"),
        ("matched", (f"001{4:015d}",), "Name"),
        ("unmatched", (), None),
    ]
    # One look-up for the IN-able rules, one (lazy) read of the Account index.
    assert len(client.statements) == 2
    assert client.statements[1] == "SELECT Id, LastModifiedDate, Name, Website FROM Account"


def test_ambiguous_fuzzy_account_without_tie_breaker_is_reported() -> None:
    rows = [account(1, "Umbrella Holdings Group"), account(2, "Umbrella Holding Group")]
    matcher = ObjectMatcher(FakeQueryClient(rows), account_mapping(), ACCOUNT_DESCRIBE)

    [result] = matcher.match(candidates([{"id": "u", "name": "Umbrella Holdings Grp"}],
                                        "accounts"))

    assert result.status == "ambiguous"
    assert result.ids == (f"001{1:015d}", f"001{2:015d}")
    assert "2 Account records match on Name" in result.reason


def test_account_index_is_read_once_per_run_and_only_when_needed() -> None:
    rows = [account(1, "Globex"), account(2, "Example Corporation")]
    client = FakeQueryClient(rows)
    matcher = ObjectMatcher(client, account_mapping(), ACCOUNT_DESCRIBE)

    list(matcher.match(candidates([{"id": "g", "name": "Globex"}], "accounts")))
    assert len(client.statements) == 1  # exact name matched: no index needed

    list(matcher.match(candidates([{"id": "e", "name": "Example Corp"}], "accounts")))
    list(matcher.match(candidates([{"id": "e2", "name": "EXAMPLE, Corp."}], "accounts")))
    index_reads = [s for s in client.statements if "WHERE" not in s]
    assert len(index_reads) == 1


def test_normalize_domain() -> None:
    assert normalize_domain("https://www.Example.com/about") == "example.com"
    assert normalize_domain("example.com") == "example.com"
    assert normalize_domain("  ") is None
    assert normalize_domain(None) is None


def test_field_names_ignore_case_like_salesforce() -> None:
    rows = [contact(1, "ada@example.com")]
    mapping = contact_mapping(match=(MatchRule("email", "emailAddress", ("email",)),))
    matcher = ObjectMatcher(FakeQueryClient(rows), mapping, CONTACT_DESCRIBE)

    [result] = matcher.match(candidates([{"id": "u-1", "emailAddress": "ADA@example.com"}]))

    assert result.ids == (f"003{1:015d}",)
