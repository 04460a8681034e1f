"""target-salesforce-crm with `bulk_api: "2.0"` against the sandbox: the same records,
outcomes, rejects and fingerprints as Bulk 1.0, and the calls Bulk 2.0 costs (ledger)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.target_salesforce_crm import (
    config_for,
    kinds,
    records,
    report_of,
    run_target,
    seed,
    singer,
)
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.target import bulk as bulk_module
from target_salesforce_crm.target.bulk2 import Bulk2Client

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "emailAddress": {"type": ["string", "null"]},
        "displayName": {"type": ["string", "null"]},
        "engagementScore": {"type": ["number", "null"]},
        "attributes": {"type": ["object", "null"]},
    },
}
UPDATE_MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    match:
      - {field: Email, source: emailAddress, normalize: [email]}
    fields:
      Personalization_Engagement_Score__c: {source: engagementScore}
      Title: {source: attributes.title}
      Personalization_User_Id__c: {source: attributes.external}
"""
UPSERT_MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    write:
      mode: upsert
      external_id: Personalization_User_Id__c
      create_defaults:
        LastName: {source: displayName, default: "[not provided]"}
        Email: {source: emailAddress}
    match:
      - {field: Personalization_User_Id__c, source: id}
      - {field: Email, source: emailAddress, normalize: [email]}
    fields:
      Personalization_User_Id__c: {source: id}
      Personalization_Engagement_Score__c: {source: engagementScore}
