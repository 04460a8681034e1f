"""target-personalization `dry_run` against the Personalization sandbox.

A dry run must leave the sandbox exactly as it was (users, accounts, segments, no feed file,
no event in the ledger), read the same exports as a real run, and predict the real run: the
per-object counts of the dry run's report are the ones the real run then reaches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.target_personalization import config_for, inbound_of, run_target

pytestmark = pytest.mark.integration

CONTACT_A, CONTACT_C, CONTACT_X = "003000000000001AAA", "003000000000003AAA", "003000000000009AAA"
CONTACT_LONG = "003000000000005AAA"
LEAD_B = "00Q000000000002AAA"
TEXT = {"type": ["string", "null"]}
FLAG = {"type": "boolean"}


def schema(stream: str, names: dict[str, Any]) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["Id"],
            "schema": {"type": "object", "properties": names}}


def rec(stream: str, **fields: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": fields}


CONTACTS = schema("contacts", {"Id": {"type": "string"}, "Email": TEXT, "Title": TEXT,
                               "Department": TEXT, "LeadSource": TEXT, "IsDeleted": FLAG})
LEADS = schema("leads", {"Id": {"type": "string"}, "Email": TEXT, "Status": TEXT, "Rating": TEXT,
                         "Industry": TEXT, "IsConverted": FLAG, "IsDeleted": FLAG})
ACCOUNTS = schema("accounts", {"Id": {"type": "string"}, "Personalization_Account_Id__c": TEXT,
                               "Industry": TEXT, "Type": TEXT, "IsDeleted": FLAG})
MEMBERS = schema("campaign_members", {
    "Id": {"type": "string"}, "CampaignId": {"type": "string"}, "CampaignName": TEXT,
    "ContactId": TEXT, "LeadId": TEXT, "IsDeleted": FLAG})


def member(member_id: str, *, contact: str | None = None, lead: str | None = None,
           deleted: bool = False) -> dict[str, Any]:
    return rec("campaign_members", Id=member_id, CampaignId="701000000000001AAA",
               CampaignName="Spring Webinar 2026", ContactId=contact, LeadId=lead,
               IsDeleted=deleted)


def messages() -> list[dict[str, Any]]:
    """Two matched contacts, one unknown, one too long; a lead; two accounts; memberships."""
    return [
        CONTACTS,
        rec("contacts", Id=CONTACT_A, Email="Ada@Example.com", Title="CTO", Department="R&D",
            LeadSource="Web", IsDeleted=False),
        rec("contacts", Id=CONTACT_C, Email="cy@example.com", Title="CFO", Department=None,
            LeadSource="Partner Referral", IsDeleted=False),
        rec("contacts", Id=CONTACT_X, Email="stranger@example.com", Title="CEO",
            Department=None, LeadSource=None, IsDeleted=False),
        rec("contacts", Id=CONTACT_LONG, Email="ada@example.com", Title="é" * 1024,
            Department=None, LeadSource=None, IsDeleted=False),
        LEADS,
        rec("leads", Id=LEAD_B, Email="bob@example.com", Status="Working - Contacted",
            Rating="Hot", Industry="Retail", IsConverted=False, IsDeleted=False),
        ACCOUNTS,
        rec("accounts", Id="001000000000001AAA", Personalization_Account_Id__c="Example-Corp",
            Industry="Banking", Type="Customer - Direct", IsDeleted=False),
        rec("accounts", Id="001000000000002AAA", Personalization_Account_Id__c="nobody-inc",
            Industry="Media", Type=None, IsDeleted=False),
        MEMBERS,
        member("00v000000000001AAA", contact=CONTACT_A),
        member("00v000000000002AAA", lead=LEAD_B),
        member("00v000000000003AAA", contact=CONTACT_X),
        {"type": "STATE", "value": {"bookmarks": {"contacts": {"replication_key_value": "1"}}}},
    ]


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "segments", json=[{"id": "seg-webinar", "name": "Webinar Attendees"}])
    box.admin("POST", "accounts", json=[{"id": "example-corp", "name": "Example Corp.",
                                         "attributes": {"crmIndustry": "Media"}}])
    box.admin("POST", "users", json=[
        {"id": "u-000001", "emailAddress": "ada@example.com", "attributes": {"plan": "gold"}},
        {"id": "u-000002", "emailAddress": "bob@example.com",
         "attributes": {"sfcrmLeadId": LEAD_B, "crmLeadRating": "Hot"}},
        {"id": "u-000003", "emailAddress": "Cy@Example.com",
         "attributes": {"sfcrmContactId": CONTACT_C, "crmTitle": "Controller"}},
    ])
    box.clear_ledger()
    return box


def snapshot(sandbox: Any) -> dict[str, Any]:
    return {name: sandbox.admin("GET", name) for name in ("users", "accounts", "segments")}


def report(config: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((Path(config["output_dir"]) / "report.json").read_text()))


def reasons(config: dict[str, Any]) -> set[tuple[str, str, str]]:
    text = (Path(config["output_dir"]) / "rejects.jsonl").read_text()
    return {(r["id"], r["outcome"], r["reason"]) for r in map(json.loads, text.splitlines())}


def test_dry_run_changes_nothing_and_predicts_the_real_run(sandbox: Any, tmp_path: Path) -> None:
    before = snapshot(sandbox)
    dry = config_for(sandbox, tmp_path / "dry", dry_run=True)
    states = run_target(dry, messages())

    assert states == []  # a bookmark would make the real run skip these records
    assert snapshot(sandbox) == before
    assert list(inbound_of(sandbox).iterdir()) == []
    ledger = sandbox.ledger()["by_kind"]
    assert ledger == {"users_export": 3, "accounts_export": 2}  # no event, no feed_file
    planned = report(dry)
    assert (planned["status"], planned["dry_run"], planned["files"]) == ("succeeded", True, [])
    contact = planned["objects"]["Contact"]
    assert (contact["stream"], contact["written"], contact["unmatched"], contact["rejected"]) == (
        "contacts", 2, {"unknown_identity": 1}, {"value_too_long": 1})
    assert planned["objects"]["Lead"]["written"] == 1
    assert planned["objects"]["Account"]["written"] == 1
    assert planned["objects"]["Account"]["unmatched"] == {"unknown_identity": 1}
    segments = planned["objects"]["segments"]
    assert (segments["segment_adds"], segments["segment_removes"], segments["unmatched"]) == (
        2, 0, {"unknown_identity": 1})
    assert planned["would_deliver"] == [{"feed": "user", "rows": 3},
                                        {"feed": "account", "rows": 1},
                                        {"feed": "segment-delta", "rows": 2}]
    assert reasons(dry) == {(CONTACT_X, "unmatched", "unknown_identity"),
                            (CONTACT_LONG, "rejected", "value_too_long"),
                            ("001000000000002AAA", "unmatched", "unknown_identity"),
                            ("00v000000000003AAA", "unmatched", "unknown_identity")}
    assert planned["samples"] == [
        {"object": "Contact", "id": CONTACT_A, "userId": "u-000001", "unchanged": 0,
         "changes": {"sfcrmContactId": {"old": None, "new": CONTACT_A},
                     "crmTitle": {"old": None, "new": "CTO"},
                     "crmDepartment": {"old": None, "new": "R&D"},
                     "crmLeadSource": {"old": None, "new": "Web"}}},
        {"object": "Contact", "id": CONTACT_C, "userId": "u-000003", "unchanged": 0,
         "changes": {"crmTitle": {"old": "Controller", "new": "CFO"},
                     "crmLeadSource": {"old": None, "new": "Partner Referral"}}},
        {"object": "Lead", "id": LEAD_B, "userId": "u-000002", "unchanged": 1,
         "changes": {"crmLeadStatus": {"old": None, "new": "Working - Contacted"},
                     "crmIndustry": {"old": None, "new": "Retail"}}},
    ]
    markdown = (tmp_path / "dry" / "report.md").read_text()
    assert "dry run (nothing was sent to Personalization)" in markdown
    assert "crmTitle: 'Controller' → 'CFO'" in markdown

    sandbox.clear_ledger()
    real = config_for(sandbox, tmp_path / "real")
    assert run_target(real, messages()) == [
        {"bookmarks": {"contacts": {"replication_key_value": "1"}}}]
    sandbox.admin("POST", "process-inbound")
    done = report(real)
    assert done["objects"] == planned["objects"]
    results = sandbox.admin("GET", "feeds")["feeds"]
    assert [{"feed": r["feed"], "rows": r["rows"]} for r in results] == planned["would_deliver"]
    assert all(r["status"] == "processed" for r in results)
    assert sandbox.ledger()["by_kind"] == {**ledger, "feed_file": 3}
    stored = sandbox.admin("GET", "users", params={"id": "u-000003"})[0]["attributes"]
    assert stored["crmTitle"] == "CFO"  # what the sample said the real run would do


def test_event_api_dry_run_sends_no_event_and_counts_what_the_events_do(
    sandbox: Any, tmp_path: Path,
) -> None:
    before = snapshot(sandbox)
    dry = config_for(sandbox, tmp_path / "dry", delivery="event_api", dry_run=True,
                     dry_run_sample_size=1)
    run_target(dry, messages())
    assert snapshot(sandbox) == before
    assert list(inbound_of(sandbox).iterdir()) == []
    assert sandbox.ledger()["by_kind"] == {"users_export": 3, "accounts_export": 2}
    planned = report(dry)
    assert [f["feed"] for f in planned["would_deliver"]] == ["account", "segment-delta"]
    assert [s["id"] for s in planned["samples"]] == [CONTACT_A]

    sandbox.clear_ledger()
    real = config_for(sandbox, tmp_path / "real", delivery="event_api")
    run_target(real, messages())
    done = report(real)
    assert done["objects"] == planned["objects"]
    users_written = sum(o["written"] for o in done["objects"].values() if o["target"] == "user")
    assert sandbox.ledger()["by_kind"]["event"] == users_written == 3


def test_dry_run_reports_an_invalid_attribute_name(sandbox: Any, tmp_path: Path) -> None:
    mapping = tmp_path / "bad-name.yml"
    mapping.write_text(
        "version: 1\ndirection: crm-to-personalization\nobjects:\n  Lead:\n"
        "    stream: leads\n    target: user\n"
        "    identity: [{attribute: sfcrmLeadId, source: Id}]\n"
        "    attributes:\n      crm-rating: {source: Rating}\n", encoding="utf-8")
    config = config_for(sandbox, tmp_path / "dry", mapping_file=str(mapping), dry_run=True)
    run_target(config, messages())
    lead = report(config)["objects"]["Lead"]
    assert (lead["written"], lead["rejected"]) == (0, {"invalid_attribute_name": 1})
    assert reasons(config) == {(LEAD_B, "rejected", "invalid_attribute_name")}
    assert sandbox.ledger()["by_kind"] == {"users_export": 1}  # check only: nobody to look up
