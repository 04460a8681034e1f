"""Bulk API 2.0 query jobs of the Salesforce sandbox: lifecycle, CSV result sets by locator,
values, queryAll, errors, limits and faults, checked over TLS against the running server."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from typing import Any

import pytest
import requests
from emulators import defaults

API = "/services/data/v59.0"
JOBS = f"{API}/jobs/query"
FINAL = ("JobComplete", "Failed", "Aborted")


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


class Bulk2:
    """A minimal Bulk 2.0 query client for the tests; counts the calls it makes by kind."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.token = str(sandbox.salesforce_token()["access_token"])
        self.calls: Counter[str] = Counter()

    def raw(self, method: str, path: str, kind: str, **kwargs: Any) -> requests.Response:
        self.calls[kind] += 1
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.sandbox.url}{path}", headers=headers,
                                verify=self.sandbox.ca_bundle, timeout=60, **kwargs)

    def create(self, soql: str, operation: str = "query", **extra: Any) -> dict[str, Any]:
        body = {"operation": operation, "query": soql, "contentType": "CSV",
                "columnDelimiter": "COMMA", "lineEnding": "LF", **extra}
        answer = self.raw("POST", JOBS, "bulk_job", json=body)
        assert answer.status_code == 200, answer.text
        info: dict[str, Any] = answer.json()
        return info

    def info(self, job_id: str) -> dict[str, Any]:
        answer = self.raw("GET", f"{JOBS}/{job_id}", "bulk_poll")
        assert answer.status_code == 200, answer.text
        info: dict[str, Any] = answer.json()
        return info

    def wait(self, job_id: str) -> tuple[dict[str, Any], list[str]]:
        """Poll until the job is final; also returns every state seen on the way."""
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self.info(job_id)
            if not seen or seen[-1] != info["state"]:
                seen.append(info["state"])
            if info["state"] in FINAL:
                return info, seen
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never finished; states seen {seen}")

    def wait_until(self, job_id: str, state: str) -> None:
        deadline = time.monotonic() + 60
        while self.info(job_id)["state"] != state:
            assert time.monotonic() < deadline, f"job {job_id} never reached {state}"
            time.sleep(0.02)

    def page(self, job_id: str, **params: Any) -> requests.Response:
        return self.raw("GET", f"{JOBS}/{job_id}/results", "bulk_result", params=params)

    def run(self, soql: str, operation: str = "query") -> str:
        job_id = str(self.create(soql, operation)["id"])
        info, _ = self.wait(job_id)
        assert info["state"] == "JobComplete", info
        return job_id

    def rows(self, soql: str, operation: str = "query") -> list[dict[str, str]]:
        answer = self.page(self.run(soql, operation))
        assert answer.status_code == 200, answer.text
        assert answer.headers["Sforce-Locator"] == "null"
        return list(csv.DictReader(io.StringIO(answer.text)))


@pytest.fixture
def bulk(salesforce_sandbox: Any) -> Bulk2:
    return Bulk2(salesforce_sandbox)


def seed_contacts(sandbox: Any, count: int) -> list[str]:
    rows = [{"LastName": f"Last{i}", "Email": f"user{i:05d}@example.com"} for i in range(count)]
    ids: list[str] = sandbox.admin("POST", "records/Contact", json=rows)
    assert len(ids) == count
    return ids


def error_of(answer: requests.Response, status: int) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert isinstance(body, list)
    assert len(body) == 1
    return dict(body[0])


