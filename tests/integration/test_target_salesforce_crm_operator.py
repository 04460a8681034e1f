"""Operator features of target-salesforce-crm against the Salesforce sandbox.

Dry run (nothing written, the counts of the real run foreseen), change detection
(fingerprints: unchanged records are not sent again) and the `--test` connection check.
Outcomes come from the sandbox's record store and API ledger.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from emulators import defaults
from support.target_salesforce_crm import (
    config_for,
    kinds,
    records,
    report_of,
    run_target,
    seed,
    singer,
)

pytestmark = pytest.mark.integration

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "emailAddress": {"type": ["string", "null"]},
        "engagementScore": {"type": ["number", "null"]},
        "attributes": {"type": ["object", "null"]},
    },
}

MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    match:
      - {field: Email, source: emailAddress, normalize: [trim, lowercase]}
    fields:
      Personalization_Engagement_Score__c: {source: engagementScore, convert: [{round: 4}]}
      Personalization_Tier__c:
        source: attributes.plan
        convert: [{value_map: {gold: Gold, silver: Silver}, default: keep}]
"""

BULK_KINDS = {"bulk_job", "bulk_batch", "bulk_poll", "bulk_result"}
COUNTS = ("candidates", "matched", "unmatched", "ambiguous", "updated", "created",
          "unchanged", "rejected", "rejected_by_code")


