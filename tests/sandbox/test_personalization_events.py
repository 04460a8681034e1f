"""Personalization sandbox, Event API: identities, attribute updates, error codes."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emulators import defaults

AUTH = (defaults.PZN_API_KEY_ID, defaults.PZN_API_KEY_SECRET)
EVENTS = f"/api2/authevent/{defaults.PZN_DATASET}"


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    personalization_sandbox.reset()
    personalization_sandbox.admin("POST", "accounts", json=[
        {"id": "example-corp", "name": "Example Corp.", "attributes": {}}])
    personalization_sandbox.admin("POST", "users", json=[
        {"id": "u-000001", "emailAddress": "Ada@Example.com", "lastActivity": 5,
         "attributes": {"plan": "gold", "visits30d": 4}},
        {"id": "u-000002", "emailAddress": "bob@example.com",
         "attributes": {"sfcrmContactId": "003000000000001AAA"}},
        {"id": "u-000003", "emailAddress": "twin@example.com", "attributes": {}},
        {"id": "u-000004", "emailAddress": "twin@example.com", "attributes": {}},
    ])
    personalization_sandbox.clear_ledger()
    return personalization_sandbox


def _send(sandbox: Any, body: Any, **kwargs: Any) -> dict[str, Any]:
    answer = requests.post(f"{sandbox.url}{EVENTS}", json=body, auth=AUTH,
                           verify=sandbox.ca_bundle, timeout=30, **kwargs)
    assert answer.status_code == 200, answer.text
    reply: dict[str, Any] = answer.json()
    return reply


def _user(sandbox: Any, user_id: str) -> dict[str, Any]:
    user: dict[str, Any] = sandbox.admin("GET", "users", params={"id": user_id})[0]
    return user


def _event(user: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"action": "CRM Sync", "source": {"channel": "Server"},
            "flags": {"noCampaigns": True, "nonInteractive": True}, "user": user, **extra}


def test_event_by_user_id_updates_attributes(sandbox: Any) -> None:
    reply = _send(sandbox, _event({"id": "u-000001", "attributes": {
        "crmLeadStatus": "Working", "sfcrmContactId": "003000000000009AAA", "visits30d": 9}}))
    assert reply["errorCode"] == 0
    user = _user(sandbox, "u-000001")
    assert user["attributes"] == {"crmLeadStatus": "Working", "plan": "gold",
                                  "sfcrmContactId": "003000000000009AAA", "visits30d": 9}
    assert user["lastActivity"] == 5  # nonInteractive: not activity
    assert sandbox.ledger()["by_kind"] == {"event": 1}


def test_event_by_email_identity_is_case_sensitive(sandbox: Any) -> None:
    ok = _send(sandbox, _event({"attributes": {"emailAddress": "Ada@Example.com",
                                               "crmTier": "Gold"}}))
    assert ok == {"errorCode": 0, "userId": "u-000001"}
    wrong_case = _send(sandbox, _event({"attributes": {"emailAddress": "ada@example.com",
                                                       "crmTier": "Silver"}}))
    assert wrong_case["errorCode"] == 5
    assert "ada@example.com" in wrong_case["errorMessage"]
    assert _user(sandbox, "u-000001")["attributes"]["crmTier"] == "Gold"


def test_event_by_crm_contact_id_and_new_identity_values_are_stored(sandbox: Any) -> None:
    reply = _send(sandbox, _event({"attributes": {
        "sfcrmContactId": "003000000000001AAA", "sfcrmLeadId": "00Q000000000001AAA"}}))
    assert reply["userId"] == "u-000002"
    found = sandbox.admin("GET", "users", params={"id": "u-000002"})[0]
    assert found["attributes"]["sfcrmLeadId"] == "00Q000000000001AAA"
    again = _send(sandbox, _event({"attributes": {"sfcrmLeadId": "00Q000000000001AAA",
                                                  "crmLeadStatus": "Open"}}))
    assert again["userId"] == "u-000002"


def test_conflicting_or_ambiguous_identities_are_invalid(sandbox: Any) -> None:
    conflict = _send(sandbox, _event({"attributes": {
        "emailAddress": "Ada@Example.com", "sfcrmContactId": "003000000000001AAA"}}))
    assert conflict["errorCode"] == 5
    assert "different users" in conflict["errorMessage"]
    twins = _send(sandbox, _event({"attributes": {"emailAddress": "twin@example.com"}}))
    assert twins["errorCode"] == 5
    assert "ambiguous" in twins["errorMessage"]


def test_account_attributes_apply_and_link_the_user(sandbox: Any) -> None:
    reply = _send(sandbox, _event({"id": "u-000003", "attributes": {}},
                                  account={"id": "example-corp",
                                           "attributes": {"crmIndustry": "Retail"}}))
    assert reply["errorCode"] == 0
    account = sandbox.admin("GET", "accounts")[0]
    assert account["attributes"] == {"crmIndustry": "Retail"}
    user = _user(sandbox, "u-000003")
    assert (user["accountId"], user["accountName"]) == ("example-corp", "Example Corp.")
    unknown = _send(sandbox, _event({"id": "u-000003"}, account={"id": "nobody-inc"}))
    assert unknown["errorCode"] == 5


def test_interactive_event_moves_last_activity(sandbox: Any) -> None:
    _send(sandbox, {"action": "Visit", "user": {"id": "u-000001"}})
    assert _user(sandbox, "u-000001")["lastActivity"] > 1_700_000_000_000


def test_null_clears_an_attribute(sandbox: Any) -> None:
    _send(sandbox, _event({"id": "u-000001", "attributes": {"plan": None}}))
    assert _user(sandbox, "u-000001")["attributes"] == {"visits30d": 4}


@pytest.mark.parametrize(("body", "reason"), [
    ({"user": {"id": "u-000001"}}, "action"),
    ({"action": "", "user": {"id": "u-000001"}}, "action"),
    ({"action": "CRM Sync"}, "user"),
    ({"action": "CRM Sync", "user": {"attributes": {"crmTier": "Gold"}}}, "identity"),
    ({"action": "CRM Sync", "user": {"id": "u-404"}}, "u-404"),
    ({"action": "CRM Sync", "user": {"id": "u-000001", "attributes": {"visits30d": "many"}}},
     "visits30d"),
    ({"action": "CRM Sync", "user": {"id": "u-000001", "attributes": {"x": "é" * 600}}},
     "1024"),
    ({"action": "CRM Sync", "user": {"id": "u-000001", "attributes": {"bad name": 1}}},
     "bad name"),
    ({"action": "CRM Sync", "user": {"id": "u-000001", "attributes": {"nested": {"a": 1}}}},
     "nested"),
    ([1, 2], "JSON object"),
])
def test_invalid_events_answer_error_code_5_and_apply_nothing(
        sandbox: Any, body: Any, reason: str) -> None:
    before = _user(sandbox, "u-000001")
    reply = _send(sandbox, body)
    assert reply["errorCode"] == 5
    assert reason in reply["errorMessage"]
    assert _user(sandbox, "u-000001") == before


def test_body_that_is_not_json_is_error_code_5(sandbox: Any) -> None:
    answer = requests.post(f"{sandbox.url}{EVENTS}", data="action=x", auth=AUTH,
                           verify=sandbox.ca_bundle, timeout=30)
    assert answer.json()["errorCode"] == 5


def test_hundred_attribute_limit(sandbox: Any) -> None:
    # 3 identity attributes + plan + visits30d are defined; 95 more fit, the 96th does not.
    fits = {f"a{n}": "x" for n in range(95)}
    assert _send(sandbox, _event({"id": "u-000001", "attributes": fits}))["errorCode"] == 0
    over = _send(sandbox, _event({"id": "u-000001", "attributes": {"one_more": 1}}))
    assert over["errorCode"] == 5
    assert "limit" in over["errorMessage"]
