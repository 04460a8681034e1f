"""Bulk API 2.0 ingest jobs of the Salesforce sandbox: lifecycle, CSV uploads, the three
result sets, limits shared with Bulk 1.0, errors and faults, over TLS against the server."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
import requests

API = "/services/data/v59.0"
JOBS = f"{API}/jobs/ingest"
FINAL = ("JobComplete", "Failed", "Aborted")


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


class Ingest:
    """A minimal Bulk 2.0 ingest client for the tests."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.token = str(sandbox.salesforce_token()["access_token"])

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.sandbox.url}{path}", headers=headers,
                                verify=self.sandbox.ca_bundle, timeout=60, **kwargs)

    def create(self, sobject: str, operation: str, **extra: Any) -> dict[str, Any]:
        answer = self.raw("POST", JOBS, json={"object": sobject, "operation": operation,
                                              "contentType": "CSV", **extra})
        assert answer.status_code == 200, answer.text
        info: dict[str, Any] = answer.json()
        return info

    def upload(self, job_id: str, text: str) -> requests.Response:
        return self.raw("PUT", f"{JOBS}/{job_id}/batches", data=text.encode(),
                        headers={"Content-Type": "text/csv"})

    def close(self, job_id: str, state: str = "UploadComplete") -> requests.Response:
        return self.raw("PATCH", f"{JOBS}/{job_id}", json={"state": state})

    def info(self, job_id: str) -> dict[str, Any]:
        answer = self.raw("GET", f"{JOBS}/{job_id}")
        assert answer.status_code == 200, answer.text
        info: dict[str, Any] = answer.json()
        return info

    def wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self.info(job_id)
            if info["state"] in FINAL:
                return info
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never finished")

    def results(self, job_id: str, kind: str) -> list[dict[str, str]]:
        answer = self.raw("GET", f"{JOBS}/{job_id}/{kind}/")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(answer.text)))

    def run(self, sobject: str, operation: str, text: str, **extra: Any) -> dict[str, Any]:
        job_id = str(self.create(sobject, operation, **extra)["id"])
        assert self.upload(job_id, text).status_code == 201
        assert self.close(job_id).status_code == 200
        return self.wait(job_id)


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _contacts(salesforce_sandbox: Any, count: int) -> list[str]:
    ids: list[str] = salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"L{i}", "Email": f"c{i}@example.com"} for i in range(count)])
    return ids


def _rows(salesforce_sandbox: Any, where: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = salesforce_sandbox.admin(
        "GET", "records/Contact", params={"where": where})
    return rows


def test_update_job_lifecycle_results_and_counters(salesforce_sandbox: Any) -> None:
    """Open → UploadComplete → JobComplete; successes and failures carry the sent columns."""
    ids = _contacts(salesforce_sandbox, 3)
    client = Ingest(salesforce_sandbox)
    created = client.create("Contact", "update")
    assert created["state"] == "Open"
    assert created["contentType"] == "CSV"
    assert created["contentUrl"] == f"services/data/v59.0/jobs/ingest/{created['id']}/batches"
    text = _csv([{"Id": ids[0], "Title": "Boss", "Email": ""},
                 {"Id": ids[1], "Title": "#N/A", "Email": "not an email"},
                 {"Id": ids[2], "Title": "Chief", "Email": "#N/A"}])
    assert client.upload(created["id"], text).status_code == 201
    closed = client.close(created["id"])
    assert closed.json()["state"] == "UploadComplete"
    info = client.wait(created["id"])
    assert info["state"] == "JobComplete"
    assert info["jobType"] == "V2Ingest"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3, 1)

    good = client.results(created["id"], "successfulResults")
    assert sorted(row["sf__Id"] for row in good) == sorted([ids[0], ids[2]])
    assert {row["sf__Created"] for row in good} == {"false"}
    assert {row["Title"] for row in good} == {"Boss", "Chief"}
    bad = client.results(created["id"], "failedResults")
    assert [(row["sf__Id"], row["Email"]) for row in bad] == [(ids[1], "not an email")]
    assert bad[0]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS:")
    assert bad[0]["sf__Error"].endswith("Email --")
    assert client.results(created["id"], "unprocessedrecords") == []

    stored = {row["Id"]: row for row in _rows(salesforce_sandbox, "LastName != null")}
    assert stored[ids[0]]["Email"] == "c0@example.com"  # empty cell: left unchanged
    assert stored[ids[0]]["Title"] == "Boss"
    assert stored[ids[2]]["Email"] is None  # #N/A: set to null
    assert stored[ids[1]]["Title"] is None  # the failed row changed nothing


