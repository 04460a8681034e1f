"""tap-salesforce-crm with `use_bulk_api: true` against the running Salesforce sandbox.

A first sync reads every stream through a Bulk API 2.0 query job and must emit exactly the
records (and bookmarks) a REST sync emits; a run with a bookmark goes through REST. Call
counts come from the sandbox's ledger.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import partial
from typing import Any

import pytest
from target_salesforce_crm import client as client_module
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import SalesforceError
from target_salesforce_crm.tap import streams
from target_salesforce_crm.tap.streams import BulkQuery
from target_salesforce_crm.tap.tap import TapSalesforceCRM

from .test_tap_salesforce_crm import (
    SOBJECTS,
    emitted,
    last_state,
    seed,
    seed_crm,
    sync,
    tap_config,
)

pytestmark = pytest.mark.integration

JOB_PATH = re.compile(r"/jobs/query/(?P<id>750\w+)")
TRICKY_TITLE = 'Chief "Data", Officer\nsecond line'


@pytest.fixture
def sandbox(salesforce_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    salesforce_sandbox.reset()
    monkeypatch.setattr(client_module, "sleep", lambda seconds: None)
    monkeypatch.setattr(BulkQuery, "POLL_INITIAL_SECONDS", 0.01)
    return salesforce_sandbox


def records(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records per stream in the order they were emitted."""
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            by_stream.setdefault(message["stream"], []).append(message["record"])
    return by_stream


def only(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == stream
    return catalog


def job_calls(ledger: dict[str, Any]) -> dict[str, list[tuple[str, str, int]]]:
    """Per query job id: its (kind, method, status) calls in order; creates under "new"."""
    calls: dict[str, list[tuple[str, str, int]]] = {}
    for call in ledger["calls"]:
        match = JOB_PATH.search(call["path"])
        key = match["id"] if match else "new" if call["kind"] == "bulk_job" else call["kind"]
        calls.setdefault(key, []).append((call["kind"], call["method"], call["status"]))
    return calls


def test_first_sync_through_bulk_equals_rest_and_the_next_run_uses_rest(sandbox: Any) -> None:
    ids = seed_crm(sandbox)
    tricky = seed(sandbox, "Contact", [
        {"LastName": "Quoted", "Title": TRICKY_TITLE, "Department": "R&D, Labs",
         "AccountId": ids["accounts"][0]}])[0]
    crm = SalesforceClient(tap_config(sandbox))
    removed = ids["campaign_members"][2]
    crm.request("DELETE", f"{crm.rest_path}/sobjects/CampaignMember/{removed}", kind="other")
    config, bulk_config = tap_config(sandbox), tap_config(sandbox, use_bulk_api=True)
    catalog = TapSalesforceCRM(config=config).catalog_dict

    sandbox.clear_ledger()
    over_rest = sync(config, catalog=catalog)
    rest_ledger = sandbox.ledger()
    sandbox.clear_ledger()
    over_bulk = sync(bulk_config, catalog=catalog)
    bulk_ledger = sandbox.ledger()

    assert records(over_bulk) == records(over_rest)
    assert last_state(over_bulk) == last_state(over_rest)
    got = emitted(over_bulk)
    assert {name: set(got[name]) for name in SOBJECTS} == {
        name: set(ids[name]) | ({tricky} if name == "contacts" else set())
        for name in SOBJECTS}
    assert got["contacts"][tricky]["Title"] == TRICKY_TITLE
    assert got["contacts"][tricky]["Department"] == "R&D, Labs"
    assert got["contacts"][tricky]["Email"] is None
    assert got["campaign_members"][removed]["IsDeleted"] is True  # queryAll job
    assert got["campaign_members"][ids["campaign_members"][0]]["Campaign"] == {
        "Name": "Spring Webinar 2026"}
    assert rest_ledger["by_kind"] == {"oauth": 1, "rest_query": 4}
    assert set(bulk_ledger["by_kind"]) == {"oauth", "bulk_job", "bulk_poll", "bulk_result"}
    per_job = job_calls(bulk_ledger)
    assert per_job["new"] == [("bulk_job", "POST", 200)] * 4  # one job per stream
    jobs = {key: calls for key, calls in per_job.items() if key.startswith("750")}
    assert len(jobs) == 4
    for calls in jobs.values():  # polled until complete, then one result set each
        assert calls[-1] == ("bulk_result", "GET", 200)
        assert set(calls[:-1]) == {("bulk_poll", "GET", 200)}

    # A CRM user edits a contact; the next run has bookmarks, so it reads through REST.
    contact = ids["contacts"][0]
    crm.request("PATCH", f"{crm.rest_path}/sobjects/Contact/{contact}", kind="other",
                json={"Title": "VP Engineering"})
    sandbox.clear_ledger()
    again = sync(bulk_config, state=last_state(over_bulk), catalog=catalog)
    assert sandbox.ledger()["by_kind"] == {"oauth": 1, "rest_query": 4}
    assert emitted(again)["contacts"][contact]["Title"] == "VP Engineering"
    assert records(again) == records(sync(config, state=last_state(over_rest),
                                          catalog=catalog))


def test_large_first_sync_reads_every_result_set_by_locator(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"P{i}", "Email": f"p{i}@example.com", "Title": None if i % 3 else "T"}
        for i in range(2_500)])
    monkeypatch.setattr(streams, "BulkQuery", partial(BulkQuery, page_size=1_000))
    config = tap_config(sandbox)
    catalog = only(TapSalesforceCRM(config=config).catalog_dict, "contacts")

    over_rest = records(sync(config, catalog=catalog))
    sandbox.clear_ledger()
    over_bulk = records(sync(tap_config(sandbox, use_bulk_api=True), catalog=catalog))

    assert len(over_bulk["contacts"]) == 2_500
    assert over_bulk == over_rest
    results = [c for c in sandbox.ledger()["calls"] if c["kind"] == "bulk_result"]
    assert len(results) == 3  # 1,000 + 1,000 + 500 rows
    assert Counter(c["kind"] for c in sandbox.ledger()["calls"])["bulk_job"] == 1


