"""Bulk API 2.0 query jobs for tap-salesforce-crm's first syncs, with requests-mock (the same
flows against the sandbox are in tests/integration/test_tap_salesforce_crm_bulk.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests_mock as rm
from target_salesforce_crm import client as client_module
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import SalesforceError
from target_salesforce_crm.tap.streams import BulkQuery
from target_salesforce_crm.tap.tap import TapSalesforceCRM

from .test_tap_sf_streams import (
    INSTANCE,
    REST,
    config,
    final_state,
    mock_describes,
    only,
    queries,
    records,
    run_sync,
)

JOBS = f"{REST}/jobs/query"
PAGE_1 = (
    "Id,Email,IsDeleted,Title,Department,LeadSource,SystemModstamp\n"
    '003A,a@x.com,false,"Chief, ""Data"" Officer","Line one\nline two",Web,'
    "2024-05-01T10:00:00.000+0000\n"
)
PAGE_2 = (
    "Id,Email,IsDeleted,Title,Department,LeadSource,SystemModstamp\n"
    "003B,b@x.com,true,,,,2024-05-02T11:30:00.250+0000\n"
)


def bulk_job(mock: rm.Mocker, *, states: list[str], pages: list[tuple[str, str]],
             error: str | None = None) -> None:
    mock.post(JOBS, json={"id": "750J", "operation": "queryAll", "state": "UploadComplete"})
    mock.get(f"{JOBS}/750J", [
        {"json": {"id": "750J", "state": state, **({"errorMessage": error} if error else {})}}
        for state in states
    ])
    mock.get(f"{JOBS}/750J/results", [
        {"text": body, "headers": {"Sforce-Locator": locator, "Content-Type": "text/csv"}}
        for body, locator in pages
    ])
    mock.patch(f"{JOBS}/750J", json={"id": "750J", "state": "Aborted"})


@pytest.fixture
def org(requests_mock: rm.Mocker, monkeypatch: pytest.MonkeyPatch) -> rm.Mocker:
    monkeypatch.setattr(client_module, "sleep", lambda seconds: None)  # the read ceiling's wait
    return mock_describes(requests_mock)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BulkQuery, "POLL_INITIAL_SECONDS", 0.0)


def test_first_sync_with_bulk_reads_every_csv_page_typed(org: rm.Mocker) -> None:
    bulk_job(org, states=["InProgress", "JobComplete"],
             pages=[(PAGE_1, "MTAwMDA"), (PAGE_2, "null")])
    messages = run_sync(only(TapSalesforceCRM(config=config(use_bulk_api=True)), "contacts"))
    created = json.loads(next(r for r in org.request_history if r.method == "POST").body)
    assert created["operation"] == "queryAll"  # deleted rows too
    assert created["contentType"] == "CSV"
    # A first sync: no lower bound, only the run's read ceiling.
    assert re.search(r"FROM Contact WHERE SystemModstamp <= \S+Z ORDER BY SystemModstamp ASC, "
                     r"Id ASC$", created["query"]), created["query"]
    got = records(messages, "contacts")
    assert got[0] == {"Id": "003A", "Email": "a@x.com", "IsDeleted": False,
                      "Title": 'Chief, "Data" Officer', "Department": "Line one\nline two",
                      "LeadSource": "Web", "SystemModstamp": "2024-05-01T10:00:00.000Z"}
    assert got[1]["IsDeleted"] is True
    assert got[1]["Title"] is None
    results = [r for r in org.request_history if r.url.startswith(f"{JOBS}/750J/results")]
    assert [r.qs.get("locator") for r in results] == [None, ["mtawmda"]]
    assert all(r.qs["maxrecords"] == ["50000"] for r in results)
    assert queries(org) == []  # no REST query at all
    assert final_state(messages)["bookmarks"]["contacts"]["replication_key_value"] == \
        "2024-05-02T11:30:00.250Z"


def test_runs_with_a_bookmark_stay_on_rest(org: rm.Mocker) -> None:
    org.get(re.compile(rf"{re.escape(REST)}/queryAll/\?"),
            json={"totalSize": 0, "done": True, "records": []})
    state = {"bookmarks": {"contacts": {"replication_key": "SystemModstamp",
                                        "replication_key_value": "2024-05-02T11:30:00.250Z"}}}
    run_sync(only(TapSalesforceCRM(config=config(use_bulk_api=True), state=state), "contacts"))
    assert len(queries(org)) == 1
    assert not any("/jobs/query" in r.url for r in org.request_history)


def test_failed_job_names_the_job_and_the_reason(org: rm.Mocker) -> None:
    bulk_job(org, states=["Failed"], pages=[], error="INVALID_FIELD: No such column 'Foo'")
    with pytest.raises(SalesforceError, match=r"750J ended Failed: INVALID_FIELD"):
        run_sync(only(TapSalesforceCRM(config=config(use_bulk_api=True)), "contacts"))
    # A job that already ended is not aborted again (that PATCH could only fail).
    assert [r for r in org.request_history if r.method == "PATCH"] == []


def test_polls_with_growing_pauses_and_aborts_on_timeout(requests_mock: rm.Mocker) -> None:
    bulk_job(requests_mock, states=["InProgress"] * 7, pages=[])
    client = SalesforceClient(config())
    pauses: list[float] = []
    now = [0.0]

    def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    reader = BulkQuery(client, sleep=fake_sleep, clock=lambda: now[0])
    reader.POLL_INITIAL_SECONDS, reader.POLL_TIMEOUT_SECONDS = 0.5, 20.0
    with pytest.raises(SalesforceError, match=r"still InProgress.*aborted"):
        list(reader.rows("SELECT Id FROM Contact"))
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    aborts = [r for r in requests_mock.request_history if r.method == "PATCH"]
    assert [json.loads(r.body) for r in aborts] == [{"state": "Aborted"}]
    assert client.api_calls["bulk"] == 1 + 7 + 1


def test_results_are_streamed_not_loaded(requests_mock: rm.Mocker) -> None:
    bulk_job(requests_mock, states=["JobComplete"], pages=[(PAGE_2, "null")])
    reader = BulkQuery(SalesforceClient(config()))
    rows: Any = reader.rows("SELECT Id FROM Contact")
    first = next(rows)
    assert first["Id"] == "003B"
    results = [r for r in requests_mock.request_history if "/results" in r.url]
    assert results[0].stream is True
    assert INSTANCE in results[0].url


def test_an_org_without_bulk_query_gets_told_to_turn_the_option_off(
    requests_mock: rm.Mocker,
) -> None:
    requests_mock.post(JOBS, status_code=404, json=[
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    reader = BulkQuery(SalesforceClient(config()))
    with pytest.raises(SalesforceError, match="Set use_bulk_api false"):
        list(reader.rows("SELECT Id FROM Contact"))