def test_results_are_not_in_upload_order(salesforce_sandbox: Any) -> None:
    """As Salesforce warns, a client must correlate rows by their columns, not position."""
    client = Ingest(salesforce_sandbox)
    info = client.run("Contact", "insert", _csv([{"LastName": f"N{i}"} for i in range(5)]))
    assert info["numberRecordsProcessed"] == 5
    rows = client.results(info["id"], "successfulResults")
    assert [row["LastName"] for row in rows] != [f"N{i}" for i in range(5)]
    assert sorted(row["LastName"] for row in rows) == [f"N{i}" for i in range(5)]
    assert {row["sf__Created"] for row in rows} == {"true"}
    assert all(row["sf__Id"].startswith("003") for row in rows)


def test_upsert_by_external_id_with_pipe_and_crlf(salesforce_sandbox: Any) -> None:
    client = Ingest(salesforce_sandbox)
    salesforce_sandbox.admin("POST", "records/Contact",
                             json=[{"LastName": "Old", "Email": "a@example.com"}])
    text = "Email|LastName\r\na@example.com|New\r\nb@example.com|Fresh\r\n"
    info = client.run("Contact", "upsert", text, externalIdFieldName="email",
                      columnDelimiter="PIPE", lineEnding="CRLF")
    assert info["state"] == "JobComplete", info
    assert info["externalIdFieldName"] == "Email"
    answer = client.raw("GET", f"{JOBS}/{info['id']}/successfulResults/")
    assert answer.text.startswith('"sf__Id"|"sf__Created"|Email|LastName\r\n')
    rows = list(csv.DictReader(io.StringIO(answer.text), delimiter="|"))
    assert {row["Email"]: row["sf__Created"] for row in rows} == {
        "a@example.com": "false", "b@example.com": "true"}


def test_wrong_line_ending_and_unknown_field_fail_the_job(salesforce_sandbox: Any) -> None:
    """Both leave every record unprocessed, with the reason in errorMessage."""
    client = Ingest(salesforce_sandbox)
    info = client.run("Contact", "insert", "LastName\r\nA\r\n")
    assert info["state"] == "Failed"
    assert "LineEnding is invalid on user data" in info["errorMessage"]
    assert [row["LastName"] for row in client.results(info["id"], "unprocessedrecords")] == ["A"]

    info = client.run("Contact", "insert", "LastName,Nope__c\nA,1\n")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Nope__c"
    assert info["numberRecordsProcessed"] == 0


def test_internal_batches_count_against_the_shared_daily_allowance(
        salesforce_sandbox: Any) -> None:
    """25,000 rows are three internal batches of Bulk 1.0's 15,000 a day."""
    client = Ingest(salesforce_sandbox)
    before = salesforce_sandbox.admin("GET", "status")["limits"]
    text = "LastName\n" + "".join(f"N{i}\n" for i in range(25_000))
    info = client.run("Contact", "insert", text)
    assert info["state"] == "JobComplete"
    assert info["numberRecordsProcessed"] == 25_000
    limits = client.raw("GET", f"{API}/limits").json()
    assert (before["DailyBulkApiBatches"]["Remaining"]
            - limits["DailyBulkApiBatches"]["Remaining"]) == 3
    assert "DailyBulkV2QueryJobs" in limits

    salesforce_sandbox.admin("POST", "limits",
                             json={"DailyBulkApiBatches": {"Remaining": 1}})
    info = client.run("Contact", "insert", text)
    assert info["state"] == "Failed"
    assert info["errorMessage"].startswith("ExceededQuota : the daily allowance "
                                           "DailyBulkApiBatches is used up")
    assert info["numberRecordsProcessed"] == 10_000
    assert len(client.results(info["id"], "unprocessedrecords")) == 15_000


def test_the_daily_record_allowance_fails_the_job(salesforce_sandbox: Any) -> None:
    client = Ingest(salesforce_sandbox)
    salesforce_sandbox.admin("POST", "limits",
                             json={"BulkV2IngestRecords": {"Remaining": 2}})
    info = client.run("Contact", "insert", "LastName\nA\nB\nC\n")
    assert info["state"] == "Failed"
    assert "BulkV2IngestRecords" in info["errorMessage"]
    assert len(client.results(info["id"], "unprocessedrecords")) == 3


