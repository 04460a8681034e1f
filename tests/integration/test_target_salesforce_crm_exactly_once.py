"""Nothing is written twice: lost replies, killed runs and revoked sessions, against the sandbox.

The sandbox's `drop_replies` fault carries a request out and then hangs up, so the target
cannot tell from the answer whether its batch arrived; the sandbox's own counts (batches,
rows processed, jobs by state) say what Salesforce did.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.target_salesforce_crm import (
    HookedInput,
    config_for,
    lines,
    records,
    report_of,
    run_target,
    seed,
    singer,
)
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import AuthenticationError
from target_salesforce_crm.target.bulk import BulkClient
from target_salesforce_crm.target.journal import BulkJournal, JournalRow
from target_salesforce_crm.target.target import TargetSalesforceCRM

USER_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
                   "engagementScore": {"type": ["number", "null"]}},
}
BATCH_POST = r"^POST /services/async/[^/]+/job/[^/]+/batch$"


def users(count: int, score: float = 0.5) -> list[dict[str, Any]]:
    return [{"id": f"u-{n:06d}", "emailAddress": f"user{n}@example.com", "engagementScore": score}
            for n in range(count)]


def bulk(sf: Any) -> dict[str, Any]:
    return dict(sf.admin("GET", "status")["bulk"])


def seeded(sf: Any, count: int) -> None:
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"user{n}@example.com"}
                         for n in range(count)])
    sf.clear_ledger()


def test_a_lost_batch_reply_is_found_in_the_job_not_sent_again(
    sf: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    seeded(sf, 1000)
    sf.admin("POST", "faults", json={"drop_replies": 2, "drop_reply_match": BATCH_POST})
    cfg = config_for(sf, tmp_path, bulk_batch_size=100)

    run_target(cfg, singer("users", USER_SCHEMA, users(1000), {"done": 1}))

    contact = report_of(cfg)["objects"]["Contact"]
    assert (contact["updated"], contact["bulk_batches"], contact["rejected"]) == (1000, 10, 0)
    assert bulk(sf) == {"jobs": {"Closed": 1}, "batches": 10, "records_processed": 1000}
    lost = [r.getMessage() for r in caplog.records if "was lost" in r.getMessage()]
    assert len(lost) == 2
    assert "Salesforce has it as batch" in lost[0]


def test_after_kill_9_the_next_run_reads_what_was_sent_and_writes_only_the_rest(
    sf: Any, tmp_path: Path,
) -> None:
    """Killed with batches in Salesforce's hands: the next run (same input, the tap's STATE
    never moved) reads their results, fingerprints them, closes the job, sends the rest."""
    seeded(sf, 1000)
    sf.admin("POST", "faults", json={"batch_delay_seconds": 0.5})
    cfg = config_for(sf, tmp_path, bulk_batch_size=100)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "input.jsonl").write_text(
        lines(singer("users", USER_SCHEMA, users(1000), {"done": 1})))
    with (tmp_path / "input.jsonl").open("rb") as stdin:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "target-salesforce-crm"),
             "--config", str(tmp_path / "config.json")],
            stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while bulk(sf)["batches"] < 3:
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.kill()
        process.wait(timeout=30)
    sent = bulk(sf)["batches"]
    assert bulk(sf)["jobs"] == {"Open": 1}
    sf.admin("POST", "faults", json={})

    run_target(cfg, singer("users", USER_SCHEMA, users(1000), {"done": 1}))

    report = report_of(cfg)
    recovered = report["recovered"]["Contact"]
    assert (recovered["batches"], recovered["updated"], recovered["jobs_closed"]) == (
        sent, sent * 100, 1)
    contact = report["objects"]["Contact"]
    assert (contact["unchanged"], contact["updated"]) == (sent * 100, 1000 - sent * 100)
    assert bulk(sf) == {"jobs": {"Closed": 2}, "batches": 10, "records_processed": 1000}


def test_after_a_revoked_session_the_next_run_writes_nothing_twice(
    sf: Any, tmp_path: Path,
) -> None:
    """Revoked with a batch sent: the job cannot even be aborted; the next run (access
    restored) reads that batch, closes the job and writes only the other records."""
    seeded(sf, 20)
    text = lines(singer("users", USER_SCHEMA, users(20), {"done": 1}))

    def revoke_at_line_14(number: int) -> None:
        if number == 14:
            sf.admin("POST", "revoke", json={"reason": "ip restricted"})

    cfg = config_for(sf, tmp_path, batch_size_rows=10, bulk_batch_size=10)
    with pytest.raises(AuthenticationError, match="ip restricted"):
        TargetSalesforceCRM(config=cfg).listen(HookedInput(text, revoke_at_line_14))
    assert bulk(sf)["jobs"] == {"Open": 1}
    sf.admin("POST", "revoke", json={"reason": None})

    run_target(cfg, singer("users", USER_SCHEMA, users(20), {"done": 1}))

    report = report_of(cfg)
    assert report["recovered"]["Contact"]["updated"] == 10
    contact = report["objects"]["Contact"]
    assert (contact["unchanged"], contact["updated"]) == (10, 10)
    assert bulk(sf) == {"jobs": {"Closed": 2}, "batches": 2, "records_processed": 20}


def test_a_batch_killed_mid_post_is_found_in_its_job_by_the_next_run(
    sf: Any, tmp_path: Path,
) -> None:
    """Killed while the batch POST was on the wire: the journal has the batch without an id;
    the next run finds it in the job's batch list, reads its results, closes the job."""
    seeded(sf, 5)
    ids = [row["Id"] for row in records(sf, "Contact", "Id")]
    cfg = config_for(sf, tmp_path)
    client = SalesforceClient(cfg)
    bulk_client = BulkClient(client, poll_initial=0.05, poll_max=0.2)
    org = client.session().instance_url.rstrip("/").lower()
    journal = BulkJournal(Path(cfg["fingerprint_db"]), lambda: org)
    job_id = bulk_client.create_job("update", "Contact")
    journal.job_opened(job_id, "Contact", "update", None)
    payload = [{"Id": crm_id, "Personalization_Engagement_Score__c": 0.5} for crm_id in ids]
    journal.sending(job_id, [JournalRow(crm_id, None, row)
                             for crm_id, row in zip(ids, payload, strict=True)])
    bulk_client.add_batch(job_id, payload)  # arrives; the journal never learns its id
    journal.close()  # the process dies here

    run_target(cfg, singer("users", USER_SCHEMA, [], {"done": 1}))

    recovered = report_of(cfg)["recovered"]["Contact"]
    assert (recovered["batches"], recovered["updated"], recovered["jobs_closed"]) == (1, 5, 1)
    assert bulk(sf)["jobs"] == {"Closed": 1}
    assert not BulkJournal(Path(cfg["fingerprint_db"]), lambda: org).ended_runs()


def test_a_lost_job_creation_reply_leaves_no_job_open(
    sf: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Salesforce opened the job but the answer never came: "Get All Jobs" finds it, and the
    run uses it rather than opening a second one that would stay Open."""
    seeded(sf, 30)
    sf.admin("POST", "faults", json={"drop_replies": 1,
                                     "drop_reply_match": r"^POST /services/async/[^/]+/job$"})
    cfg = config_for(sf, tmp_path, bulk_batch_size=10)

    run_target(cfg, singer("users", USER_SCHEMA, users(30), {"done": 1}))

    assert report_of(cfg)["objects"]["Contact"]["updated"] == 30
    assert bulk(sf) == {"jobs": {"Closed": 1}, "batches": 3, "records_processed": 30}
    assert any("the answer to the job creation was lost" in r.getMessage()
               for r in caplog.records)
