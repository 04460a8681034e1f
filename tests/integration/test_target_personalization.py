"""target-personalization against the Personalization sandbox: a real server over TLS.

The target only gets a URL, the sandbox CA and the inbound folder; the sandbox processes the
feed files it finds there, and the tests read the users, accounts and segments it ends up
with, plus the ledger of calls the target made.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from support.target_personalization import config_for, run_target
from tap_personalization.target.target import TargetPersonalization

pytestmark = pytest.mark.integration

CONTACT_A, CONTACT_C, CONTACT_X = "003000000000001AAA", "003000000000003AAA", "003000000000009AAA"
LEAD_B = "00Q000000000002AAA"

USERS = [
    {"id": "u-000001", "emailAddress": "ada@example.com", "attributes": {"plan": "gold"}},
    {"id": "u-000002", "emailAddress": "bob@example.com", "attributes": {"sfcrmLeadId": LEAD_B}},
    {"id": "u-000003", "emailAddress": "Cy@Example.com",
     "attributes": {"sfcrmContactId": CONTACT_C}},
]


def schema(stream: str, names: dict[str, Any]) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["Id"],
            "schema": {"type": "object", "properties": names}}


TEXT = {"type": ["string", "null"]}
FLAG = {"type": "boolean"}
CONTACTS = schema("contacts", {"Id": {"type": "string"}, "Email": TEXT, "Title": TEXT,
                               "Department": TEXT, "LeadSource": TEXT, "IsDeleted": FLAG})
LEADS = schema("leads", {"Id": {"type": "string"}, "Email": TEXT, "Status": TEXT, "Rating": TEXT,
                         "Industry": TEXT, "IsConverted": FLAG, "ConvertedContactId": TEXT,
                         "IsDeleted": FLAG})
ACCOUNTS = schema("accounts", {"Id": {"type": "string"}, "Personalization_Account_Id__c": TEXT,
                               "Industry": TEXT, "Type": TEXT,
                               "AnnualRevenue": {"type": ["number", "null"]},
                               "NumberOfEmployees": {"type": ["integer", "null"]},
                               "IsDeleted": FLAG})
MEMBERS = schema("campaign_members", {
    "Id": {"type": "string"}, "CampaignId": {"type": "string"},
    "Campaign": {"type": ["object", "null"], "properties": {"Name": TEXT}},
    "ContactId": TEXT, "LeadId": TEXT, "Status": TEXT, "IsDeleted": FLAG})


def rec(stream: str, **fields: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": fields}


def member(member_id: str, *, contact: str | None = None, lead: str | None = None,
           deleted: bool = False) -> dict[str, Any]:
    return rec("campaign_members", Id=member_id, CampaignId="701000000000001AAA",
               Campaign={"Name": "Spring Webinar 2026"}, ContactId=contact, LeadId=lead,
               Status="Registered", IsDeleted=deleted)


def first_sync() -> list[dict[str, Any]]:
    """Text, picklist and number fields of a contact, a lead and an account; two memberships."""
    return [
        CONTACTS,
        rec("contacts", Id=CONTACT_A, Email="Ada@Example.com", Title="CTO", Department="R&D",
            LeadSource="Web", IsDeleted=False),
        rec("contacts", Id=CONTACT_C, Email="cy@example.com", Title="CFO", Department=None,
            LeadSource="Partner Referral", IsDeleted=False),
        rec("contacts", Id=CONTACT_X, Email="stranger@example.com", Title="CEO", Department=None,
            LeadSource=None, IsDeleted=False),
        LEADS,
        rec("leads", Id=LEAD_B, Email="bob@example.com", Status="Working - Contacted",
            Rating="Hot", Industry="Retail", IsConverted=False, ConvertedContactId=None,
            IsDeleted=False),
        ACCOUNTS,
        rec("accounts", Id="001000000000001AAA", Personalization_Account_Id__c="Example-Corp",
            Industry="Banking", Type="Customer - Direct", AnnualRevenue=1250000,
            NumberOfEmployees=120, IsDeleted=False),
        MEMBERS,
        member("00v000000000001AAA", contact=CONTACT_A),
        member("00v000000000002AAA", lead=LEAD_B),
        {"type": "STATE", "value": {"bookmarks": {"contacts": {"replication_key_value": "1"}}}},
    ]


def second_sync() -> list[dict[str, Any]]:
    """A picklist change, and the lead's membership removed (a deleted campaign member)."""
    return [
        CONTACTS,
        rec("contacts", Id=CONTACT_A, Email="ada@example.com", Title="CTO", Department="R&D",
            LeadSource="Phone Inquiry", IsDeleted=False),
        MEMBERS,
        member("00v000000000002AAA", lead=LEAD_B, deleted=True),
        {"type": "STATE", "value": {"bookmarks": {"contacts": {"replication_key_value": "2"}}}},
    ]


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "segments", json=[{"id": "seg-webinar", "name": "Webinar Attendees"},
                                        {"id": "seg-vip", "name": "VIP"}])
    box.admin("POST", "accounts", json=[{"id": "example-corp", "name": "Example Corp.",
                                         "attributes": {}}])
    box.admin("POST", "users", json=USERS)
    box.clear_ledger()
    return box


