"""target-personalization's change detection against the Personalization sandbox.

A re-run sends no feed row and no event for values Personalization confirmed (an event
answered errorCode 0, a feed file that reached the processed folder), and exactly the
changed values otherwise. What was not confirmed (a failed file, a refused event, a run
killed before its checkpoint) is sent again; `full_refresh` sends everything.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.target_personalization import config_for, run_target

pytestmark = pytest.mark.integration

CONTACT_A, CONTACT_C = "003000000000001AAA", "003000000000003AAA"
ACCOUNT = "001000000000001AAA"
USERS = [
    {"id": "u-000001", "emailAddress": "ada@example.com", "attributes": {}},
    {"id": "u-000003", "emailAddress": "cy@example.com",
     "attributes": {"sfcrmContactId": CONTACT_C}},
]
TEXT = {"type": ["string", "null"]}
FLAG = {"type": "boolean"}


def schema(stream: str, names: dict[str, Any]) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["Id"],
            "schema": {"type": "object", "properties": names}}


CONTACTS = schema("contacts", {"Id": {"type": "string"}, "Email": TEXT, "Title": TEXT,
                               "Department": TEXT, "LeadSource": TEXT, "IsDeleted": FLAG})
ACCOUNTS = schema("accounts", {"Id": {"type": "string"}, "Personalization_Account_Id__c": TEXT,
                               "Industry": TEXT, "Type": TEXT, "IsDeleted": FLAG})
MEMBERS = schema("campaign_members", {
    "Id": {"type": "string"}, "CampaignId": {"type": "string"},
    "Campaign": {"type": ["object", "null"], "properties": {"Name": TEXT}},
    "ContactId": TEXT, "LeadId": TEXT, "IsDeleted": FLAG})


def rec(stream: str, **fields: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": fields}


def contact(crm_id: str, email: str, title: str | None, source: str) -> dict[str, Any]:
    return rec("contacts", Id=crm_id, Email=email, Title=title, Department=None,
               LeadSource=source, IsDeleted=False)


def sync(*, lead_source: str = "Web", account_type: str = "Customer") -> list[dict[str, Any]]:
    """Two contacts, one account, one campaign membership (what a full CRM read gives)."""
    return [
        CONTACTS,
        contact(CONTACT_A, "ada@example.com", "CTO", lead_source),
        contact(CONTACT_C, "cy@example.com", None, "Partner Referral"),
        ACCOUNTS,
        rec("accounts", Id=ACCOUNT, Personalization_Account_Id__c="example-corp",
            Industry="Banking", Type=account_type, IsDeleted=False),
        MEMBERS,
        rec("campaign_members", Id="00v000000000001AAA", CampaignId="701000000000001AAA",
            Campaign={"Name": "Spring Webinar 2026"}, ContactId=CONTACT_A, LeadId=None,
            IsDeleted=False),
    ]


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "segments", json=[{"id": "seg-webinar", "name": "Webinar Attendees"}])
    box.admin("POST", "accounts", json=[{"id": "example-corp", "name": "Example Corp.",
                                         "attributes": {}}])
    box.admin("POST", "users", json=USERS)
    box.clear_ledger()
    return box


def settled(sandbox: Any, seen: int = 0) -> list[dict[str, Any]]:
    """Have the sandbox process what is in inbound; results of the files after `seen`."""
    sandbox.admin("POST", "process-inbound")
    return list(sandbox.admin("GET", "feeds")["feeds"])[seen:]


def report(config: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((Path(config["output_dir"]) / "report.json").read_text()))


def unchanged(config: dict[str, Any]) -> dict[str, int]:
    return {name: stats["unchanged"] for name, stats in report(config)["objects"].items()
            if stats["unchanged"]}


def events(sandbox: Any) -> int:
    return int(sandbox.ledger()["by_kind"].get("event", 0))


def rows_of(sandbox: Any, name: str) -> list[dict[str, str]]:
    path = Path(sandbox.data_dir) / "personalization" / "processed" / name
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_rerun_sends_only_what_changed(sandbox: Any, tmp_path: Path) -> None:
    first = config_for(sandbox, tmp_path / "run1")
    run_target(first, sync())
    results = settled(sandbox)
    assert [(r["feed"], r["status"], r["rows"]) for r in results] == [
        ("user", "processed", 2), ("account", "processed", 1), ("segment-delta", "processed", 1)]

    # The same records again (as after a forward sync bumped every SystemModstamp).
    again = config_for(sandbox, tmp_path / "run2")
    sandbox.clear_ledger()
    run_target(again, sync())
    assert settled(sandbox, len(results)) == []
    assert report(again)["files"] == []
    assert unchanged(again) == {"Contact": 2, "Account": 1, "segments": 1}
    assert report(again)["unchanged_records"] == 4
    assert report(again)["earlier_feed_files"] == {"processed": 3}
    assert events(sandbox) == 0
    # the identity check still reads the exports; nothing else is called
    assert sandbox.ledger()["by_kind"] == {"users_export": 3, "accounts_export": 2}

    # One contact field and one account field changed: exactly those cells are sent.
    changed = config_for(sandbox, tmp_path / "run3")
    run_target(changed, sync(lead_source="Phone Inquiry", account_type="Partner"))
    results = settled(sandbox, len(results))
    assert [(r["feed"], r["status"], r["rows"]) for r in results] == [
        ("user", "processed", 1), ("account", "processed", 1)]
    assert [{k: v for k, v in row.items() if v} for row in rows_of(sandbox, results[0]["file"])
            ] == [{"userId": "u-000001", "attribute:crmLeadSource": "Phone Inquiry"}]
    assert [{k: v for k, v in row.items() if v} for row in rows_of(sandbox, results[1]["file"])
            ] == [{"accountId": "example-corp", "attribute:crmAccountType": "Partner"}]
    assert unchanged(changed) == {"Contact": 1, "segments": 1}
    stored = sandbox.admin("GET", "users", params={"id": "u-000001"})[0]["attributes"]
    assert (stored["crmTitle"], stored["crmLeadSource"]) == ("CTO", "Phone Inquiry")


def test_a_failed_feed_file_is_sent_again(sandbox: Any, tmp_path: Path) -> None:
    # crmTitle is a number attribute in this dataset: every user row errors, the file fails.
    sandbox.admin("POST", "users", json=[{"id": "u-000009", "attributes": {"crmTitle": 7}}])
    messages = [CONTACTS, contact(CONTACT_A, "ada@example.com", "CTO", "Web"),
                contact(CONTACT_C, "cy@example.com", "CFO", "Partner Referral")]
    first = config_for(sandbox, tmp_path / "run1")
    run_target(first, messages)
    [result] = settled(sandbox)
    assert (result["feed"], result["status"]) == ("user", "failed")
    failed = Path(sandbox.data_dir) / "personalization" / "failed"
    assert (failed / result["file"]).is_file()

    again = config_for(sandbox, tmp_path / "run2")
    run_target(again, messages)
    [retry] = settled(sandbox, 1)
    assert (retry["feed"], retry["rows"]) == ("user", 2)
    assert report(again)["earlier_feed_files"] == {"failed": 1}
    assert unchanged(again) == {}


def test_events_count_once_answered_errorcode_0(sandbox: Any, tmp_path: Path) -> None:
    # crmTitle is a number attribute: Ada's event (crmTitle "CTO") is refused, errorCode 5.
    sandbox.admin("POST", "users", json=[{"id": "u-000009", "attributes": {"crmTitle": 7}}])
    messages = [CONTACTS, contact(CONTACT_A, "ada@example.com", "CTO", "Web"),
                contact(CONTACT_C, "cy@example.com", None, "Partner Referral")]
    first = config_for(sandbox, tmp_path / "run1", delivery="event_api")
    run_target(first, messages)
    assert events(sandbox) == 2
    assert report(first)["objects"]["Contact"]["rejected"] == {"api_rejected": 1}

    sandbox.clear_ledger()
    again = config_for(sandbox, tmp_path / "run2", delivery="event_api")
    run_target(again, messages)
    assert events(sandbox) == 1  # Ada's again; Cy's was accepted
    assert unchanged(again) == {"Contact": 1}
    assert report(again)["objects"]["Contact"]["rejected"] == {"api_rejected": 1}

    sandbox.clear_ledger()
    refresh = config_for(sandbox, tmp_path / "run3", delivery="event_api", full_refresh=True)
    run_target(refresh, messages)
    assert events(sandbox) == 2
    assert report(refresh)["full_refresh"] is True
    assert unchanged(refresh) == {}


def test_full_refresh_sends_every_feed_row(sandbox: Any, tmp_path: Path) -> None:
    run_target(config_for(sandbox, tmp_path / "run1"), sync())
    seen = len(settled(sandbox))
    refresh = config_for(sandbox, tmp_path / "run2", full_refresh=True)
    run_target(refresh, sync())
    assert [(r["feed"], r["rows"]) for r in settled(sandbox, seen)] == [
        ("user", 2), ("account", 1), ("segment-delta", 1)]
    assert unchanged(refresh) == {}
    # ... and records them again: the next run sends nothing
    after = config_for(sandbox, tmp_path / "run3")
    run_target(after, sync())
    assert report(after)["files"] == []
    assert report(after)["unchanged_records"] == 4


def _lines(messages: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(m) + "\n" for m in messages).encode()


def test_a_killed_run_records_nothing_it_had_not_committed(
    sandbox: Any, tmp_path: Path
) -> None:
    messages = [CONTACTS, contact(CONTACT_A, "ada@example.com", "CTO", "Web"),
                contact(CONTACT_C, "cy@example.com", None, "Partner Referral")]
    config = config_for(sandbox, tmp_path / "killed", delivery="event_api")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    target = subprocess.Popen(
        [str(Path(sys.executable).parent / "target-personalization"), "--config", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert target.stdin is not None
    # Both events are sent and answered errorCode 0; the input has not ended, so the run's
    # checkpoint (which commits before its STATE) has not come yet.
    target.stdin.write(_lines(messages))
    target.stdin.flush()
    deadline = time.monotonic() + 60
    while events(sandbox) < 2:
        assert time.monotonic() < deadline, "the target did not send both events"
        time.sleep(0.1)
    os.kill(target.pid, signal.SIGKILL)
    target.wait(timeout=30)
    target.stdin.close()

    sandbox.clear_ledger()
    again = config_for(sandbox, tmp_path / "again", delivery="event_api")
    run_target(again, messages)
    assert events(sandbox) == 2  # both again: no STATE left the killed run, nor a fingerprint
    sandbox.clear_ledger()
    last = config_for(sandbox, tmp_path / "last", delivery="event_api")
    run_target(last, messages)
    assert events(sandbox) == 0
    assert unchanged(last) == {"Contact": 2}