def test_upload_limits_and_state_rules(salesforce_sandbox: Any) -> None:
    client = Ingest(salesforce_sandbox)
    job_id = str(client.create("Contact", "insert")["id"])
    answer = client.raw("PUT", f"{JOBS}/{job_id}/batches", headers={
        "Content-Type": "text/csv", "Content-Length": str(100 * 1024 * 1024 + 1)}, data=b"")
    assert answer.status_code == 400
    assert "100 MB" in answer.json()[0]["message"]
    answer = client.raw("PUT", f"{JOBS}/{job_id}/batches", data=b"LastName\nA\n",
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert client.upload(job_id, "LastName\nA\n").status_code == 201
    again = client.upload(job_id, "LastName\nB\n")
    assert again.status_code == 400
    assert again.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    early = client.raw("GET", f"{JOBS}/{job_id}/successfulResults/")
    assert early.status_code == 400
    assert client.raw("DELETE", f"{JOBS}/{job_id}").status_code == 400  # Open
    assert client.close(job_id).status_code == 200
    assert client.wait(job_id)["state"] == "JobComplete"
    assert client.close(job_id, "Aborted").status_code == 400
    assert client.raw("DELETE", f"{JOBS}/{job_id}").status_code == 204
    assert client.raw("GET", f"{JOBS}/{job_id}").status_code == 404

    big = str(client.create("Contact", "insert")["id"])  # over the app's 16 MB request cap
    body = "LastName,Notes\n" + "".join(f"N{i},{'x' * 30_000}\n" for i in range(600))
    assert client.upload(big, body).status_code == 201
    assert client.close(big, "Aborted").status_code == 200

    bad = client.raw("POST", JOBS, json={"object": "Contact", "operation": "upsert"})
    assert bad.status_code == 400
    assert "External ID" in bad.json()[0]["message"]
    bad = client.raw("POST", JOBS, json={"object": "Nope", "operation": "insert"})
    assert bad.status_code == 400


def test_abort_and_faults(salesforce_sandbox: Any) -> None:
    """A failed internal batch fails the job; earlier batches keep their results."""
    client = Ingest(salesforce_sandbox)
    job_id = str(client.create("Contact", "insert")["id"])
    assert client.upload(job_id, "LastName\nA\n").status_code == 201
    aborted = client.close(job_id, "Aborted")
    assert aborted.status_code == 200
    assert aborted.json()["state"] == "Aborted"
    assert len(client.results(job_id, "unprocessedrecords")) == 1

    salesforce_sandbox.faults(fail_batches=1)
    info = client.run("Contact", "insert", "LastName\nA\n")
    assert info["state"] == "Failed"
    assert "UNABLE_TO_LOCK_ROW" in info["errorMessage"]

    salesforce_sandbox.faults(lock_row_rate=1.0, seed=1)
    info = client.run("Contact", "insert", "LastName\nA\nB\n")
    assert info["state"] == "JobComplete"
    assert info["numberRecordsFailed"] == 2
    errors = {row["sf__Error"] for row in client.results(info["id"], "failedResults")}
    assert all(error.startswith("UNABLE_TO_LOCK_ROW:") for error in errors)


def test_ledger_kinds(salesforce_sandbox: Any) -> None:
    client = Ingest(salesforce_sandbox)
    salesforce_sandbox.clear_ledger()
    info = client.run("Contact", "insert", "LastName\nA\n")
    client.results(info["id"], "successfulResults")
    kinds = salesforce_sandbox.ledger()["by_kind"]
    assert kinds["bulk_job"] == 2  # create, UploadComplete
    assert kinds["bulk_batch"] == 1  # the upload
    assert kinds["bulk_result"] == 1
    assert kinds["bulk_poll"] >= 1


def test_get_all_jobs_lists_bulk_1_and_2_ingest_jobs_by_type(salesforce_sandbox: Any) -> None:
    """`GET /jobs/ingest` (Get All Jobs): Classic jobs are Bulk 1.0's, V2Ingest 2.0's."""
    ingest = Ingest(salesforce_sandbox)
    classic = ingest.raw("POST", "/services/async/59.0/job", headers={
        "X-SFDC-Session": ingest.token},
        json={"operation": "update", "object": "Contact", "contentType": "JSON"}).json()
    v2 = ingest.create("Contact", "insert")

    listed = ingest.raw("GET", JOBS).json()
    assert listed["done"] is True
    assert [(job["id"], job["jobType"], job["state"]) for job in listed["records"]] == [
        (classic["id"], "Classic", "Open"), (v2["id"], "V2Ingest", "Open")]
    only = ingest.raw("GET", JOBS, params={"jobType": "Classic"}).json()
    assert [job["id"] for job in only["records"]] == [classic["id"]]
    assert ingest.raw("GET", JOBS, params={"jobType": "Other"}).status_code == 400