def processed(sandbox: Any) -> list[dict[str, Any]]:
    """Force processing of whatever is left in inbound; every result so far."""
    sandbox.admin("POST", "process-inbound")
    return list(sandbox.admin("GET", "feeds")["feeds"])


def user(sandbox: Any, user_id: str) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.admin("GET", "users", params={"id": user_id})[0]
    return found


def segment_ids(sandbox: Any, user_id: str) -> list[str]:
    return [m["id"] for m in user(sandbox, user_id)["segmentMembership"]]


def report(config: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((Path(config["output_dir"]) / "report.json").read_text()))


def rejects(config: dict[str, Any]) -> list[dict[str, Any]]:
    text = (Path(config["output_dir"]) / "rejects.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def assert_first_sync_arrived(sandbox: Any) -> None:
    ada = user(sandbox, "u-000001")
    assert ada["attributes"] == {"plan": "gold", "sfcrmContactId": CONTACT_A, "crmTitle": "CTO",
                                 "crmDepartment": "R&D", "crmLeadSource": "Web"}
    cy = user(sandbox, "u-000003")
    assert cy["emailAddress"] == "Cy@Example.com"  # found through normalize: [email]: kept
    assert cy["attributes"]["crmLeadSource"] == "Partner Referral"
    bob = user(sandbox, "u-000002")["attributes"]
    assert (bob["crmLeadStatus"], bob["crmLeadRating"], bob["crmIndustry"]) == (
        "Working - Contacted", "Hot", "Retail")
    [account] = sandbox.admin("GET", "accounts")
    assert account["attributes"] == {"crmIndustry": "Banking",
                                     "crmAccountType": "Customer - Direct",
                                     "crmAnnualRevenue": "1250000", "crmEmployees": "120"}
    assert segment_ids(sandbox, "u-000001") == ["seg-webinar"]
    assert segment_ids(sandbox, "u-000002") == ["seg-webinar"]


def test_feed_files_through_the_inbound_folder(sandbox: Any, tmp_path: Path) -> None:
    config = config_for(sandbox, tmp_path / "out")
    states = run_target(config, first_sync())
    assert states == [{"bookmarks": {"contacts": {"replication_key_value": "1"}}}]
    results = processed(sandbox)
    assert [(r["feed"], r["status"], r["rows"], r["error_count"]) for r in results] == [
        ("user", "processed", 3, 0), ("account", "processed", 1, 0),
        ("segment-delta", "processed", 2, 0)]
    assert_first_sync_arrived(sandbox)
    ledger = sandbox.ledger()["by_kind"]
    # connection check + users export (page 0 + empty page 1) + accounts export, 3 files
    assert ledger == {"users_export": 3, "accounts_export": 2, "feed_file": 3}
    first = report(config)
    assert first["objects"]["Contact"]["unmatched"] == {"unknown_identity": 1}
    assert [r["id"] for r in rejects(config)] == [CONTACT_X]

    sandbox.clear_ledger()
    run_target(config, second_sync())
    results = processed(sandbox)[3:]
    assert [(r["feed"], r["status"], r["rows"]) for r in results] == [
        ("user", "processed", 1), ("segment-delta", "processed", 1)]
    assert user(sandbox, "u-000001")["attributes"]["crmLeadSource"] == "Phone Inquiry"
    assert segment_ids(sandbox, "u-000002") == []
    assert segment_ids(sandbox, "u-000001") == ["seg-webinar"]
    assert sandbox.ledger()["by_kind"] == {"users_export": 3, "feed_file": 2}
    assert report(config)["objects"]["segments"]["segment_removes"] == 1


def test_event_api_one_call_per_user(sandbox: Any, tmp_path: Path) -> None:
    config = config_for(sandbox, tmp_path / "out", delivery="event_api", event_concurrency=3)
    run_target(config, first_sync())
    # users changed at once by the events; accounts and memberships through feed files
    assert user(sandbox, "u-000001")["attributes"]["crmTitle"] == "CTO"
    results = processed(sandbox)
    assert [(r["feed"], r["status"]) for r in results] == [
        ("account", "processed"), ("segment-delta", "processed")]
    assert_first_sync_arrived(sandbox)
    ledger = sandbox.ledger()
    assert ledger["by_kind"] == {"users_export": 3, "accounts_export": 2, "event": 3,
                                 "feed_file": 2}
    assert all(call["status"] == 200 for call in ledger["calls"] if call["kind"] == "event")
    assert user(sandbox, "u-000001")["lastActivity"] is None  # nonInteractive events

    sandbox.clear_ledger()
    run_target(config, second_sync())
    processed(sandbox)
    assert user(sandbox, "u-000001")["attributes"]["crmLeadSource"] == "Phone Inquiry"
    assert segment_ids(sandbox, "u-000002") == []
    assert sandbox.ledger()["by_kind"] == {"users_export": 3, "event": 1, "feed_file": 1}


def test_rejects_with_reasons_and_the_value_limit(sandbox: Any, tmp_path: Path) -> None:
    sandbox.admin("POST", "users", json=[{"id": "u-000001", "emailAddress": "ada@example.com",
                                          "attributes": {"crmTitle": "CTO"}}])
    config = config_for(sandbox, tmp_path / "out", delivery="event_api")
    messages = [
        CONTACTS,
        rec("contacts", Id=CONTACT_A, Email="ada@example.com", Title="é" * 1024,  # 2 KB
            Department="R&D", LeadSource="Web", IsDeleted=False),
        rec("contacts", Id=CONTACT_C, Email=None, Title="CFO", Department=None,
            LeadSource=None, IsDeleted=False),
        rec("contacts", Id="003000000000004AAA", Email=None, Title=None, Department=None,
            LeadSource=None, IsDeleted=False),
        ACCOUNTS,
        rec("accounts", Id="001000000000002AAA", Personalization_Account_Id__c=None,
            Industry="Media", Type=None, AnnualRevenue=None, NumberOfEmployees=None,
            IsDeleted=False),
    ]
    run_target(config, messages)
    found = {(r["id"], r["outcome"], r["reason"]) for r in rejects(config)}
    assert found == {(CONTACT_A, "rejected", "value_too_long"),
                     ("003000000000004AAA", "unmatched", "unknown_identity"),
                     ("001000000000002AAA", "unmatched", "no_identity")}
    assert user(sandbox, "u-000001")["attributes"] == {"crmTitle": "CTO"}  # nothing of it sent
    assert user(sandbox, "u-000003")["attributes"]["crmTitle"] == "CFO"
    assert sandbox.ledger()["by_kind"]["event"] == 1


def test_sixty_attributes_are_split_into_two_feed_files(sandbox: Any, tmp_path: Path) -> None:
    fields = [f"Field{n:02d}__c" for n in range(60)]
    attributes = "\n".join(f"      crmField{n:02d}: {{source: {name}}}"
                           for n, name in enumerate(fields))
    mapping = tmp_path / "wide.yml"
    mapping.write_text(
        "version: 1\ndirection: crm-to-personalization\nobjects:\n  Contact:\n"
        "    stream: contacts\n    target: user\n"
        "    identity: [{attribute: emailAddress, source: Email}]\n"
        f"    attributes:\n{attributes}\n", encoding="utf-8")
    config = config_for(sandbox, tmp_path / "out", mapping_file=str(mapping), gzip=True)
    wide = schema("contacts", {"Id": {"type": "string"}, "Email": TEXT, "IsDeleted": FLAG,
                               **{name: TEXT for name in fields}})
    run_target(config, [wide, rec("contacts", Id=CONTACT_A, Email="ada@example.com",
                                  IsDeleted=False, **{name: f"v{name}" for name in fields})])
    results = processed(sandbox)
    assert [(r["feed"], r["status"], r["file"][-7:]) for r in results] == [
        ("user", "processed", ".csv.gz"), ("user", "processed", ".csv.gz")]
    stored = user(sandbox, "u-000001")["attributes"]
    assert {name: stored[name] for name in stored if name.startswith("crmField")} == {
        f"crmField{n:02d}": f"v{name}" for n, name in enumerate(fields)}


def test_transient_failures_are_retried(sandbox: Any, tmp_path: Path) -> None:
    sandbox.faults(fail_next=2, busy_next=1)
    config = config_for(sandbox, tmp_path / "out", delivery="event_api")
    run_target(config, first_sync())
    processed(sandbox)
    assert_first_sync_arrived(sandbox)
    statuses = [(c["kind"], c["status"]) for c in sandbox.ledger()["calls"]]
    assert statuses[:2] == [("users_export", 503), ("users_export", 503)]
    assert statuses.count(("event", 200)) == 4  # 3 users, one of them answered busy first
    assert report(config)["api_calls"]["event"] == 4


def cli(config: dict[str, Any], tmp_path: Path, messages: list[dict[str, Any]]) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-c",
         "from tap_personalization.target.target import TargetPersonalization;"
         "TargetPersonalization.cli()", "--config", str(path)],
        input="".join(json.dumps(m) + "\n" for m in messages), capture_output=True,
        text=True, timeout=120, check=False)


