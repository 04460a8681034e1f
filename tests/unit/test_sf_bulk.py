"""Bulk API 1.0 driver: job lifecycle, batch limits, polling backoff, results, re-auth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from target_salesforce_crm import client
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.target import bulk
from target_salesforce_crm.target.bulk import BatchTooLarge, BulkClient, BulkTimeout

AUTH_URL = "https://login.example.test"
INSTANCE = "https://org.my.example.test"
JOBS = f"{INSTANCE}/services/async/59.0/job"


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(bulk, "sleep", waits.append)
    monkeypatch.setattr(client, "sleep", waits.append)
    return waits


@pytest.fixture
def sf(requests_mock: Any) -> SalesforceClient:
    tokens = iter(["token-1", "token-2", "token-3"])
    requests_mock.post(f"{AUTH_URL}/services/oauth2/token", json=lambda request, context: {
        "access_token": next(tokens), "instance_url": INSTANCE})
    return SalesforceClient({"auth_url": AUTH_URL, "client_id": "c", "client_secret": "s"})


def _info(batch_id: str, state: str, message: str | None = None) -> dict[str, Any]:
    return {"id": batch_id, "jobId": "750J", "state": state, "stateMessage": message,
            "numberRecordsProcessed": 0, "numberRecordsFailed": 0}


def _listing(*infos: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"batchInfo": list(infos)}}


def test_update_job_lifecycle(sf: SalesforceClient, requests_mock: Any,
                              slept: list[float]) -> None:
    create = requests_mock.post(JOBS, status_code=201, json={"id": "750J", "state": "Open"})
    add = requests_mock.post(f"{JOBS}/750J/batch", [
        {"status_code": 201, "json": _info("751A", "Queued")},
        {"status_code": 201, "json": _info("751B", "Queued")},
    ])
    close = requests_mock.post(f"{JOBS}/750J", json={"id": "750J", "state": "Closed"})
    poll = requests_mock.get(f"{JOBS}/750J/batch", [
        _listing(_info("751A", "Queued"), _info("751B", "Queued")),
        _listing(_info("751A", "Completed"), _info("751B", "InProgress")),
        _listing(_info("751A", "Completed"),
                 _info("751B", "Failed", "UNABLE_TO_LOCK_ROW: unable to obtain exclusive "
                                         "access to this record")),
    ])
    result_rows = [{"success": True, "created": False, "id": "003A", "errors": []},
                   {"success": False, "created": False, "id": None, "errors": [
                       {"statusCode": "INVALID_EMAIL_ADDRESS", "message": "bad", "fields": []}]}]
    result = requests_mock.get(f"{JOBS}/750J/batch/751A/result", json=result_rows)

    driver = BulkClient(sf)
    job_id = driver.create_job("update", "Contact")
    first = driver.add_batch(job_id, [{"Id": "003A", "Email": "a@x.io"},
                                      {"Id": "003B", "Email": "not-an-email"}])
    second = driver.add_batch(job_id, [{"Id": "003C", "Title": "Ünïcode"}])
    driver.close_job(job_id)
    finished = list(driver.wait(job_id, [first, second]))

    assert create.last_request.json() == {"operation": "update", "object": "Contact",
                                          "contentType": "JSON", "concurrencyMode": "Parallel"}
    assert create.last_request.headers["X-SFDC-Session"] == "token-1"
    assert create.last_request.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert [r.json() for r in add.request_history] == [
        [{"Id": "003A", "Email": "a@x.io"}, {"Id": "003B", "Email": "not-an-email"}],
        [{"Id": "003C", "Title": "Ünïcode"}]]
    assert close.last_request.json() == {"state": "Closed"}
    assert [(b.batch_id, b.state) for b in finished] == [("751A", "Completed"),
                                                          ("751B", "Failed")]
    assert finished[0].rows == result_rows
    assert finished[0].state_message is None
    assert finished[1].rows == []
    assert finished[1].state_message is not None
    assert finished[1].state_message.startswith("UNABLE_TO_LOCK_ROW")
    assert poll.call_count == 3  # one listing per round, not one GET per batch
    assert result.call_count == 1  # results only for the Completed batch
    assert slept == [0.5, 0.75]
    assert sf.api_calls == {"auth": 1, "bulk": 1 + 2 + 1 + 3 + 1}


def test_poll_interval_grows_to_its_cap(sf: SalesforceClient, requests_mock: Any,
                                       slept: list[float]) -> None:
    rounds = [_listing(_info("751A", "InProgress"))] * 6 + [_listing(_info("751A", "Completed"))]
    requests_mock.get(f"{JOBS}/750J/batch", rounds)
    requests_mock.get(f"{JOBS}/750J/batch/751A/result", json=[{"success": True}])
    driver = BulkClient(sf, poll_initial=0.5, poll_max=2.0)
    assert [b.rows for b in driver.wait("750J", ["751A"])] == [[{"success": True}]]
    assert slept == [0.5, 0.75, 1.125, 1.6875, 2.0, 2.0]


def test_poll_timeout_names_the_batches(sf: SalesforceClient, requests_mock: Any,
                                        slept: list[float]) -> None:
    poll = requests_mock.get(f"{JOBS}/750J/batch", **_listing(_info("751A", "Queued")))
    driver = BulkClient(sf, poll_initial=1.0, poll_max=1.0, poll_timeout=3.0)
    with pytest.raises(BulkTimeout, match=r"750J: 1 batch\(es\) still unfinished after 3s"):
        list(driver.wait("750J", ["751A"]))
    assert slept == [1.0, 1.0, 1.0]
    assert poll.call_count == 4


def test_not_processed_batch_yields_no_rows(sf: SalesforceClient, requests_mock: Any,
                                            slept: list[float]) -> None:
    requests_mock.get(f"{JOBS}/750J/batch", **_listing(_info("751A", "NotProcessed", "")))
    [batch] = list(BulkClient(sf).wait("750J", ["751A"]))
    assert (batch.state, batch.rows, batch.state_message) == ("NotProcessed", [], None)
    assert slept == []


def test_upsert_and_abort(sf: SalesforceClient, requests_mock: Any) -> None:
    create = requests_mock.post(JOBS, status_code=201, json={"id": "750U"})
    abort = requests_mock.post(f"{JOBS}/750U", json={"id": "750U", "state": "Aborted"})
    driver = BulkClient(sf)
    job_id = driver.create_job("upsert", "Contact",
                               external_id_field="Personalization_User_Id__c")
    driver.abort_job(job_id)
    assert create.last_request.json()["externalIdFieldName"] == "Personalization_User_Id__c"
    assert abort.last_request.json() == {"state": "Aborted"}
    with pytest.raises(ValueError, match="needs external_id_field"):
        driver.create_job("upsert", "Contact")
    with pytest.raises(ValueError, match="'merge' is not one of"):
        driver.create_job("merge", "Contact")


def test_batch_limits_checked_before_sending(sf: SalesforceClient, requests_mock: Any) -> None:
    add = requests_mock.post(f"{JOBS}/750J/batch", status_code=201, json={"id": "751"})
    driver = BulkClient(sf)
    with pytest.raises(BatchTooLarge, match=r"10001 records exceeds .* 10000-record limit"):
        driver.add_batch("750J", [{"Id": f"003{i}"} for i in range(10_001)])
    big = [{"Id": f"003{i:05d}", "Description": "x" * 1_100} for i in range(10_000)]
    assert len(json.dumps(big)) > bulk.MAX_BATCH_BYTES
    with pytest.raises(BatchTooLarge, match="10000000-byte limit"):
        driver.add_batch("750J", big)
    with pytest.raises(BatchTooLarge, match="at least one record"):
        driver.add_batch("750J", [])
    assert add.call_count == 0
    assert driver.add_batch("750J", [{"Id": f"003{i}"} for i in range(10_000)]) == "751"


def test_session_expiry_mid_job_recovers(sf: SalesforceClient, requests_mock: Any,
                                         slept: list[float]) -> None:
    expired = {"status_code": 400, "json": {"exceptionCode": "InvalidSessionId",
                                            "exceptionMessage": "Invalid session id"}}
    poll = requests_mock.get(f"{JOBS}/750J/batch", [
        _listing(_info("751A", "InProgress")), expired, _listing(_info("751A", "Completed"))])
    requests_mock.get(f"{JOBS}/750J/batch/751A/result", json=[{"success": True}])
    [batch] = list(BulkClient(sf).wait("750J", ["751A"]))
    assert batch.state == "Completed"
    assert [r.headers["X-SFDC-Session"] for r in poll.request_history] == [
        "token-1", "token-1", "token-2"]
    assert sf.api_calls["auth"] == 2


def test_unknown_batch_is_an_error(sf: SalesforceClient, requests_mock: Any) -> None:
    requests_mock.get(f"{JOBS}/750J/batch", **_listing(_info("751A", "Completed")))
    with pytest.raises(bulk.SalesforceError, match="batch 751Z is not in the job's batch list"):
        list(BulkClient(sf).wait("750J", ["751Z"]))


def test_check_is_one_look_without_sleeping(sf: SalesforceClient, requests_mock: Any,
                                            slept: list[float]) -> None:
    listing = requests_mock.get(f"{JOBS}/750J/batch", **_listing(
        _info("751A", "Completed"), _info("751B", "InProgress"), _info("751C", "Queued")))
    result = requests_mock.get(f"{JOBS}/750J/batch/751A/result", json=[{"success": True}])

    finished, unfinished = BulkClient(sf).check("750J", ["751A", "751B", "751C"])

    assert [(b.batch_id, b.rows) for b in finished] == [("751A", [{"success": True}])]
    assert unfinished == ["751B", "751C"]
    assert (listing.call_count, result.call_count) == (1, 1)
    assert slept == []


def test_wait_can_leave_some_batches_unfinished(sf: SalesforceClient, requests_mock: Any,
                                                slept: list[float]) -> None:
    requests_mock.get(f"{JOBS}/750J/batch", [
        _listing(_info("751A", "InProgress"), _info("751B", "Queued")),
        _listing(_info("751A", "Completed"), _info("751B", "InProgress")),
    ])
    requests_mock.get(f"{JOBS}/750J/batch/751A/result", json=[{"success": True}])

    finished = list(BulkClient(sf).wait("750J", ["751A", "751B"], leave=1))

    assert [b.batch_id for b in finished] == ["751A"]
    assert slept == [0.5]