"""


def user(n: int, email: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"u-{n:06d}", "emailAddress": email, "displayName": f"User {n}",
            "engagementScore": round(n / 1000, 3), "attributes": {}, **extra}


def contact_row(report: dict[str, Any]) -> tuple[int, ...]:
    contact = report["objects"]["Contact"]
    return (contact["updated"], contact["created"], contact["unchanged"],
            contact["unmatched"], contact["rejected"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_updates_match_bulk_1_and_cost_the_counted_calls(sf: Any, tmp_path: Path) -> None:
    """2,500 updates in 3 ingest jobs: 3 calls each to send, one result set each to read."""
    ids = seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                               for n in range(2_500)])
    users = [user(n, f"c{n}@example.com") for n in range(2_500)]
    users += [user(n, f"nobody{n}@example.com") for n in range(2_500, 2_600)]
    sf.clear_ledger()

    cfg = config_for(sf, tmp_path, UPDATE_MAPPING, bulk_api="2.0", bulk_batch_size=1_000)
    run_target(cfg, singer("users", SCHEMA, users))

    stored = {row["Id"]: row["Personalization_Engagement_Score__c"]
              for row in records(sf, "Contact", "Id,Personalization_Engagement_Score__c")}
    assert stored == pytest.approx({ids[n]: round(n / 1000, 3) for n in range(2_500)})
    report = report_of(cfg)
    assert report["bulk_api"] == "2.0"
    assert contact_row(report) == (2_500, 0, 0, 100, 0)
    assert report["objects"]["Contact"]["bulk_batches"] == 3
    ledger = kinds(sf)
    assert ledger["bulk_job"] == 6  # create + UploadComplete per ingest job
    assert ledger["bulk_batch"] == 3  # one CSV upload each
    assert ledger["bulk_result"] == 3  # successfulResults only: no record failed
    assert ledger["bulk_poll"] >= 3
    assert report["api_calls"]["bulk"] == sum(
        ledger[kind] for kind in ("bulk_job", "bulk_batch", "bulk_result", "bulk_poll"))

    # Fingerprints were recorded from the 2.0 results: the same input again writes nothing.
    sf.clear_ledger()
    run_target(cfg, singer("users", SCHEMA, users))
    assert contact_row(report_of(cfg)) == (0, 0, 2_500, 100, 0)
    assert not {"bulk_job", "bulk_batch"} & set(kinds(sf))


def test_per_record_failures_become_rejects_with_reasons(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com",
                          **({"Personalization_User_Id__c": "taken"} if n == 3 else {})}
                         for n in range(4)])
    users = [user(0, "c0@example.com", attributes={"title": "CTO"}),
             user(1, "c1@example.com", attributes={"external": "taken"}),
             user(2, "c2@example.com", attributes={"title": None}),
             user(4, "nobody@example.com")]
    sf.clear_ledger()

    cfg = config_for(sf, tmp_path, UPDATE_MAPPING, bulk_api="2.0", fail_on_rejects=10)
    run_target(cfg, singer("users", SCHEMA, users))

    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    assert [(r["key"], r["stage"], r["code"]) for r in rejects] == [
        ("u-000001", "salesforce", "DUPLICATE_VALUE")]
    assert rejects[0]["crm_id"] is not None
    assert "Personalization_User_Id__c" in rejects[0]["message"]
    assert contact_row(report_of(cfg)) == (2, 0, 0, 1, 1)
    assert records(sf, "Contact", "Title", "Email = 'c0@example.com'") == [{"Title": "CTO"}]
    assert kinds(sf)["bulk_result"] == 2  # both sets: a success and a failure


def test_upsert_creates_then_updates_without_duplicates(sf: Any, tmp_path: Path) -> None:
    existing = seed(sf, "Contact", [{"LastName": "Old", "Email": "ada@example.com"}])
    users = [user(1, "Ada@Example.com"), user(2, "new1@example.com"),
             user(3, "new2@example.com", displayName=None)]
    cfg = config_for(sf, tmp_path, UPSERT_MAPPING, bulk_api="2.0")

    run_target(cfg, singer("users", SCHEMA, users))

    fields = "Id,LastName,Personalization_User_Id__c"
    first = {r["Personalization_User_Id__c"]: r for r in records(sf, "Contact", fields)}
    assert set(first) == {"u-000001", "u-000002", "u-000003"}
    assert first["u-000001"]["Id"] == existing[0]
    assert first["u-000003"]["LastName"] == "[not provided]"
    assert contact_row(report_of(cfg)) == (1, 2, 0, 0, 0)

    users = [{**u, "engagementScore": 5.0} for u in users]
    run_target(cfg, singer("users", SCHEMA, users))
    second = {r["Personalization_User_Id__c"]: r["Id"] for r in records(sf, "Contact", fields)}
    assert second == {key: row["Id"] for key, row in first.items()}
    assert contact_row(report_of(cfg)) == (3, 0, 0, 0, 0)


def test_lock_failures_and_a_failed_job_are_retried(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(300)])
    users = [user(n, f"c{n}@example.com") for n in range(300)]
    sf.faults(lock_row_rate=0.1, fail_batches=1, seed=3)

    cfg = config_for(sf, tmp_path, UPDATE_MAPPING, bulk_api="2.0", bulk_batch_size=100,
                     max_record_retries=6)
    run_target(cfg, singer("users", SCHEMA, users))

    report = report_of(cfg)
    assert contact_row(report) == (300, 0, 0, 0, 0)
    assert report["objects"]["Contact"]["retried"] >= 100 + 20  # the failed job, ~10 % rows
    stored = records(sf, "Contact", "Personalization_Engagement_Score__c")
    assert all(row["Personalization_Engagement_Score__c"] is not None for row in stored)


def test_insert_results_are_matched_back_out_of_order(salesforce_sandbox: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Insert rows carry no key: the whole row identifies its result, twins share one."""
    salesforce_sandbox.reset()
    monkeypatch.setattr(bulk_module, "sleep", lambda seconds: None)
    client = SalesforceClient({
        "auth_url": salesforce_sandbox.url, "ca_bundle": salesforce_sandbox.ca_bundle,
        "client_id": "", "client_secret": "", **_credentials()})
    bulk = Bulk2Client(client, poll_initial=0.02, poll_max=0.05)
    handle = bulk.create_job("insert", "Contact")
    rows = [{"LastName": "Ann", "Email": "ann@example.com"},
            {"LastName": "Bob", "Email": "not an email"},
            {"LastName": "Ann", "Email": "ann@example.com"},
            {"LastName": "Cy", "Email": None, "Title": ""}]
    ingest_id = bulk.add_batch(handle, rows)
    [result] = list(bulk.wait(handle, [ingest_id]))
    assert result.state == "Completed"
    assert [(row["success"], row["created"]) for row in result.rows] == [
        (True, True), (False, False), (True, True), (True, True)]
    assert result.rows[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert result.rows[1]["errors"][0]["fields"] == ["Email"]
    assert result.rows[0]["id"] != result.rows[2]["id"]
    stored = {row["Id"]: row for row in records(salesforce_sandbox, "Contact",
                                                  "Id,LastName,Email,Title")}
    assert stored[result.rows[3]["id"]] == {"Id": result.rows[3]["id"], "LastName": "Cy",
                                            "Email": None, "Title": None}
    assert client.api_calls["bulk"] >= 5  # create, upload, close, a poll, two result sets
    salesforce_sandbox.reset()


def _credentials() -> dict[str, str]:
    from emulators import defaults

    return {"client_id": defaults.SF_CLIENT_ID, "client_secret": defaults.SF_CLIENT_SECRET}