MELTANO_TEST = [
    {"type": "SCHEMA", "stream": "meltano_test_stream", "key_properties": ["id"],
     "schema": {"type": "object", "properties": {
         "id": {"type": "integer"}, "name": {"type": "string"},
         "created_at": {"type": "string", "format": "date-time"}}}},
    {"type": "RECORD", "stream": "meltano_test_stream",
     "record": {"id": 1, "name": "Meltano Test Record", "created_at": "2025-09-29T00:00:00Z"}},
    {"type": "STATE", "value": {"bookmarks": {"meltano_test_stream": {"last_record": 1}}}},
]


def test_meltano_config_test_passes_and_proves_the_credentials(
    sandbox: Any, tmp_path: Path,
) -> None:
    """`meltano config test` fails on the words error/exception in the output, or exit != 0."""
    config = config_for(sandbox, tmp_path / "out")
    good = cli(config, tmp_path, MELTANO_TEST)
    output = good.stdout + good.stderr
    assert good.returncode == 0, output
    assert "error" not in output.lower()
    assert "exception" not in output.lower()
    assert "Connection OK" in output
    assert sandbox.ledger()["by_kind"] == {"users_export": 1}

    bad = cli({**config, "api_key_secret": "wrong"}, tmp_path, MELTANO_TEST)
    assert bad.returncode == 1
    last = bad.stderr.strip().splitlines()[-1]
    assert "check api_key_id and api_key_secret" in last
    assert "wrong" not in bad.stderr + bad.stdout  # the secret is never printed
    assert "Traceback" not in bad.stderr


