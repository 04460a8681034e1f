"""Bulk API 1.0 query jobs of the Salesforce sandbox (what singer-io tap-salesforce's Bulk
mode uses): JSON jobs, XML batch infos and result lists, CSV results, queryAll, failures,
PK chunking and the batch allowance, checked over TLS against the running server."""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import requests
from defusedxml.ElementTree import fromstring

ASYNC = "/services/async/61.0"
NS = "{http://www.force.com/2009/06/asyncapi/dataload}"
FINAL = ("Completed", "Failed", "Not Processed")


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


def xml_fields(element: Element) -> dict[str, str]:
    return {child.tag.removeprefix(NS): child.text or "" for child in element}


class BulkQuery:
    """A minimal Bulk 1.0 query client, shaped like tap-salesforce's; counts its calls."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.token = str(sandbox.salesforce_token()["access_token"])
        self.calls: Counter[str] = Counter()

    def raw(self, method: str, path: str, kind: str, **kwargs: Any) -> requests.Response:
        self.calls[kind] += 1
        headers = {"X-SFDC-Session": self.token, "Content-Type": "application/json",
                   **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.sandbox.url}{ASYNC}/{path}", headers=headers,
                                verify=self.sandbox.ca_bundle, timeout=60, **kwargs)

    def create(self, sobject: str = "Contact", operation: str = "query",
               headers: dict[str, str] | None = None) -> dict[str, Any]:
        answer = self.raw("POST", "job", "bulk_job", headers=headers or {}, json={
            "operation": operation, "object": sobject, "contentType": "CSV"})
        assert answer.status_code == 201, answer.text
        info: dict[str, Any] = answer.json()
        return info

    def add(self, job_id: str, soql: str) -> dict[str, str]:
        answer = self.raw("POST", f"job/{job_id}/batch", "bulk_batch", data=soql,
                          headers={"Content-Type": "text/csv"})
        assert answer.status_code == 201, answer.text
        assert answer.headers["Content-Type"].startswith("application/xml")
        root = fromstring(answer.content)
        assert root.tag == f"{NS}batchInfo"
        return xml_fields(root)

    def close(self, job_id: str) -> dict[str, Any]:
        answer = self.raw("POST", f"job/{job_id}", "bulk_job", json={"state": "Closed"})
        assert answer.status_code == 200, answer.text
        info: dict[str, Any] = answer.json()
        return info

    def batch(self, job_id: str, batch_id: str) -> dict[str, str]:
        answer = self.raw("GET", f"job/{job_id}/batch/{batch_id}", "bulk_poll")
        assert answer.status_code == 200, answer.text
        return xml_fields(fromstring(answer.content))

    def batches(self, job_id: str) -> list[dict[str, str]]:
        answer = self.raw("GET", f"job/{job_id}/batch", "bulk_poll")
        assert answer.status_code == 200, answer.text
        root = fromstring(answer.content)
        assert root.tag == f"{NS}batchInfoList"
        return [xml_fields(child) for child in root]

    def wait(self, job_id: str, batch_id: str) -> dict[str, str]:
        deadline = time.monotonic() + 60
        while (info := self.batch(job_id, batch_id))["state"] not in FINAL:
            assert time.monotonic() < deadline, f"batch {batch_id} never finished: {info}"
            time.sleep(0.02)
        return info

    def result_ids(self, job_id: str, batch_id: str) -> list[str]:
        answer = self.raw("GET", f"job/{job_id}/batch/{batch_id}/result", "bulk_result")
        assert answer.status_code == 200, answer.text
        root = fromstring(answer.content)
        assert root.tag == f"{NS}result-list"
        return [child.text or "" for child in root]

    def result(self, job_id: str, batch_id: str, result_id: str) -> str:
        answer = self.raw("GET", f"job/{job_id}/batch/{batch_id}/result/{result_id}",
                          "bulk_result")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/csv")
        return answer.text

    def rows(self, soql: str, sobject: str = "Contact", operation: str = "query"
             ) -> list[dict[str, str]]:
        job_id = self.create(sobject, operation)["id"]
        batch_id = self.add(job_id, soql)["id"]
        self.close(job_id)
        assert self.wait(job_id, batch_id)["state"] == "Completed"
        [result_id] = self.result_ids(job_id, batch_id)
        return list(csv.DictReader(io.StringIO(self.result(job_id, batch_id, result_id))))


@pytest.fixture
def bulk(salesforce_sandbox: Any) -> BulkQuery:
    return BulkQuery(salesforce_sandbox)


def batches_left(sandbox: Any) -> int:
    return int(sandbox.admin("GET", "status")["limits"]["DailyBulkApiBatches"]["Remaining"])


def seed_contacts(sandbox: Any, count: int) -> list[str]:
    rows = [{"LastName": f"Last{i}", "Email": f"user{i:05d}@example.com"} for i in range(count)]
    ids: list[str] = sandbox.admin("POST", "records/Contact", json=rows)
    return ids


def test_query_job_lifecycle_json_job_xml_batches_csv_result_and_ledger(
    salesforce_sandbox: Any, bulk: BulkQuery,
) -> None:
    ids = seed_contacts(salesforce_sandbox, 3)
    salesforce_sandbox.clear_ledger()

    job = bulk.create()
    batch = bulk.add(job["id"], "SELECT Id, LastName, Email, CreatedDate FROM Contact")
    closed = bulk.close(job["id"])
    done = bulk.wait(job["id"], batch["id"])
    [result_id] = bulk.result_ids(job["id"], batch["id"])
    text = bulk.result(job["id"], batch["id"], result_id)

    assert job["id"].startswith("750")
    assert {key: job[key] for key in ("operation", "object", "state", "contentType",
                                      "apiVersion")} == {
        "operation": "query", "object": "Contact", "state": "Open", "contentType": "CSV",
        "apiVersion": 61.0}
    assert batch["state"] == "Queued"
    assert batch["jobId"] == job["id"]
    assert closed["state"] == "Closed"
    assert done["numberRecordsProcessed"] == "3"
    assert result_id.startswith("752")
    lines = text.splitlines()
    assert lines[0] == '"Id","LastName","Email","CreatedDate"'
    assert all(line.startswith('"') and line.endswith('"') for line in lines)  # all quoted
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["Id"] for row in rows] == ids
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rows[0]["CreatedDate"])
    assert bulk.batches(job["id"])[0]["state"] == "Completed"
    ledger = salesforce_sandbox.ledger()
    assert ledger["by_kind"] == dict(bulk.calls)
    assert {call["status"] for call in ledger["calls"]} == {200, 201}


def test_query_all_includes_deleted_rows_and_query_does_not(
    salesforce_sandbox: Any, bulk: BulkQuery,
) -> None:
    ids = seed_contacts(salesforce_sandbox, 3)
    answer = requests.delete(
        f"{salesforce_sandbox.url}/services/data/v61.0/sobjects/Contact/{ids[0]}",
        headers={"Authorization": f"Bearer {bulk.token}"}, verify=salesforce_sandbox.ca_bundle,
        timeout=30)
    assert answer.status_code == 204, answer.text

    live = bulk.rows("SELECT Id, IsDeleted FROM Contact")
    everything = bulk.rows("SELECT Id, IsDeleted FROM Contact", operation="queryAll")

    assert {row["Id"] for row in live} == set(ids[1:])
    assert {row["Id"]: row["IsDeleted"] for row in everything} == {
        ids[0]: "true", ids[1]: "false", ids[2]: "false"}


def test_an_empty_result_is_the_documented_no_records_line(bulk: BulkQuery) -> None:
    job_id = bulk.create()["id"]
    batch_id = bulk.add(job_id, "SELECT Id FROM Contact")["id"]
    assert bulk.wait(job_id, batch_id)["state"] == "Completed"
    [result_id] = bulk.result_ids(job_id, batch_id)

    assert bulk.result(job_id, batch_id, result_id) == "Records not found for this query"


def test_a_bad_query_fails_its_batch_with_the_reason(bulk: BulkQuery) -> None:
    job_id = bulk.create()["id"]
    unknown_field = bulk.add(job_id, "SELECT Id, Nope__c FROM Contact")
    other_object = bulk.add(job_id, "SELECT Id FROM Account")

    assert unknown_field["state"] == "Failed"
    assert unknown_field["stateMessage"].startswith(
        "InvalidBatch : Failed to process query: INVALID_FIELD")
    assert "Nope__c" in unknown_field["stateMessage"]
    assert other_object["state"] == "Failed"
    assert "Account" in other_object["stateMessage"]
    answer = bulk.raw("GET", f"job/{job_id}/batch/{other_object['id']}/result", "bulk_result")
    assert answer.status_code == 400
    assert xml_fields(fromstring(answer.content))["exceptionCode"] == "InvalidBatch"


def test_a_closed_job_takes_no_batch_and_a_job_needs_csv(bulk: BulkQuery) -> None:
    job_id = bulk.create()["id"]
    bulk.close(job_id)
    late = bulk.raw("POST", f"job/{job_id}/batch", "bulk_batch", data="SELECT Id FROM Contact",
                    headers={"Content-Type": "text/csv"})
    xml_job = bulk.raw("POST", "job", "bulk_job", json={
        "operation": "query", "object": "Contact", "contentType": "XML"})

    assert late.status_code == 400
    assert xml_fields(fromstring(late.content))["exceptionCode"] == "InvalidJobState"
    assert xml_job.status_code == 400
    assert xml_job.json()["exceptionCode"] == "InvalidJob"


def test_pk_chunking_splits_by_id_ranges_and_counts_each_chunk_as_a_batch(
    salesforce_sandbox: Any, bulk: BulkQuery,
) -> None:
    ids = seed_contacts(salesforce_sandbox, 250)
    before = batches_left(salesforce_sandbox)

    job_id = bulk.create(headers={"Sforce-Enable-PKChunking": "true; chunkSize=100"})["id"]
    original = bulk.add(job_id, "SELECT Id, Email FROM Contact WHERE Email LIKE 'user%'")
    chunks = [info for info in bulk.batches(job_id) if info["id"] != original["id"]]
    finished = [bulk.wait(job_id, info["id"]) for info in chunks]
    rows: list[str] = []
    for info in finished:
        [result_id] = bulk.result_ids(job_id, info["id"])
        text = bulk.result(job_id, info["id"], result_id)
        rows += [row["Id"] for row in csv.DictReader(io.StringIO(text))]
    after = batches_left(salesforce_sandbox)

    assert original["state"] == "Not Processed"
    assert [info["state"] for info in finished] == ["Completed"] * 3
    assert [int(info["numberRecordsProcessed"]) for info in finished] == [100, 100, 50]
    assert sorted(rows) == sorted(ids)
    assert before - after == 4  # the original batch and its three chunks


def test_pk_chunking_refuses_an_ordered_query_and_a_bad_header(bulk: BulkQuery) -> None:
    job_id = bulk.create(headers={"Sforce-Enable-PKChunking": "TRUE"})["id"]
    ordered = bulk.add(job_id, "SELECT Id FROM Contact ORDER BY Email")
    bad = bulk.raw("POST", "job", "bulk_job", headers={"Sforce-Enable-PKChunking": "size=9"},
                   json={"operation": "query", "object": "Contact", "contentType": "CSV"})

    assert ordered["state"] == "Failed"
    assert "WHERE" in ordered["stateMessage"]
    assert bad.status_code == 400
    assert "Sforce-Enable-PKChunking" in bad.json()["exceptionMessage"]


def test_an_injected_failure_reports_salesforces_retry_message(
    salesforce_sandbox: Any, bulk: BulkQuery,
) -> None:
    seed_contacts(salesforce_sandbox, 2)
    salesforce_sandbox.faults(fail_batches=1)

    job_id = bulk.create()["id"]
    failed = bulk.wait(job_id, bulk.add(job_id, "SELECT Id FROM Contact")["id"])
    retried = bulk.rows("SELECT Id FROM Contact")

    assert failed["state"] == "Failed"
    assert failed["stateMessage"] == "InternalServerError : Retried more than thirty times"
    assert len(retried) == 2


def test_query_jobs_need_a_session(salesforce_sandbox: Any) -> None:
    answer = requests.post(f"{salesforce_sandbox.url}{ASYNC}/job",
                           headers={"X-SFDC-Session": "nope"}, verify=salesforce_sandbox.ca_bundle,
                           json={"operation": "query", "object": "Contact", "contentType": "CSV"},
                           timeout=30)

    assert answer.status_code == 400
    assert answer.json()["exceptionCode"] == "InvalidSessionId"
