"""Parent-record locks: target-salesforce-crm against the sandbox's concurrent batches.

80 Contacts under 8 Accounts, the input in round-robin order (each run of 8 records touches
every Account), batches of 20 and a sandbox where a batch holds its Accounts for a while:
in input order every batch of the Parallel job contends with the others; grouped by
AccountId, each batch holds two whole Accounts and none contends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.test_salesforce_bulk import Bulk
from support.target_salesforce_crm import (
    config_for,
    kinds,
    records,
    report_of,
    run_target,
    seed,
    singer,
)

ACCOUNTS, PER_ACCOUNT = 8, 10
SCHEMA = {"type": "object", "properties": {
    "id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
    "engagementScore": {"type": ["number", "null"]}}}
# A 20-record batch holds its Accounts 0.4 s; a contending one gives up after 0.05 s.
SLOW_BATCHES = {"record_processing_ms": 20, "lock_wait_seconds": 0.05}


def seed_accounts_with_contacts(sf: Any) -> list[dict[str, Any]]:
    """The users of the input, round-robin over the Accounts (the worst order)."""
    accounts = seed(sf, "Account", [{"Name": f"Account {a}"} for a in range(ACCOUNTS)])
    seed(sf, "Contact", [
        {"LastName": f"C{a}-{c}", "Email": f"c{a}-{c}@example.com", "AccountId": accounts[a]}
        for a in range(ACCOUNTS) for c in range(PER_ACCOUNT)])
    return [{"id": f"u-{c}-{a}", "emailAddress": f"c{a}-{c}@example.com",
             "engagementScore": c * ACCOUNTS + a}
            for c in range(PER_ACCOUNT) for a in range(ACCOUNTS)]


def run(sf: Any, tmp_path: Path, users: list[dict[str, Any]], **settings: Any) -> dict:
    cfg = config_for(sf, tmp_path, bulk_batch_size=20, fail_on_rejects=len(users), **settings)
    sf.faults(**SLOW_BATCHES)
    sf.clear_ledger()
    run_target(cfg, singer("users", SCHEMA, users))
    return report_of(cfg)


def rejects(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open()]


def scores(sf: Any) -> list[Any]:
    return [row["Personalization_Engagement_Score__c"]
            for row in records(sf, "Contact", "Personalization_Engagement_Score__c")]


def job_modes(sf: Any) -> list[str]:
    """concurrencyMode of every job the run added batches to, in order of creation."""
    paths = [call["path"] for call in sf.ledger()["calls"]
             if call["kind"] == "bulk_batch" and call["method"] == "POST"]
    job_ids = list(dict.fromkeys(path.split("/job/")[1].split("/")[0] for path in paths))
    bulk = Bulk(sf)
    return [bulk.ok("GET", f"job/{job_id}")["concurrencyMode"] for job_id in job_ids]


def test_input_order_makes_parallel_batches_fail_on_their_accounts(
        sf: Any, tmp_path: Path) -> None:
    users = seed_accounts_with_contacts(sf)

    report = run(sf, tmp_path, users, group_by_parent=False, max_record_retries=0)

    locked = [r for r in rejects(tmp_path) if r["code"] == "UNABLE_TO_LOCK_ROW"]
    contact = report["objects"]["Contact"]
    assert locked  # the sandbox's Parallel batches contend for the Accounts
    assert (contact["updated"] + contact["rejected"], contact["rejected"]) == (80, len(locked))


def test_grouped_by_account_no_batch_contends(sf: Any, tmp_path: Path) -> None:
    users = seed_accounts_with_contacts(sf)

    report = run(sf, tmp_path, users, max_record_retries=0)

    contact = report["objects"]["Contact"]
    assert (contact["updated"], contact["rejected"], contact["lock_retried"]) == (80, 0, 0)
    assert rejects(tmp_path) == []
    assert None not in scores(sf)
    ledger = kinds(sf)
    # the AccountId came with the match look-up: one query for 80 candidates
    assert (ledger["soap_query"], ledger["bulk_batch"]) == (1, 4)
    assert job_modes(sf) == ["Parallel"]


def test_lock_failures_are_retried_in_a_serial_job_and_none_is_lost(
        sf: Any, tmp_path: Path) -> None:
    users = seed_accounts_with_contacts(sf)

    report = run(sf, tmp_path, users, group_by_parent=False)

    contact = report["objects"]["Contact"]
    assert (contact["updated"], contact["rejected"]) == (80, 0)
    assert contact["lock_retried"] > 0
    assert contact["retried"] >= contact["lock_retried"]
    assert sorted(scores(sf)) == list(range(80))
    assert job_modes(sf) == ["Parallel", "Serial"]
    assert contact["bulk_jobs"] == 2
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "of them after a lock" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| Contact "))
    assert row.endswith(f"| {contact['retried']} | {contact['lock_retried']} |")


def test_serial_mode_sends_one_serial_job_without_lock_failures(
        sf: Any, tmp_path: Path) -> None:
    users = seed_accounts_with_contacts(sf)

    report = run(sf, tmp_path, users, group_by_parent=False, concurrency_mode="Serial",
                 max_record_retries=0)

    contact = report["objects"]["Contact"]
    assert (contact["updated"], contact["rejected"], contact["lock_retried"]) == (80, 0, 0)
    assert job_modes(sf) == ["Serial"]