def test_untrusted_certificate_is_explained(sandbox: Any, tmp_path: Path) -> None:
    config = config_for(sandbox, tmp_path / "out")
    del config["ca_bundle"]
    answer = cli(config, tmp_path, MELTANO_TEST)
    assert answer.returncode == 1
    assert "set ca_bundle" in answer.stderr.strip().splitlines()[-1]


def test_a_record_without_its_key_property_is_one_reject(sandbox: Any, tmp_path: Path) -> None:
    """singer-sdk stops the run (MissingKeyPropertiesError); here it is one INVALID_RECORD."""
    sandbox.admin("POST", "users", json=USERS)
    config = config_for(sandbox, tmp_path / "out", delivery="event_api")
    run_target(config, [
        CONTACTS,
        rec("contacts", Email="ada@example.com", Title="CTO", Department=None,
            LeadSource=None, IsDeleted=False),  # no Id
        rec("contacts", Id=CONTACT_C, Email=None, Title="CFO", Department=None,
            LeadSource=None, IsDeleted=False),
    ])
    [reject] = rejects(config)
    assert (reject["outcome"], reject["reason"]) == ("rejected", "invalid_record")
    assert "it has no 'Id' (the stream's key_properties)" in reject["message"]
    assert user(sandbox, "u-000003")["attributes"]["crmTitle"] == "CFO"
    assert "crmTitle" not in user(sandbox, "u-000001")["attributes"]


