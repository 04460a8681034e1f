"""Preflight: every permission and type problem in one error; value checks; API budget."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from crm_sync_mapping.conversions import Conversion
from crm_sync_mapping.model import FieldMapping, MatchRule, ObjectMapping, WriteMode
from target_salesforce_crm.errors import ApiError
from target_salesforce_crm.target.preflight import (
    ApiBudget,
    ApiBudgetError,
    PreflightError,
    ValueChecker,
    check_objects,
    estimate_calls,
)


def field(name: str, type_: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "length": extra.pop("length", 255),
            "createable": True, "updateable": True, "nillable": True, "filterable": True,
            "externalId": False, "idLookup": False, "defaultedOnCreate": False,
            "picklistValues": [], **extra}


CONTACT = {
    "name": "Contact", "createable": True, "updateable": True, "queryable": True,
    "fields": [
        field("Id", "id", length=18, createable=False, updateable=False, nillable=False,
              idLookup=True, defaultedOnCreate=True),
        field("LastName", length=80, nillable=False),
        field("Email", "email", length=80, idLookup=True),
        field("Personalization_User_Id__c", length=120, externalId=True, idLookup=True),
        field("Personalization_Engagement_Score__c", "double", precision=18, scale=4),
        field("Personalization_Last_Activity__c", "datetime"),
        field("Personalization_Tier__c", "picklist", restrictedPicklist=True, picklistValues=[
            {"value": v, "label": v, "active": True} for v in ("Gold", "Silver", "Bronze")]),
        field("Legacy_Score__c", "double", updateable=False, createable=False),
        field("Description", "textarea", filterable=False, length=32000),
    ],
}


def mapping(*fields: FieldMapping, **overrides: Any) -> ObjectMapping:
    settings: dict[str, Any] = {
        "sobject": "Contact", "stream": "users",
        "match": (MatchRule("Email", "emailAddress", ("email",)),),
        "fields": fields,
    }
    settings.update(overrides)
    return ObjectMapping(**settings)


def test_a_clean_mapping_passes() -> None:
    check_objects({"Contact": CONTACT}, [mapping(
        FieldMapping("Personalization_Engagement_Score__c", "engagementScore",
                     (Conversion("number"),)),
        FieldMapping("Personalization_Last_Activity__c", "lastActivity",
                     (Conversion("epoch_ms_to_datetime"),)),
        FieldMapping("Personalization_Tier__c", "attributes.plan", (Conversion(
            "value_map", value_map=(("gold", "Gold"), ("silver", "Silver"))),)),
    )])


def test_all_problems_are_reported_together_with_the_permission_to_grant() -> None:
    hidden_contact = {**CONTACT, "fields": [
        f for f in CONTACT["fields"] if f["name"] != "Personalization_Tier__c"]}
    broken = mapping(
        FieldMapping("Legacy_Score__c", "score", (Conversion("number"),)),
        FieldMapping("Personalization_Tier__c", "plan"),
        FieldMapping("Personalization_Last_Activity__c", "score", (Conversion("number"),)),
        match=(MatchRule("Description", "bio"),),
    )

    with pytest.raises(PreflightError) as caught:
        check_objects({"Contact": hidden_contact}, [broken])

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Preflight failed (4 problems): ")
    assert "grant Edit on Contact.Legacy_Score__c to the integration user's permission set" \
        in message
    assert "Contact.Personalization_Tier__c is missing or hidden from the integration user: " \
        "create it or grant Read and Edit on Contact.Personalization_Tier__c" in message
    assert "Contact.Description cannot be used to match: it is not filterable" in message
    assert "Contact.Personalization_Last_Activity__c is a datetime field but the mapping " \
        "writes number values" in message


def test_unknown_picklist_values_of_a_value_map_are_named() -> None:
    tier = FieldMapping("Personalization_Tier__c", "plan", (Conversion(
        "value_map", value_map=(("gold", "Gold"), ("plat", "Platinum"))),))

    with pytest.raises(PreflightError, match="no picklist value 'Platinum'"):
        check_objects({"Contact": CONTACT}, [mapping(tier)])


def test_object_permissions_and_upsert_requirements() -> None:
    read_only = {**CONTACT, "updateable": False, "createable": False}
    upsert = mapping(write=WriteMode("upsert", "Email"))

    with pytest.raises(PreflightError) as caught:
        check_objects({"Contact": read_only}, [upsert])

    problems = caught.value.problems
    assert "grant Edit on Contact (object permission) to the integration user's permission set" \
        in problems
    assert any(p.startswith("grant Create on Contact (object permission)") for p in problems)
    assert any("Contact.LastName is required to create a Contact: add it to "
               "write.create_defaults" in p for p in problems)


def test_upsert_needs_an_external_id_field() -> None:
    upsert = mapping(write=WriteMode("upsert", "Description", (FieldMapping("LastName", "name"),)))

    expected = re.escape("Contact.Description is not an External ID field")
    with pytest.raises(PreflightError, match=expected):
        check_objects({"Contact": CONTACT}, [upsert])


def test_value_checker_codes() -> None:
    checker = ValueChecker("Contact", CONTACT)

    problems = checker.check({
        "Id": "003", "Email": "not-an-email", "Personalization_Tier__c": "Platinum",
        "Personalization_Engagement_Score__c": "high", "LastName": None,
        "Personalization_Last_Activity__c": "yesterday",
        "Personalization_User_Id__c": "u" * 121,
    })

    assert sorted(p.code for p in problems) == [
        "PRECHECK_INVALID_EMAIL_ADDRESS",
        "PRECHECK_INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "PRECHECK_INVALID_TYPE",
        "PRECHECK_INVALID_TYPE",
        "PRECHECK_REQUIRED_FIELD_MISSING",
        "PRECHECK_STRING_TOO_LONG",
    ]
    assert checker.check({
        "Email": "a@b.co", "Personalization_Tier__c": "Gold",
        "Personalization_Engagement_Score__c": 0.5,
        "Personalization_Last_Activity__c": "2024-01-01T00:00:00.000Z",
    }) == []
    assert [p.field for p in checker.check_create({"Email": "a@b.co"})] == ["LastName"]
    number = checker.check({"Personalization_Engagement_Score__c": 1e20})
    assert [p.code for p in number] == ["PRECHECK_NUMBER_OUTSIDE_VALID_RANGE"]


class FakeLimits:
    """A client whose responses carry `Sforce-Limit-Info` (`api_usage`), or not."""

    def __init__(self, remaining: int, usage: tuple[int, int] | None = None) -> None:
        self.remaining = remaining
        self.api_usage = usage
        self.api_calls: Counter[str] = Counter()

    def limits(self) -> dict[str, Any]:
        self.api_calls["limits"] += 1
        return {"DailyApiRequests": {"Max": 15000, "Remaining": self.remaining}}


def test_budget_follows_the_limit_info_header_without_a_limits_call() -> None:
    client = FakeLimits(0, usage=(14_000, 15_000))
    budget = ApiBudget(0.25)

    budget.check(client, 250)
    with pytest.raises(ApiBudgetError, match=re.escape(
            "about 251 API calls needed but max_api_share 0.25 of the 1000 daily API requests "
            "remaining allows 250")):
        budget.check(client, 251)
    client.api_usage = (14_500, 15_000)
    with pytest.raises(ApiBudgetError):
        budget.check(client, 126)
    assert client.api_calls == {}
    assert (budget.remaining, budget.maximum) == (500, 15_000)


def test_budget_without_the_header_reads_limits_once_and_counts_down(
        caplog: pytest.LogCaptureFixture) -> None:
    client = FakeLimits(1000)
    budget = ApiBudget(0.25)

    with caplog.at_level("WARNING"):
        budget.check(client, 250)
    assert "no Sforce-Limit-Info header" in caplog.text
    client.api_calls["query"] += 400  # the run's own calls since
    assert budget.current(client) == 1000 - 400
    budget.check(client, 150)
    with pytest.raises(ApiBudgetError, match="of the 600 daily API requests remaining"):
        budget.check(client, 151)
    assert client.api_calls["limits"] == 1


def test_estimate_for_the_nightly_shape() -> None:
    # 25,000 users, Contact + Lead: 25 look-ups and 3 batches each at most.
    assert estimate_calls(25_000, 2, 1000, 10_000) == 2 * (25 + 2 + 4 * 3)
    assert estimate_calls(0, 2, 1000, 10_000) == 0


def test_field_names_ignore_case_like_salesforce() -> None:
    check_objects({"Contact": CONTACT}, [mapping(
        FieldMapping("personalization_engagement_score__c", "engagementScore",
                     (Conversion("number"),)),
        match=(MatchRule("EMAIL", "emailAddress", ("email",)),),
    )])
    checker = ValueChecker("Contact", CONTACT)
    assert [p.code for p in checker.check({"personalization_tier__c": "Platinum"})] == [
        "PRECHECK_INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    assert checker.check_create({"lastname": "L"}) == []


def test_budget_without_header_or_limits_stops_before_writing() -> None:
    class Refusing(FakeLimits):
        def limits(self) -> dict[str, Any]:
            raise ApiError(403, "INSUFFICIENT_ACCESS", "insufficient access rights")

    with pytest.raises(ApiBudgetError, match=r"no Sforce-Limit-Info header .* Salesforce "
                                             r"INSUFFICIENT_ACCESS .* View Setup"):
        ApiBudget(0.25).check(Refusing(0), 1)