def test_job_goes_upload_complete_in_progress_job_complete_and_is_ledgered(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    ids = seed_contacts(salesforce_sandbox, 3)
    salesforce_sandbox.faults(batch_delay_seconds=0.3)
    salesforce_sandbox.clear_ledger()

    created = bulk.create("SELECT Id FROM Contact")
    info, seen = bulk.wait(created["id"])

    assert created["id"].startswith("750")
    assert len(created["id"]) == 18
    assert {key: created[key] for key in (
        "operation", "object", "createdById", "state", "concurrencyMode", "contentType",
        "apiVersion", "lineEnding", "columnDelimiter")} == {
        "operation": "query", "object": "Contact", "createdById": defaults.SF_USER_ID,
        "state": "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV",
        "apiVersion": 59.0, "lineEnding": "LF", "columnDelimiter": "COMMA"}
    assert created["createdDate"].endswith("+0000")
    assert "InProgress" in seen
    assert seen[-1] == "JobComplete"
    assert info["jobType"] == "V2Query"
    assert info["numberRecordsProcessed"] == 3
    assert info["retries"] == 0
    assert info["totalProcessingTime"] >= 0
    assert "errorMessage" not in info
    page = bulk.page(created["id"])
    assert {row["Id"] for row in csv.DictReader(io.StringIO(page.text))} == set(ids)
    ledger = salesforce_sandbox.ledger()
    assert ledger["by_kind"] == dict(bulk.calls)
    assert {call["status"] for call in ledger["calls"]} == {200}


def test_result_sets_follow_the_locator_and_can_be_read_again(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    ids = seed_contacts(salesforce_sandbox, 2_500)
    job_id = bulk.run("SELECT Id, Email FROM Contact ORDER BY Email")

    pages: list[requests.Response] = []
    locator = None
    while True:
        params: dict[str, Any] = {"maxRecords": 1_000}
        if locator:
            params["locator"] = locator
        answer = bulk.page(job_id, **params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/csv")
        pages.append(answer)
        locator = answer.headers["Sforce-Locator"]
        if locator == "null":
            break

    assert [p.headers["Sforce-NumberOfRecords"] for p in pages] == ["1000", "1000", "500"]
    assert [p.headers["Sforce-Locator"] for p in pages] == ["MTAwMA", "MjAwMA", "null"]
    rows = [row for p in pages for row in csv.DictReader(io.StringIO(p.text))]
    assert [row["Id"] for row in rows] == ids  # seeded in e-mail order, none twice
    assert [row["Email"] for row in rows] == sorted(row["Email"] for row in rows)
    again = bulk.page(job_id, maxRecords=1_000, locator="MTAwMA")
    assert again.text == pages[1].text
    assert again.headers["Sforce-Locator"] == "MjAwMA"
    whole = bulk.page(job_id)  # no maxRecords: the default set holds all 2,500
    assert whole.headers["Sforce-NumberOfRecords"] == "2500"
    assert whole.text == pages[0].text + "".join(p.text.split("\n", 1)[1] for p in pages[1:])
    assert salesforce_sandbox.ledger()["by_kind"]["bulk_result"] == 5


def test_csv_values_nulls_booleans_datetimes_numbers_and_quoting(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    account = salesforce_sandbox.admin("POST", "records/Account", json=[
        {"Name": "Acme, Inc.", "AnnualRevenue": 2500000.5, "NumberOfEmployees": 12}])[0]
    tricky = 'Chief "Data", Officer\nsecond line'
    contacts = salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": tricky, "AccountId": account, "Email": "a@example.com",
         "SystemModstamp": "2024-01-01T00:00:00Z"},
        {"LastName": "Plain", "SystemModstamp": "2024-01-02T03:04:05.678Z"},
    ])
    campaigns = salesforce_sandbox.admin("POST", "records/Campaign", json=[
        {"Name": "On", "IsActive": True}, {"Name": "Off", "IsActive": False}])

    job_id = bulk.run("SELECT Id, lastname, Email, Account.Name, account.AnnualRevenue, "
                      "Account.NumberOfEmployees, IsDeleted, SystemModstamp FROM Contact "
                      "ORDER BY SystemModstamp")
    text = bulk.page(job_id).text
    flags = bulk.rows("SELECT Name, IsActive FROM Campaign ORDER BY Name")

    lines = text.split("\n")
    assert lines[0] == ('"Id","lastname","Email","Account.Name","account.AnnualRevenue",'
                        '"Account.NumberOfEmployees","IsDeleted","SystemModstamp"')
    assert text.startswith(lines[0] + "\n")
    assert lines[1] == (f'"{contacts[0]}","Chief ""Data"", Officer')
    assert lines[2] == ('second line","a@example.com","Acme, Inc.","2500000.5","12","false",'
                        '"2024-01-01T00:00:00.000Z"')
    assert lines[3] == f'"{contacts[1]}","Plain","","","","","false","2024-01-02T03:04:05.678Z"'
    assert lines[4:] == [""]  # every line, the last included, ends with LF
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][1] == tricky
    assert {row["Name"]: row["IsActive"] for row in flags} == {"On": "true", "Off": "false"}
    assert len(campaigns) == 2


def test_other_delimiter_and_crlf_line_endings(salesforce_sandbox: Any, bulk: Bulk2) -> None:
    salesforce_sandbox.admin("POST", "records/Contact", json=[{"LastName": "a|b\nc"}])
    created = bulk.create("SELECT LastName, Email FROM Contact", columnDelimiter="PIPE",
                          lineEnding="CRLF")
    bulk.wait(created["id"])
    assert (created["columnDelimiter"], created["lineEnding"]) == ("PIPE", "CRLF")
    assert bulk.page(created["id"]).content == b'"LastName"|"Email"\r\n"a|b\nc"|""\r\n'