def test_bad_input_lines_are_rejects_and_the_run_goes_on(sandbox: Any, tmp_path: Path) -> None:
    """Each kind of unusable line costs one reject line (the table in docs/bad-inputs.md)."""
    config = config_for(sandbox, tmp_path / "out", delivery="event_api")
    good = rec("contacts", Id=CONTACT_C, Email=None, Title="CFO", Department=None,
               LeadSource=None, IsDeleted=False)
    bad = [
        (rec("contacts", Id="003000000000007AAA", Email="x@example.com", Title="cut \ud83d",
             Department=None, LeadSource=None, IsDeleted=False), "invalid_record",
         "Title holds text that is not valid Unicode"),
        ({"type": "RECORD", "stream": "contacts", "record": None}, "invalid_record",
         "its record is null"),
        ({"type": "RECORD", "stream": "contacts",
          "record": {"Id": "003000000000008AAA", "Deep": json.loads("[" * 80 + "]" * 80)}},
         "invalid_record", "nests 81 levels deep"),
        ({"type": "NOT_A_TYPE"}, "unreadable_line", "unknown Singer message type"),
    ]
    lines = [json.dumps(CONTACTS), *(json.dumps(m) for m, _, _ in bad), "not json",
             json.dumps(good)]
    with redirect_stdout(io.StringIO()):
        TargetPersonalization(config=config).listen(io.StringIO("\n".join(lines) + "\n"))

    found = rejects(config)
    assert len(found) == len(bad) + 1
    for _message, reason, words in [*bad, (None, "unreadable_line", "not JSON")]:
        [line] = [r for r in found if words in r["message"]]
        assert line["reason"] == reason, line
    summary = report(config)
    assert (summary["status"], summary["records_read"], summary["unreadable_lines"]) == (
        "succeeded", 6, 2)
    assert user(sandbox, "u-000003")["attributes"]["crmTitle"] == "CFO"


def test_a_terminated_run_leaves_a_failed_report(sandbox: Any, tmp_path: Path) -> None:
    """A cancelled `meltano run` sends SIGTERM: the report turns from running to failed."""
    config = config_for(sandbox, tmp_path / "out", delivery="event_api")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text('{"status": "succeeded"}')  # last run's
    (tmp_path / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "target-personalization"),
         "--config", str(tmp_path / "config.json")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert process.stdin is not None
    process.stdin.write((json.dumps(CONTACTS) + "\n").encode())
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while report(config)["status"] != "running":
        assert time.monotonic() < deadline
        assert process.poll() is None
        time.sleep(0.1)
    process.terminate()
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert report(config)["status"] == "failed"