def test_a_failed_job_stops_the_sync_with_an_actionable_error(sandbox: Any) -> None:
    seed_crm(sandbox)
    sandbox.faults(fail_batches=1)
    config = tap_config(sandbox, use_bulk_api=True)
    catalog = only(TapSalesforceCRM(config=config).catalog_dict, "contacts")
    sandbox.clear_ledger()

    with pytest.raises(SalesforceError) as caught:
        sync(config, catalog=catalog)

    message = str(caught.value)
    assert "ended Failed: InternalServerError" in message
    assert "use_bulk_api false" in message
    kinds = Counter(c["kind"] for c in sandbox.ledger()["calls"])
    assert kinds["bulk_result"] == 0  # no result set of a failed job is asked for


def test_a_job_given_up_on_is_aborted_in_the_org(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_crm(sandbox)
    sandbox.faults(batch_delay_seconds=30)  # the abort ends it early
    monkeypatch.setattr(BulkQuery, "POLL_TIMEOUT_SECONDS", 0.05)
    config = tap_config(sandbox, use_bulk_api=True)
    catalog = only(TapSalesforceCRM(config=config).catalog_dict, "contacts")
    sandbox.clear_ledger()

    with pytest.raises(SalesforceError, match="it was aborted"):
        sync(config, catalog=catalog)

    aborts = [c for c in sandbox.ledger()["calls"] if c["method"] == "PATCH"]
    assert [(c["kind"], c["status"]) for c in aborts] == [("bulk_job", 200)]
    job_id = JOB_PATH.search(aborts[0]["path"])["id"]
    crm = SalesforceClient(config)
    info = crm.request("GET", f"{crm.rest_path}/jobs/query/{job_id}", kind="bulk").json()
    assert info["state"] == "Aborted"