def config(sf: Any, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The test mapping; fingerprints in a folder the target has to create."""
    return config_for(sf, tmp_path, MAPPING, **{
        "fingerprint_db": str(tmp_path / "cache" / "fingerprints.sqlite"), **overrides})


def user(n: int, email: str | None, score: float | None = None,
         plan: str = "gold") -> dict[str, Any]:
    return {"id": f"u-{n:06d}", "emailAddress": email,
            "engagementScore": round(n / 1000, 4) if score is None else score,
            "attributes": {"plan": plan}}


def run(cfg: dict[str, Any], users: list[dict[str, Any]]) -> dict[str, Any]:
    """One run over `users`; its report."""
    run_target(cfg, singer("users", USER_SCHEMA, users))
    return report_of(cfg)


def checksum(sf: Any) -> str:
    """Every row (all fields, system stamps included) of the objects the target may write."""
    digest = hashlib.sha256()
    for sobject in ("Contact", "Lead", "Account"):
        rows = sorted(sf.admin("GET", f"records/{sobject}"), key=lambda row: row["Id"])
        digest.update(json.dumps(rows, sort_keys=True).encode())
    return digest.hexdigest()


def modified(sf: Any) -> dict[str, str]:
    return {row["Id"]: row["LastModifiedDate"]
            for row in records(sf, "Contact", "Id,LastModifiedDate")}


def counts(report: dict[str, Any]) -> dict[str, Any]:
    contact = report["objects"]["Contact"]
    return {name: contact[name] for name in COUNTS}


# -- dry run ------------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_foresees_the_real_run(sf: Any, tmp_path: Path) -> None:
    ids = seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                               for n in range(30)])
    seed(sf, "Contact", [{"LastName": "Twin", "Email": "twin@example.com"}] * 2)
    seed(sf, "Lead", [{"LastName": "L", "Company": "X", "Email": "c1@example.com"}])
    seed(sf, "Account", [{"Name": "Acme"}])
    users = [user(n, f"c{n}@example.com") for n in range(28)]
    users += [user(28, "c28@example.com", plan="platinum"),  # not in the restricted picklist
              user(29, "C29@Example.com ", plan="silver"),
              user(30, "twin@example.com"),  # two contacts: ambiguous
              *[user(n, f"nobody{n}@example.org") for n in range(31, 36)]]
    before = checksum(sf)
    sf.clear_ledger()

    cfg = config(sf, tmp_path, dry_run=True, fail_on_rejects=10)
    dry = run(cfg, users)

    assert checksum(sf) == before
    ledger = kinds(sf)
    assert not BULK_KINDS & set(ledger)
    assert set(ledger) == {"oauth", "describe", "soap_query"}
    assert dry["dry_run"] is True
    assert counts(dry) == {
        "candidates": 36, "matched": 30, "unmatched": 5, "ambiguous": 1, "updated": 29,
        "created": 0, "unchanged": 0, "rejected": 1,  # the ambiguous one is counted apart
        "rejected_by_code": {"PRECHECK_INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": 1},
    }
    contact = dry["objects"]["Contact"]
    assert contact["lookup_calls"] == ledger["soap_query"] == 1  # mapped fields read along
    assert (contact["bulk_jobs"], contact["bulk_batches"]) == (0, 0)
    assert dry["api_calls"]["query"] == 1
    sample = contact["changes_sample"]
    assert len(sample) == 5
    assert sample[0] == {
        "key": "u-000000", "crm_id": ids[0],
        "changes": {"Personalization_Engagement_Score__c": {"old": None, "new": 0.0},
                    "Personalization_Tier__c": {"old": None, "new": "Gold"}},
    }
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "dry run" in markdown
    assert "Personalization_Tier__c None → 'Gold'" in markdown
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open()]
    assert sorted(r["key"] for r in rejects) == ["u-000028", "u-000030"]
    assert not Path(cfg["fingerprint_db"]).exists()  # a dry run records nothing

    sf.clear_ledger()
    real = run(config(sf, tmp_path, fail_on_rejects=10), users)

    assert counts(real) == counts(dry)
    assert kinds(sf)["bulk_batch"] == 1
    stored = sf.admin("GET", "records/Contact", params={
        "fields": "Id,Personalization_Tier__c", "where": "Personalization_Tier__c != null"})
    assert len(stored) == 29


# -- change detection --------------------------------------------------------------------


def test_unchanged_records_are_not_sent_again(sf: Any, tmp_path: Path) -> None:
    ids = seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                               for n in range(50)])
    users = [user(n, f"c{n}@example.com") for n in range(50)]
    cfg = config(sf, tmp_path)
    first = run(cfg, users)
    assert (first["objects"]["Contact"]["updated"], first["objects"]["Contact"]["unchanged"]) \
        == (50, 0)
    stamps = modified(sf)
    sf.clear_ledger()

    second = run(cfg, users)

    ledger = kinds(sf)
    assert not BULK_KINDS & set(ledger)  # zero jobs, zero batches
    assert ledger["soap_query"] == 1  # the look-up still decides which record is which
    contact = second["objects"]["Contact"]
    assert (contact["updated"], contact["unchanged"], contact["bulk_batches"]) == (0, 50, 0)
    assert contact["candidates"] == contact["unchanged"]
    assert "| Contact | 50 | 50 | 0 | 0 | 0 | 0 | 50 | 0 | 0 |" in \
        (tmp_path / "out" / "report.md").read_text()
    assert modified(sf) == stamps

    changed = {3, 7, 11, 15, 19, 23, 27, 31, 35, 39}
    third_users = [user(n, f"c{n}@example.com", score=0.5) if n in changed else users[n]
                   for n in range(50)]
    sf.clear_ledger()

    third = run(cfg, third_users)

    assert kinds(sf)["bulk_batch"] == 1
    contact = third["objects"]["Contact"]
    assert (contact["updated"], contact["unchanged"], contact["bulk_batches"]) == (10, 40, 1)
    after = modified(sf)
    assert {i for i in ids if after[i] != stamps[i]} == {ids[n] for n in changed}
    scores = sf.admin("GET", "records/Contact", params={
        "fields": "Id", "where": "Personalization_Engagement_Score__c = 0.5"})
    assert {row["Id"] for row in scores} == {ids[n] for n in changed}

    sf.clear_ledger()
    refresh = run(config(sf, tmp_path, full_refresh=True), third_users)

    assert (refresh["objects"]["Contact"]["updated"],
            refresh["objects"]["Contact"]["unchanged"]) == (50, 0)
    assert kinds(sf)["bulk_batch"] == 1

    rewritten = run(cfg, third_users)  # full_refresh rewrote the fingerprints

    assert (rewritten["objects"]["Contact"]["updated"],
            rewritten["objects"]["Contact"]["unchanged"]) == (0, 50)


def test_rejected_records_are_not_fingerprinted_and_go_again(sf: Any, tmp_path: Path) -> None:
    ids = seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                               for n in range(40)])
    users = [user(n, f"c{n}@example.com") for n in range(40)]
    cfg = config(sf, tmp_path, max_record_retries=0, fail_on_rejects=40)
    sf.faults(lock_row_rate=0.25, seed=11)

    first = run(cfg, users)

    locked = {r["key"] for r in map(json.loads, (tmp_path / "out" / "rejects.jsonl").open())
              if r["code"] == "UNABLE_TO_LOCK_ROW"}
    contact = first["objects"]["Contact"]
    assert locked
    assert contact["rejected"] == len(locked)
    assert contact["updated"] == 40 - len(locked)
    sf.faults()
    stamps = modified(sf)
    sf.clear_ledger()

    second = run(cfg, users)

    contact = second["objects"]["Contact"]
    assert (contact["updated"], contact["unchanged"], contact["rejected"]) == \
        (len(locked), 40 - len(locked), 0)
    after = modified(sf)
    assert {i for i in ids if after[i] != stamps[i]} == \
        {ids[int(key.removeprefix("u-"))] for key in locked}


def test_a_reissued_id_is_not_taken_for_the_record_written_before(
        sf: Any, tmp_path: Path) -> None:
    rows = [{"LastName": f"C{n}", "Email": f"c{n}@example.com"} for n in range(5)]
    first_ids = seed(sf, "Contact", rows)
    users = [user(n, f"c{n}@example.com") for n in range(5)]
    cfg = config(sf, tmp_path)
    run(cfg, users)
    sf.reset()  # the org starts over and issues the same Ids to new records (same values)
    reissued = [{"Id": crm_id, **row} for crm_id, row in zip(first_ids, rows, strict=True)]
    assert seed(sf, "Contact", reissued) == first_ids

    again = run(cfg, users)

    assert (again["objects"]["Contact"]["updated"], again["objects"]["Contact"]["unchanged"]) \
        == (5, 0)


# -- --test --------------------------------------------------------------------------------


def cli_test(sf: Any, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config(sf, tmp_path)))
    return subprocess.run(
        [sys.executable, "-c",
         "from target_salesforce_crm.target.target import TargetSalesforceCRM; "
         "TargetSalesforceCRM.cli()", "--config", str(config_file), "--test"],
        # Input it must not read: a line that is not a Singer message would fail a run.
        input="this is not a singer message\n",
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_cli_test_flag_passes_with_only_auth_and_describe(
        sf: Any, tmp_path: Path) -> None:
    sf.clear_ledger()

    done = cli_test(sf, tmp_path)

    assert done.returncode == 0, done.stderr
    passed = [line for line in done.stderr.splitlines() if "Connection test passed:" in line]
    assert len(passed) == 1
    assert "preflight passed for Contact" in passed[0]
    assert kinds(sf) == {"oauth": 1, "describe": 1}
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()  # nothing written, not even a report
    assert defaults.SF_CLIENT_SECRET not in done.stderr


def test_cli_test_flag_fails_on_revoked_credentials(sf: Any, tmp_path: Path) -> None:
    sf.admin("POST", "revoke", json={"reason": "inactive user"})

    done = cli_test(sf, tmp_path)

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "inactive user" in errors[0]
    assert "Traceback" not in done.stderr
    assert defaults.SF_CLIENT_SECRET not in done.stderr


def test_cli_test_flag_fails_on_a_field_without_edit_permission(
        sf: Any, tmp_path: Path) -> None:
    sf.admin("POST", "field-access", json={"object": "Contact",
                                           "field": "Personalization_Tier__c", "access": "read"})
    sf.clear_ledger()

    done = cli_test(sf, tmp_path)

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "grant Edit on Contact.Personalization_Tier__c to the integration user's " \
        "permission set" in errors[0]
    assert "Traceback" not in done.stderr
    assert set(kinds(sf)) == {"oauth", "describe"}
