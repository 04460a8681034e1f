"""Bulk API 1.0 of the Salesforce sandbox: async batch states, results, limits, faults."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

FINAL = ("Completed", "Failed", "NotProcessed")
LOCK_MESSAGE = "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


class Bulk:
    """A minimal Bulk 1.0 client for the tests, one HTTP call per method."""

    def __init__(self, sandbox: Any) -> None:
        self.base = f"{sandbox.url}/services/async/59.0"
        self.ca = sandbox.ca_bundle
        self.headers = {"X-SFDC-Session": sandbox.salesforce_token()["access_token"]}

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.base}/{path}", headers=self.headers,
                                verify=self.ca, timeout=60, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.raw(method, path, **kwargs)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def job(self, operation: str, sobject: str = "Contact", **extra: Any) -> str:
        body = {"operation": operation, "object": sobject, "contentType": "JSON", **extra}
        info = self.ok("POST", "job", json=body)
        assert info["state"] == "Open"
        return str(info["id"])

    def batch(self, job_id: str, records: list[dict[str, Any]]) -> str:
        info = self.ok("POST", f"job/{job_id}/batch", json=records)
        assert info["state"] == "Queued"
        assert info["jobId"] == job_id
        return str(info["id"])

    def wait(self, job_id: str, batch_id: str) -> tuple[dict[str, Any], list[str]]:
        """Poll until the batch is final; also returns every state seen on the way."""
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self.ok("GET", f"job/{job_id}/batch/{batch_id}")
            if not seen or seen[-1] != info["state"]:
                seen.append(info["state"])
            if info["state"] in FINAL:
                return info, seen
            time.sleep(0.02)
        raise AssertionError(f"batch {batch_id} never finished; states seen {seen}")

    def wait_until(self, job_id: str, batch_id: str, state: str) -> None:
        deadline = time.monotonic() + 60
        while self.ok("GET", f"job/{job_id}/batch/{batch_id}")["state"] != state:
            assert time.monotonic() < deadline, f"batch {batch_id} never reached {state}"
            time.sleep(0.02)

    def watch(self, job_id: str) -> dict[str, list[str]]:
        """Poll the job's batch list until all are final; the states each batch went through."""
        seen: dict[str, list[str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batches = self.ok("GET", f"job/{job_id}/batch")["batchInfo"]
            for info in batches:
                states = seen.setdefault(info["id"], [])
                if not states or states[-1] != info["state"]:
                    states.append(info["state"])
            if all(info["state"] in FINAL for info in batches):
                return seen
            time.sleep(0.02)
        raise AssertionError(f"batches of {job_id} never finished; states seen {seen}")

    def close(self, job_id: str) -> dict[str, Any]:
        info: dict[str, Any] = self.ok("POST", f"job/{job_id}", json={"state": "Closed"})
        return info


def seed(sandbox: Any, rows: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = sandbox.admin("POST", "records/Contact", json=rows)
    return ids


def test_update_lifecycle_async_states_and_results_in_request_order(
        salesforce_sandbox: Any) -> None:
    ids = seed(salesforce_sandbox, [{"LastName": f"L{i}", "Email": f"u{i}@example.com"}
                                    for i in range(3)])
    bulk = Bulk(salesforce_sandbox)
    salesforce_sandbox.faults(batch_delay_seconds=0.4)
    salesforce_sandbox.clear_ledger()

    # Serial: the second batch waits, Queued, while the first is processed.
    job_id = bulk.job("update", concurrencyMode="Serial")
    first = bulk.batch(job_id, [{"Id": ids[0], "Title": "Boss"},
                                {"Id": ids[1], "Email": "not-an-email"},
                                {"Id": ids[2], "Title": "Clerk"}])
    second = bulk.batch(job_id, [{"Id": ids[0], "Department": "Ops"}])
    states = bulk.watch(job_id)
    first_info = bulk.ok("GET", f"job/{job_id}/batch/{first}")
    second_info = bulk.ok("GET", f"job/{job_id}/batch/{second}")
    closed = bulk.close(job_id)
    results = bulk.ok("GET", f"job/{job_id}/batch/{first}/result")

    assert list(states) == [first, second]
    assert states[second] == ["Queued", "InProgress", "Completed"]
    assert states[first][-2:] == ["InProgress", "Completed"]
    assert (first_info["numberRecordsProcessed"], first_info["numberRecordsFailed"]) == (3, 1)
    assert [r["success"] for r in results] == [True, False, True]
    assert [r["id"] for r in results] == [ids[0], None, ids[2]]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert all(r["created"] is False for r in results)
    assert second_info["state"] == "Completed"
    assert closed["state"] == "Closed"
    assert (closed["numberBatchesTotal"], closed["numberBatchesCompleted"],
            closed["numberRecordsProcessed"], closed["numberRecordsFailed"]) == (2, 2, 4, 1)
    stored = {row["Id"]: row for row in salesforce_sandbox.admin(
        "GET", "records/Contact", params={"fields": "Id,Title,Email,Department"})}
    assert stored[ids[0]]["Title"] == "Boss"
    assert stored[ids[0]]["Department"] == "Ops"
    assert stored[ids[1]]["Email"] == "u1@example.com"
    by_kind = salesforce_sandbox.ledger()["by_kind"]
    assert (by_kind["bulk_job"], by_kind["bulk_batch"], by_kind["bulk_result"]) == (2, 2, 1)
    assert by_kind["bulk_poll"] >= 3
    limits = salesforce_sandbox.admin("GET", "status")["limits"]
    assert limits["DailyBulkApiBatches"]["Remaining"] == 15_000 - 2


def test_insert_and_upsert_by_external_id(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    missing_ext = bulk.raw("POST", "job", json={"operation": "upsert", "object": "Contact",
                                                "contentType": "JSON"})
    assert missing_ext.status_code == 400
    assert missing_ext.json()["exceptionCode"] == "InvalidJob"

    job_id = bulk.job("upsert", externalIdFieldName="Personalization_User_Id__c")
    first = bulk.batch(job_id, [{"Personalization_User_Id__c": "u-000001", "LastName": "A"}])
    bulk.wait(job_id, first)
    second = bulk.batch(job_id, [{"Personalization_User_Id__c": "u-000001", "LastName": "B"}])
    bulk.wait(job_id, second)

    created = bulk.ok("GET", f"job/{job_id}/batch/{first}/result")
    updated = bulk.ok("GET", f"job/{job_id}/batch/{second}/result")
    assert created[0]["created"] is True
    assert updated[0]["created"] is False
    assert updated[0]["id"] == created[0]["id"]
    rows = salesforce_sandbox.admin("GET", "records/Contact", params={"fields": "Id,LastName"})
    assert rows == [{"Id": created[0]["id"], "LastName": "B"}]


def test_more_than_10000_records_are_refused(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("insert")
    answer = bulk.raw("POST", f"job/{job_id}/batch",
                      json=[{"LastName": f"L{i}"} for i in range(10_001)])

    assert answer.status_code == 400
    assert answer.json() == {
        "exceptionCode": "InvalidBatch",
        "exceptionMessage": "Exceeded number of records: 10001. Number of records should be "
                            "less than or equal to 10000"}
    assert bulk.ok("GET", f"job/{job_id}/batch") == {"batchInfo": []}
    limits = salesforce_sandbox.admin("GET", "status")["limits"]
    assert limits["DailyBulkApiBatches"]["Remaining"] == 15_000


def test_more_than_10_mb_is_refused(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("insert")
    answer = bulk.raw("POST", f"job/{job_id}/batch",
                      json=[{"LastName": "x" * 2000} for _ in range(5_100)])
    assert answer.status_code == 400
    assert answer.json()["exceptionCode"] == "InvalidBatch"
    assert "10000000" in answer.json()["exceptionMessage"]


def test_job_and_batch_state_errors(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("insert")
    bulk.close(job_id)

    late = bulk.raw("POST", f"job/{job_id}/batch", json=[{"LastName": "Late"}])
    unknown_job = bulk.raw("GET", "job/750000000000000AAA")
    unknown_batch = bulk.raw("GET", f"job/{job_id}/batch/751000000000000AAA")
    csv_job = bulk.raw("POST", "job", json={"operation": "insert", "object": "Contact",
                                            "contentType": "CSV"})
    bad_object = bulk.raw("POST", "job", json={"operation": "insert", "object": "Nothing__c",
                                               "contentType": "JSON"})

    assert late.status_code == 400
    assert late.json()["exceptionCode"] == "InvalidJobState"
    assert unknown_job.json()["exceptionCode"] == "InvalidJob"
    assert unknown_batch.json()["exceptionCode"] == "InvalidBatch"
    assert csv_job.json()["exceptionCode"] == "InvalidJob"
    assert bad_object.json()["exceptionCode"] == "InvalidJob"


def test_invalid_batch_fails_with_state_message(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("insert")
    batch_id = bulk.batch(job_id, [{"LastName": "A", "Nope__c": 1}])
    info, _ = bulk.wait(job_id, batch_id)

    assert info["state"] == "Failed"
    assert info["stateMessage"].startswith("InvalidBatch : ")
    assert "Nope__c" in info["stateMessage"]
    not_done = bulk.raw("GET", f"job/{job_id}/batch/{batch_id}/result")
    assert not_done.json() == {"exceptionCode": "InvalidBatch",
                               "exceptionMessage": "Batch not completed"}
    assert salesforce_sandbox.admin("GET", "status")["counts"].get("Contact", 0) == 0


def test_fail_batches_fault_fails_whole_batches(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    salesforce_sandbox.faults(fail_batches=1)
    job_id = bulk.job("insert")
    failed = bulk.batch(job_id, [{"LastName": "First"}])
    failed_info, _ = bulk.wait(job_id, failed)
    done = bulk.batch(job_id, [{"LastName": "Second"}])
    done_info, _ = bulk.wait(job_id, done)

    assert (failed_info["state"], failed_info["stateMessage"]) == ("Failed", LOCK_MESSAGE)
    assert done_info["state"] == "Completed"
    rows = salesforce_sandbox.admin("GET", "records/Contact", params={"fields": "LastName"})
    assert rows == [{"LastName": "Second"}]


def test_lock_row_rate_rejects_records_with_unable_to_lock_row(salesforce_sandbox: Any) -> None:
    ids = seed(salesforce_sandbox, [{"LastName": f"L{i}"} for i in range(5)])
    bulk = Bulk(salesforce_sandbox)
    salesforce_sandbox.faults(lock_row_rate=1.0, seed=3)
    job_id = bulk.job("update")
    batch_id = bulk.batch(job_id, [{"Id": i, "Title": "Changed"} for i in ids])
    info, _ = bulk.wait(job_id, batch_id)
    results = bulk.ok("GET", f"job/{job_id}/batch/{batch_id}/result")

    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (5, 5)
    assert {r["errors"][0]["statusCode"] for r in results} == {"UNABLE_TO_LOCK_ROW"}
    rows = salesforce_sandbox.admin("GET", "records/Contact", params={"fields": "Title"})
    assert {row["Title"] for row in rows} == {None}


def test_abort_leaves_queued_batches_not_processed(salesforce_sandbox: Any) -> None:
    bulk = Bulk(salesforce_sandbox)
    salesforce_sandbox.faults(batch_delay_seconds=0.5)
    job_id = bulk.job("insert", concurrencyMode="Serial")  # the second batch stays Queued
    running = bulk.batch(job_id, [{"LastName": "Running"}])
    bulk.wait_until(job_id, running, "InProgress")
    queued = bulk.batch(job_id, [{"LastName": "Queued"}])
    aborted = bulk.ok("POST", f"job/{job_id}", json={"state": "Aborted"})
    running_info, _ = bulk.wait(job_id, running)
    queued_info, _ = bulk.wait(job_id, queued)

    assert aborted["state"] == "Aborted"
    assert running_info["state"] == "Completed"
    assert queued_info["state"] == "NotProcessed"
    rows = salesforce_sandbox.admin("GET", "records/Contact", params={"fields": "LastName"})
    assert rows == [{"LastName": "Running"}]
