"""Personalization sandbox: credentials, token flags and datasets, injected faults, ledger."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emulators import defaults

AUTH = (defaults.PZN_API_KEY_ID, defaults.PZN_API_KEY_SECRET)
EXPORT_ONLY = ("sandbox-export-key-id", "sandbox-export-key-secret")
EVENTS_ONLY = ("sandbox-events-key-id", "sandbox-events-key-secret")
OTHER_DATASET = ("sandbox-other-dataset-key-id", "sandbox-other-dataset-key-secret")
USERS = f"/api/dataset/{defaults.PZN_DATASET}/users.json"
EVENTS = f"/api2/authevent/{defaults.PZN_DATASET}"
EVENT = {"action": "CRM Sync", "user": {"id": "u-000001", "attributes": {"crmTier": "Gold"}}}


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    personalization_sandbox.reset()
    personalization_sandbox.admin("POST", "users", json=[
        {"id": "u-000001", "emailAddress": "ada@example.com", "attributes": {}}])
    personalization_sandbox.clear_ledger()
    return personalization_sandbox


def _call(sandbox: Any, method: str, path: str, auth: Any = AUTH,
          **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{sandbox.url}{path}", auth=auth,
                            verify=sandbox.ca_bundle, timeout=30, **kwargs)


@pytest.mark.parametrize("auth", [None, ("sandbox-key-id", "wrong"), ("nobody", "x")])
def test_wrong_or_missing_credentials_are_401_with_basic_challenge(
        sandbox: Any, auth: Any) -> None:
    answer = _call(sandbox, "GET", USERS, auth=auth)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert "wrong" not in answer.text
    assert sandbox.ledger()["calls"][0] | {"at": None} == {
        "kind": "users_export", "method": "GET", "path": USERS, "status": 401, "at": None}


def test_export_only_token_reads_but_cannot_send_events(sandbox: Any) -> None:
    assert _call(sandbox, "GET", USERS, auth=EXPORT_ONLY).status_code == 200
    refused = _call(sandbox, "POST", EVENTS, auth=EXPORT_ONLY, json=EVENT)
    assert refused.status_code == 403
    assert "Can send events" in refused.json()["message"]
    stored = sandbox.admin("GET", "users", params={"id": "u-000001"})[0]
    assert stored["attributes"] == {}


def test_events_only_token_cannot_export(sandbox: Any) -> None:
    refused = _call(sandbox, "GET", USERS, auth=EVENTS_ONLY)
    assert refused.status_code == 403
    assert "Can access API" in refused.json()["message"]
    assert _call(sandbox, "POST", EVENTS, auth=EVENTS_ONLY, json=EVENT).json()["errorCode"] == 0


def test_token_limited_to_another_dataset_is_403(sandbox: Any) -> None:
    refused = _call(sandbox, "GET", USERS, auth=OTHER_DATASET)
    assert refused.status_code == 403
    assert defaults.PZN_DATASET in refused.json()["message"]
    assert _call(sandbox, "POST", EVENTS, auth=OTHER_DATASET, json=EVENT).status_code == 403


def test_unknown_dataset_is_404(sandbox: Any) -> None:
    answer = _call(sandbox, "GET", "/api/dataset/nope/users.json")
    assert answer.status_code == 404
    assert "nope" in answer.json()["message"]


def test_rate_429_carries_retry_after(sandbox: Any) -> None:
    sandbox.faults(rate_429=1.0, retry_after=7)
    answer = _call(sandbox, "GET", USERS)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    sandbox.faults()
    assert _call(sandbox, "GET", USERS).status_code == 200
    assert [c["status"] for c in sandbox.ledger()["calls"]] == [429, 200]


def test_fail_next_answers_503_n_times_then_recovers(sandbox: Any) -> None:
    sandbox.faults(fail_next=2)
    statuses = [_call(sandbox, "GET", USERS).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert sandbox.admin("GET", "health") == {"ok": True}  # admin is never faulted


def test_seeded_rate_5xx_is_reproducible(sandbox: Any) -> None:
    runs = []
    for _ in range(2):
        sandbox.faults(rate_5xx=0.5, seed=11)
        runs.append([_call(sandbox, "GET", USERS).status_code for _ in range(12)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


def test_busy_fault_answers_error_code_3_and_applies_nothing(sandbox: Any) -> None:
    sandbox.faults(busy_next=1)
    busy = _call(sandbox, "POST", EVENTS, json=EVENT)
    assert busy.status_code == 200
    assert busy.json()["errorCode"] == 3
    assert sandbox.admin("GET", "users", params={"id": "u-000001"})[0]["attributes"] == {}
    assert _call(sandbox, "POST", EVENTS, json=EVENT).json()["errorCode"] == 0
    stored = sandbox.admin("GET", "users", params={"id": "u-000001"})[0]
    assert stored["attributes"] == {"crmTier": "Gold"}


@pytest.mark.parametrize("body", [{"rate_429": 2}, {"fail_next": -1}, {"bogus": 1}, []])
def test_invalid_fault_settings_are_refused(sandbox: Any, body: Any) -> None:
    answer = requests.post(f"{sandbox.url}/__admin/faults", json=body,
                           verify=sandbox.ca_bundle, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]


def test_reset_clears_data_ledger_and_faults(sandbox: Any) -> None:
    sandbox.faults(fail_next=5)
    _call(sandbox, "GET", USERS)
    sandbox.reset()
    status = sandbox.admin("GET", "status")
    assert status["counts"]["users"] == 0
    assert status["ledger"] == {"total": 0, "by_kind": {}}
    assert status["faults"]["fail_next"] == 0
    assert _call(sandbox, "GET", USERS).json() == []