def test_query_all_includes_deleted_rows_and_query_does_not(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    ids = seed_contacts(salesforce_sandbox, 3)
    deleted = bulk.raw("DELETE", f"{API}/sobjects/Contact/{ids[1]}", "rest_other")
    assert deleted.status_code == 204

    live = bulk.rows("SELECT Id, IsDeleted FROM Contact")
    everything = bulk.rows("SELECT Id, IsDeleted FROM Contact", "queryAll")

    assert {row["Id"] for row in live} == {ids[0], ids[2]}
    assert {row["Id"]: row["IsDeleted"] for row in everything} == {
        ids[0]: "false", ids[1]: "true", ids[2]: "false"}


def test_empty_result_has_the_header_only(bulk: Bulk2) -> None:
    answer = bulk.page(bulk.run("SELECT Id, Email FROM Contact"))
    assert answer.text == '"Id","Email"\n'
    assert answer.headers["Sforce-NumberOfRecords"] == "0"
    assert answer.headers["Sforce-Locator"] == "null"


@pytest.mark.parametrize(("body", "code"), [
    ({"query": "SELEC Id FROM Contact"}, "MALFORMED_QUERY"),
    ({"query": "SELECT Nope__c FROM Contact"}, "INVALID_FIELD"),
    ({"query": "SELECT Id FROM Nothing__c"}, "INVALID_TYPE"),
    ({"query": "SELECT COUNT() FROM Contact"}, "API_ERROR"),
    ({"query": "SELECT Id FROM Contact LIMIT 5 OFFSET 2"}, "API_ERROR"),
    ({"query": "SELECT Id FROM Contact", "operation": "upsert"}, "INVALIDJOB"),
    ({"query": "SELECT Id FROM Contact", "contentType": "JSON"}, "INVALIDJOB"),
    ({"query": "SELECT Id FROM Contact", "lineEnding": "CR"}, "INVALIDJOB"),
    ({"query": "  "}, "INVALIDJOB"),
    ({"query": "SELECT Id FROM Contact", "object": "Contact"}, "JSON_PARSER_ERROR"),
])
def test_create_errors_are_json_arrays_and_create_no_job(
    salesforce_sandbox: Any, bulk: Bulk2, body: dict[str, Any], code: str,
) -> None:
    answer = bulk.raw("POST", JOBS, "bulk_job", json={"operation": "query", **body})
    error = error_of(answer, 400)
    assert error["errorCode"] == code
    assert error["message"]
    last = salesforce_sandbox.ledger()["calls"][-1]
    assert (last["kind"], last["method"], last["status"]) == ("bulk_job", "POST", 400)


def test_session_version_unknown_job_and_locator_errors(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    seed_contacts(salesforce_sandbox, 3)
    job_id = bulk.run("SELECT Id FROM Contact")

    not_json = bulk.raw("POST", JOBS, "bulk_job", data="operation=query",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    bulk.token = "bogus"
    no_session = bulk.raw("GET", f"{JOBS}/{job_id}", "bulk_poll")
    bulk.token = Bulk2(salesforce_sandbox).token
    old = bulk.raw("POST", "/services/data/v46.0/jobs/query", "bulk_job",
                   json={"operation": "query", "query": "SELECT Id FROM Contact"})
    other_version = bulk.raw("GET", f"/services/data/v60.0/jobs/query/{job_id}/results",
                             "bulk_result")
    unknown = bulk.raw("GET", f"{JOBS}/750000000000000AAA", "bulk_poll")
    bad_locator = bulk.page(job_id, locator="bm9wZQ")
    past_end = bulk.page(job_id, locator="Mw")
    bad_max = bulk.page(job_id, maxRecords=0)

    assert error_of(not_json, 400)["errorCode"] == "JSON_PARSER_ERROR"
    assert error_of(no_session, 401) == {"message": "Session expired or invalid",
                                         "errorCode": "INVALID_SESSION_ID"}
    assert error_of(old, 404)["errorCode"] == "NOT_FOUND"
    assert error_of(other_version, 409)["errorCode"] == "API_ERROR"
    assert error_of(unknown, 404) == {"message": "The requested resource does not exist",
                                      "errorCode": "NOT_FOUND"}
    assert error_of(bad_locator, 400)["errorCode"] == "API_ERROR"
    assert error_of(past_end, 400)["errorCode"] == "API_ERROR"
    assert error_of(bad_max, 400)["errorCode"] == "API_ERROR"
    by_status = {(c["kind"], c["status"]) for c in salesforce_sandbox.ledger()["calls"]}
    assert ("bulk_poll", 401) in by_status
    assert ("bulk_result", 409) in by_status


def test_abort_stops_a_running_job_and_delete_needs_a_terminated_one(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    seed_contacts(salesforce_sandbox, 3)
    salesforce_sandbox.faults(batch_delay_seconds=30)  # the abort ends the delay early
    job_id = bulk.create("SELECT Id FROM Contact")["id"]
    bulk.wait_until(job_id, "InProgress")

    early = bulk.page(job_id)
    not_terminated = bulk.raw("DELETE", f"{JOBS}/{job_id}", "bulk_job")
    wrong_state = bulk.raw("PATCH", f"{JOBS}/{job_id}", "bulk_job",
                           json={"state": "UploadComplete"})
    aborted = bulk.raw("PATCH", f"{JOBS}/{job_id}", "bulk_job", json={"state": "Aborted"})
    again = bulk.raw("PATCH", f"{JOBS}/{job_id}", "bulk_job", json={"state": "Aborted"})
    after = bulk.info(job_id)
    results = bulk.page(job_id)
    deleted = bulk.raw("DELETE", f"{JOBS}/{job_id}", "bulk_job")
    gone = bulk.raw("GET", f"{JOBS}/{job_id}", "bulk_poll")

    assert error_of(early, 400)["errorCode"] == "INVALIDJOBSTATE"
    assert error_of(not_terminated, 400) == {
        "message": "Error encountered when deleting the job because the job is not terminated",
        "errorCode": "API_ERROR"}
    assert error_of(wrong_state, 400)["errorCode"] == "INVALIDJOBSTATE"
    assert aborted.status_code == 200
    assert aborted.json()["state"] == "Aborted"
    assert error_of(again, 400) == {"message": "Aborting already Aborted Job not allowed",
                                    "errorCode": "INVALIDJOBSTATE"}
    assert after["state"] == "Aborted"
    assert after["numberRecordsProcessed"] == 0
    assert error_of(results, 400)["errorCode"] == "INVALIDJOBSTATE"
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert error_of(gone, 404)["errorCode"] == "NOT_FOUND"
    kinds = [c["kind"] for c in salesforce_sandbox.ledger()["calls"]
             if c["method"] in ("PATCH", "DELETE")]
    assert kinds == ["bulk_job"] * 5


def test_completed_job_cannot_be_aborted_and_deleting_it_drops_its_results(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    seed_contacts(salesforce_sandbox, 2)
    job_id = bulk.run("SELECT Id FROM Contact")

    late = bulk.raw("PATCH", f"{JOBS}/{job_id}", "bulk_job", json={"state": "Aborted"})
    deleted = bulk.raw("DELETE", f"{JOBS}/{job_id}", "bulk_job")

    assert error_of(late, 400) == {"message": "Aborting already JobComplete Job not allowed",
                                   "errorCode": "INVALIDJOBSTATE"}
    assert deleted.status_code == 204
    assert error_of(bulk.page(job_id), 404)["errorCode"] == "NOT_FOUND"


def test_injected_job_failure_reports_failed_with_an_error_message(
    salesforce_sandbox: Any, bulk: Bulk2,
) -> None:
    seed_contacts(salesforce_sandbox, 2)
    salesforce_sandbox.faults(fail_batches=1)

    failed, _ = bulk.wait(bulk.create("SELECT Id FROM Contact")["id"])
    next_one, _ = bulk.wait(bulk.create("SELECT Id FROM Contact")["id"])

    assert failed["state"] == "Failed"
    assert failed["errorMessage"].startswith("InternalServerError : ")
    assert error_of(bulk.page(failed["id"]), 400)["errorCode"] == "INVALIDJOBSTATE"
    assert next_one["state"] == "JobComplete"
    assert next_one["numberRecordsProcessed"] == 2


def test_every_call_counts_against_daily_api_requests(salesforce_sandbox: Any,
                                                      bulk: Bulk2) -> None:
    seed_contacts(salesforce_sandbox, 2)
    salesforce_sandbox.admin("POST", "limits", json={"DailyApiRequests": {"Remaining": 1000}})
    job_id = bulk.run("SELECT Id FROM Contact")
    bulk.page(job_id)
    bulk.raw("DELETE", f"{JOBS}/{job_id}", "bulk_job")
    remaining = salesforce_sandbox.admin("GET", "status")["limits"]["DailyApiRequests"]
    made = sum(bulk.calls.values())

    salesforce_sandbox.admin("POST", "limits", json={"DailyApiRequests": {"Remaining": 0}})
    refused = bulk.raw("POST", JOBS, "bulk_job",
                       json={"operation": "query", "query": "SELECT Id FROM Contact"})

    assert made >= 4  # create, at least one poll, one result set, delete
    assert remaining["Remaining"] == 1000 - made
    assert error_of(refused, 403) == {"message": "TotalRequests Limit exceeded.",
                                      "errorCode": "REQUEST_LIMIT_EXCEEDED"}
