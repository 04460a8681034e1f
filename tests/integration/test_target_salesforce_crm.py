"""target-salesforce-crm against the Salesforce sandbox: records stored, calls in the ledger.

The target is fed an in-memory Singer stream (`listen()` on a StringIO), so each test shows
what a `meltano run` would do without Meltano's start-up time. Counts come from the
sandbox's own ledger and record store, not from the plugin.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from emulators import defaults
from support.target_salesforce_crm import (
    HookedInput,
    config_for,
    kinds,
    lines,
    records,
    run_target,
    seed,
    singer,
)
from target_salesforce_crm.errors import AuthenticationError
from target_salesforce_crm.target.preflight import ApiBudgetError, PreflightError
from target_salesforce_crm.target.report import RejectThresholdError
from target_salesforce_crm.target.target import TargetSalesforceCRM

pytestmark = pytest.mark.integration

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "emailAddress": {"type": ["string", "null"]},
        "displayName": {"type": ["string", "null"]},
        "accountId": {"type": ["string", "null"]},
        "engagementScore": {"type": ["number", "null"]},
        "firstActivity": {"type": ["string", "null"], "format": "date-time"},
        "lastActivity": {"type": ["string", "null"], "format": "date-time"},
        "segmentMembership": {"type": ["array", "null"], "items": {"type": "object"}},
        "attributes": {"type": ["object", "null"]},
    },
}
ACCOUNT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "domain": {"type": ["string", "null"]},
        "engagementScore": {"type": ["number", "null"]},
        "lastActivity": {"type": ["string", "null"], "format": "date-time"},
        "segmentMembership": {"type": ["array", "null"], "items": {"type": "object"}},
    },
}

CONTACT_LEAD_MAPPING = """
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
  Lead:
    enabled: %(lead)s
    stream: users
    key: id
    only_unmatched_by: Contact
    exclude_converted: true
    match:
      - {field: Email, source: emailAddress, normalize: [trim, lowercase]}
    fields:
      Personalization_Engagement_Score__c: {source: engagementScore, convert: [{round: 4}]}
"""


# -- helpers ------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def user(n: int, email: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": f"u-{n:06d}", "emailAddress": email, "displayName": f"User {n}",
            "engagementScore": round(n / 100_000, 4),
            "lastActivity": "2026-03-01T12:00:00.000Z",
            "segmentMembership": [{"id": "seg-vip", "name": "VIP"}],
            "attributes": {"plan": "gold"}, **extra}


def balanced(report: dict[str, Any]) -> bool:
    return all(
        o["candidates"] == o["updated"] + o["created"] + o["unmatched"] + o["ambiguous"]
        + o["rejected"]
        for o in report["objects"].values()
    )


# -- volume: the seeds' call pattern --------------------------------------------------------


def test_25000_users_15000_contacts_25_lookups_2_batches(sf: Any, tmp_path: Path) -> None:
    def email(n: int) -> str:
        # Lengths from 19 to 80 characters (the Email field's maximum).
        prefix, domain = f"user{n}.", f"@example-{n % 7}.com"
        return prefix + "x" * min(n % 60, 80 - len(prefix) - len(domain)) + domain

    contacts = [{"LastName": f"Contact {n}", "Email": email(n)} for n in range(15_000)]
    contact_ids = seed(sf, "Contact", contacts)
    users = [
        user(n, (email(n).upper() if n % 3 == 0 else email(n)) if n < 15_000
             else f"nobody{n}@example.org")
        for n in range(25_000)
    ]
    sf.clear_ledger()

    target = run_target(config_for(sf, tmp_path),
                        singer("users", USER_SCHEMA, users, {"bookmark": 1}))

    ledger = kinds(sf)
    assert ledger["soap_query"] == 25
    assert ledger["bulk_batch"] == 2
    assert ledger["describe"] == 1  # Contact only: leads are off in the default mapping
    assert "limits" not in ledger  # the budget reads Sforce-Limit-Info of the describe
    assert "rest_query" not in ledger
    stored = records(sf, "Contact", "Id,Email,Personalization_Engagement_Score__c,"
                     "Personalization_Segments__c,Personalization_Tier__c")
    by_id = {row["Id"]: row for row in stored}
    assert len(by_id) == 15_000
    expected = {contact_ids[n]: round(users[n]["engagementScore"], 4) for n in range(15_000)}
    assert {i: row["Personalization_Engagement_Score__c"] for i, row in by_id.items()} == \
        pytest.approx(expected)
    assert all(row["Personalization_Segments__c"] == "VIP" for row in stored)
    assert all(row["Personalization_Tier__c"] == "Gold" for row in stored)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    contact = report["objects"]["Contact"]
    assert (contact["candidates"], contact["matched"], contact["unmatched"],
            contact["updated"], contact["rejected"]) == (25_000, 15_000, 10_000, 15_000, 0)
    assert (contact["lookup_calls"], contact["bulk_batches"]) == (25, 2)
    assert report["status"] == "succeeded"
    assert len(read_jsonl(tmp_path / "out" / "unmatched.jsonl")) == 10_000
    assert (tmp_path / "out" / "rejects.jsonl").read_text() == ""
    assert target.run.report.api_calls["query"] == 25


# -- one Bulk job per run, full batches, STATE only after every outcome ----------------------


def test_drains_share_one_bulk_job_and_batches_are_full(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                         for n in range(2500)])
    # Matches spread over four drains of 1,000 (625 each): no drain fills a batch alone.
    users = [user(n, f"c{n // 8 * 5 + n % 8}@example.com" if n % 8 < 5 else
                  f"nobody{n}@example.com") for n in range(4000)]
    sf.clear_ledger()

    run_target(config_for(sf, tmp_path, batch_size_rows=1000, bulk_batch_size=1000),
        singer("users", USER_SCHEMA, users))

    ledger = kinds(sf)
    assert ledger["bulk_job"] == 2  # one create, one close, for the whole run
    assert ledger["bulk_batch"] == ledger["bulk_result"] == 3  # ⌈2,500 / 1,000⌉
    assert ledger["soap_query"] == 4
    assert (ledger["oauth"], ledger["describe"]) == (1, 1)
    assert set(ledger) <= {"oauth", "describe", "soap_query", "bulk_job", "bulk_batch",
                           "bulk_poll", "bulk_result"}
    token = sf.salesforce_token()
    jobs_url = f"{token['instance_url']}/services/async/59.0/job"
    job_id = next(c["path"].rsplit("/", 1)[1] for c in sf.ledger()["calls"]
                  if c["kind"] == "bulk_job" and c["path"].count("/") == 5)
    batches = requests.get(f"{jobs_url}/{job_id}/batch", verify=sf.ca_bundle, timeout=30,
                           headers={"X-SFDC-Session": token["access_token"]}).json()
    assert sorted(b["numberRecordsProcessed"] for b in batches["batchInfo"]) == [500, 1000, 1000]
    stored = records(sf, "Contact", "Personalization_Engagement_Score__c")
    assert all(r["Personalization_Engagement_Score__c"] is not None for r in stored)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    contact = report["objects"]["Contact"]
    assert (contact["updated"], contact["unmatched"], contact["rejected"]) == (2500, 1500, 0)
    assert (contact["bulk_jobs"], contact["bulk_batches"]) == (1, 3)
    assert len(read_jsonl(tmp_path / "out" / "unmatched.jsonl")) == 1500
    assert balanced(report)


class StateWatcher(io.StringIO):
    """stdout that notes, at every STATE line, what the sandbox and outcome files show."""

    def __init__(self, sf: Any, out: Path) -> None:
        super().__init__()
        self.sf, self.out, self.seen = sf, out, []

    def write(self, text: str) -> int:
        if text.startswith("{"):
            written = records(self.sf, "Contact", "Id",
                              "Personalization_Engagement_Score__c != null")
            unmatched = read_jsonl(self.out / "unmatched.jsonl")
            self.seen.append((json.loads(text), len(written), len(unmatched)))
        return super().write(text)


def test_state_waits_until_every_record_before_it_has_its_outcome(
        sf: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                         for n in range(30)])
    users = [user(n, f"c{n}@example.com" if n % 3 else f"nobody{n}@example.com")
             for n in range(30)]
    messages = singer("users", USER_SCHEMA, users[:15], {"bookmark": 15})
    messages += [{"type": "RECORD", "stream": "users", "record": r} for r in users[15:]]
    messages.append({"type": "STATE", "value": {"bookmark": 30}})
    stdout = StateWatcher(sf, tmp_path / "out")
    monkeypatch.setattr(sys, "stdout", stdout)
    target = TargetSalesforceCRM(config=config_for(sf, tmp_path, batch_size_rows=10))

    # The SDK drains everything after record 20 (line 22) and then writes the STATE it
    # has (bookmark 15); the matches of those records fill no batch of 10,000.
    def drain_at_line_22(number: int) -> None:  # as if records had grown too old
        target._MAX_RECORD_AGE_IN_MINUTES = -1.0 if number == 22 else 5.0

    target.listen(HookedInput(lines(messages), drain_at_line_22))

    assert stdout.seen == [({"bookmark": 15}, 13, 7), ({"bookmark": 30}, 20, 10)]
    ledger = kinds(sf)
    assert ledger["bulk_job"] == 2  # the STATE sent a partial batch, the job stayed open
    assert ledger["bulk_batch"] == 2


def test_a_failing_run_aborts_its_bulk_job_and_emits_no_state(
        sf: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                         for n in range(25)])
    sf.admin("POST", "field-access", json={"object": "Account",
                                           "field": "Personalization_Segments__c",
                                           "access": "read"})
    messages = singer("users", USER_SCHEMA,
                      [user(n, f"c{n}@example.com") for n in range(25)], {"bookmark": 1})
    messages += singer("accounts", ACCOUNT_SCHEMA, [{"id": "a-1", "name": "Acme"}])
    sf.clear_ledger()

    with pytest.raises(PreflightError, match=r"Account\.Personalization_Segments__c"):
        run_target(config_for(sf, tmp_path, batch_size_rows=10, bulk_batch_size=10), messages)

    calls = [c for c in sf.ledger()["calls"] if c["kind"] == "bulk_job"]
    assert [c["method"] for c in calls] == ["POST", "POST"]  # create, then abort
    token = sf.salesforce_token()
    job = requests.get(f"{token['instance_url']}{calls[1]['path']}", verify=sf.ca_bundle,
                       headers={"X-SFDC-Session": token["access_token"]}, timeout=30).json()
    assert job["state"] == "Aborted"
    assert kinds(sf)["bulk_batch"] == 2  # the two full batches of the first 20 users
    assert "bookmark" not in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed"


# -- routing: contacts before leads, never converted leads -----------------------------------


def test_leads_only_without_contact_and_never_converted(sf: Any, tmp_path: Path) -> None:
    [contact_id] = seed(sf, "Contact", [{"LastName": "Both", "Email": "both@example.com"}])
    lead_ids = seed(sf, "Lead", [
        {"LastName": "Both", "Company": "X", "Email": "both@example.com"},
        {"LastName": "Open", "Company": "X", "Email": "Lead.Only@Example.com"},
        {"LastName": "Converted", "Company": "X", "Email": "converted@example.com",
         "IsConverted": True},
    ])
    users = [user(1, "BOTH@example.com", engagementScore=0.5),
             user(2, "lead.only@example.com", engagementScore=0.6),
             user(3, "converted@example.com", engagementScore=0.7),
             user(4, "nobody@example.com", engagementScore=0.8)]

    run_target(config_for(sf, tmp_path, CONTACT_LEAD_MAPPING % {"lead": "true"}),
        singer("users", USER_SCHEMA, users))

    [stored_contact] = records(sf, "Contact", "Id,Personalization_Engagement_Score__c")
    assert stored_contact == {"Id": contact_id, "Personalization_Engagement_Score__c": 0.5}
    leads = {r["Id"]: r["Personalization_Engagement_Score__c"]
             for r in records(sf, "Lead", "Id,Personalization_Engagement_Score__c")}
    assert leads == {lead_ids[0]: None, lead_ids[1]: 0.6, lead_ids[2]: None}
    unmatched = read_jsonl(tmp_path / "out" / "unmatched.jsonl")
    assert [(u["key"], u["objects"]) for u in unmatched] == [
        ("u-000003", ["Contact", "Lead"]), ("u-000004", ["Contact", "Lead"])]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["objects"]["Lead"]["candidates"] == 3
    assert report["objects"]["Lead"]["updated"] == 1
    assert balanced(report)


def test_leads_untouched_while_lead_sharing_is_off(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Lead", [{"LastName": "Open", "Company": "X", "Email": "lead@example.com"}])
    sf.clear_ledger()

    run_target(config_for(sf, tmp_path, CONTACT_LEAD_MAPPING % {"lead": "false"}),
        singer("users", USER_SCHEMA, [user(1, "lead@example.com")]))

    assert records(sf, "Lead", "Personalization_Engagement_Score__c") == [
        {"Personalization_Engagement_Score__c": None}]
    statements = [c["path"] for c in sf.ledger()["calls"] if "Lead" in c["path"]]
    assert statements == []
    assert kinds(sf)["soap_query"] == 1


# -- accounts: id, exact name, normalised name, fuzzy name with the domain -------------------

ACCOUNT_MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Account:
    stream: accounts
    key: id
    match:
      - {field: Personalization_Account_Id__c, source: id}
      - {field: Name, source: name, normalize: [trim]}
      - {field: Name, source: name, normalize: [company_name]}
      - field: Name
        source: name
        normalize: [company_name]
        fuzzy: {min_score: 80, tie_breaker: {source: domain, field: Website}}
    fields:
      Personalization_Engagement_Score__c: {source: engagementScore}
"""


def test_account_name_variants_and_an_ambiguous_account(sf: Any, tmp_path: Path) -> None:
    ids = seed(sf, "Account", [
        {"Name": "Initech LLC", "Personalization_Account_Id__c": "initech"},
        {"Name": "Globex"},
        {"Name": "Example Corporation"},
        {"Name": "Umbrella Group"},
        {"Name": "Umbrella Group, Inc."},
        {"Name": "Soylent Industries International", "Website": "https://www.soylent.com"},
        {"Name": "Soylent Industrie International", "Website": "soylent.de"},
    ])
    accounts = [
        {"id": "initech", "name": "Initech", "engagementScore": 0.1},
        {"id": "globex", "name": "Globex", "engagementScore": 0.2},
        {"id": "example", "name": "Example Corp.", "engagementScore": 0.3},
        {"id": "umbrella", "name": "Umbrella Group Incorporated", "engagementScore": 0.4},
        {"id": "soylent", "name": "Soylent Industries Intl", "domain": "soylent.com",
         "engagementScore": 0.5},
        {"id": "nobody", "name": "Nobody Ltd", "engagementScore": 0.6},
    ]
    sf.clear_ledger()

    run_target(config_for(sf, tmp_path, ACCOUNT_MAPPING),
               singer("accounts", ACCOUNT_SCHEMA, accounts))

    scores = {r["Id"]: r["Personalization_Engagement_Score__c"]
              for r in records(sf, "Account", "Id,Personalization_Engagement_Score__c")}
    assert scores == {ids[0]: 0.1, ids[1]: 0.2, ids[2]: 0.3, ids[3]: None, ids[4]: None,
                      ids[5]: 0.5, ids[6]: None}
    [ambiguous] = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    assert (ambiguous["key"], ambiguous["code"], ambiguous["stage"]) == (
        "umbrella", "AMBIGUOUS_MATCH", "match")
    assert ids[3] in ambiguous["message"]
    assert ids[4] in ambiguous["message"]
    [unmatched] = read_jsonl(tmp_path / "out" / "unmatched.jsonl")
    assert unmatched["key"] == "nobody"
    # One look-up for id + exact name, one read of the Account index for the name rules.
    assert kinds(sf)["soap_query"] == 2
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["objects"]["Account"]["ambiguous"] == 1
    assert balanced(report)


# -- upsert on an external id ----------------------------------------------------------------

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


def test_upsert_twice_creates_no_duplicates(sf: Any, tmp_path: Path) -> None:
    existing = seed(sf, "Contact", [{"LastName": "Old", "Email": "ada@example.com"}])
    users = [user(1, "Ada@Example.com", engagementScore=0.1),
             user(2, "new1@example.com", engagementScore=0.2),
             user(3, "new2@example.com", engagementScore=0.3, displayName=None)]

    run_target(config_for(sf, tmp_path, UPSERT_MAPPING), singer("users", USER_SCHEMA, users))

    fields = "Id,LastName,Personalization_User_Id__c,Personalization_Engagement_Score__c"
    first = {r["Personalization_User_Id__c"]: r for r in records(sf, "Contact", fields)}
    assert set(first) == {"u-000001", "u-000002", "u-000003"}
    assert first["u-000001"]["Id"] == existing[0]
    assert first["u-000003"]["LastName"] == "[not provided]"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["objects"]["Contact"]["updated"],
            report["objects"]["Contact"]["created"]) == (1, 2)

    users = [{**u, "engagementScore": u["engagementScore"] + 1} for u in users]
    run_target(config_for(sf, tmp_path, UPSERT_MAPPING), singer("users", USER_SCHEMA, users))

    second = {r["Personalization_User_Id__c"]: r for r in records(
        sf, "Contact", "Id,Personalization_User_Id__c,Personalization_Engagement_Score__c")}
    assert len(second) == 3
    assert {k: r["Id"] for k, r in second.items()} == {k: r["Id"] for k, r in first.items()}
    assert {k: r["Personalization_Engagement_Score__c"] for k, r in second.items()} == {
        "u-000001": 1.1, "u-000002": 1.2, "u-000003": 1.3}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["objects"]["Contact"]["updated"],
            report["objects"]["Contact"]["created"]) == (3, 0)


# -- transient and permanent failures ---------------------------------------------------------


def test_lock_errors_on_5_percent_are_retried_until_all_are_updated(
        sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"c{n}@example.com"}
                         for n in range(2000)])
    users = [user(n, f"c{n}@example.com") for n in range(2000)]
    users += [user(n, f"nobody{n}@example.com") for n in range(2000, 2100)]
    sf.faults(lock_row_rate=0.05, seed=7)

    # Five drains: retries of one drain's batches join later batches of the run's job.
    run_target(config_for(sf, tmp_path, max_record_retries=5, batch_size_rows=500,
                          bulk_batch_size=500),
               singer("users", USER_SCHEMA, users))

    stored = records(sf, "Contact", "Personalization_Engagement_Score__c")
    assert all(r["Personalization_Engagement_Score__c"] is not None for r in stored)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    contact = report["objects"]["Contact"]
    assert contact["retried"] >= 50  # about 5 % of 2,000 records, at least once
    assert (contact["updated"], contact["unmatched"], contact["rejected"]) == (2000, 100, 0)
    assert contact["updated"] + contact["unmatched"] + contact["rejected"] == len(users)
    assert contact["lock_retried"] == contact["retried"]
    # the run's job, and one Serial job for the lock retries (create + close each)
    assert kinds(sf)["bulk_job"] == 4
    assert contact["bulk_jobs"] == 2


def test_failed_batches_on_lock_are_retried(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(30)])
    sf.faults(fail_batches=1)

    run_target(config_for(sf, tmp_path, bulk_batch_size=10),
        singer("users", USER_SCHEMA, [user(n, f"c{n}@example.com") for n in range(30)]))

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["objects"]["Contact"]["updated"], report["objects"]["Contact"]["retried"]) \
        == (30, 10)
    assert kinds(sf)["bulk_batch"] == 4


INVALID_MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    match:
      - {field: Email, source: emailAddress, normalize: [email]}
    fields:
      Personalization_User_Id__c: {source: accountId}
      Personalization_Engagement_Score__c: {source: engagementScore, convert: [number]}
      Personalization_Tier__c:
        source: attributes.plan
        convert: [{value_map: {gold: Gold}, default: keep}]
      Title: {source: attributes.title}
"""


def test_invalid_values_are_rejected_with_their_codes(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com",
                          **({"Personalization_User_Id__c": "taken"} if n == 5 else {})}
                         for n in range(6)])
    users = [
        user(0, "c0@example.com", attributes={"plan": "gold", "title": "CTO"}),
        user(1, "c1@example.com", attributes={"plan": "platinum"}),
        user(2, "c2@example.com", attributes={"plan": "gold", "title": "T" * 129}),
        user(3, "c3@example.com", engagementScore="high", attributes={"plan": "gold"}),
        user(4, "c4@example.com", accountId="taken", attributes={"plan": "gold"}),
        user(6, "nobody@example.com"),
    ]
    schema = {**USER_SCHEMA, "properties": {**USER_SCHEMA["properties"],
                                            "engagementScore": {}}}

    run_target(config_for(sf, tmp_path, INVALID_MAPPING, fail_on_rejects=10),
        singer("users", schema, users))

    rejects = {r["key"]: r for r in read_jsonl(tmp_path / "out" / "rejects.jsonl")}
    assert {k: (r["stage"], r["code"]) for k, r in rejects.items()} == {
        "u-000001": ("precheck", "PRECHECK_INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        "u-000002": ("precheck", "PRECHECK_STRING_TOO_LONG"),
        "u-000003": ("mapping", "INVALID_VALUE"),
        "u-000004": ("salesforce", "DUPLICATE_VALUE"),
    }
    assert rejects["u-000002"]["fields"] == ["Title"]
    assert rejects["u-000004"]["crm_id"] is not None
    assert rejects["u-000004"]["values"]["Personalization_User_Id__c"] == "taken"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    contact = report["objects"]["Contact"]
    assert (contact["updated"], contact["unmatched"], contact["rejected"]) == (1, 1, 4)
    assert contact["updated"] + contact["unmatched"] + contact["rejected"] == len(users)
    assert records(sf, "Contact", "Title", "Email = 'c0@example.com'") == [{"Title": "CTO"}]


def test_too_many_rejects_fail_the_run_after_writing_outcomes(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(3)])
    users = [user(0, "c0@example.com", attributes={"plan": "gold"}),
             user(1, "c1@example.com", attributes={"plan": "platinum"}),
             user(2, "c2@example.com", attributes={"plan": "gold", "title": "T" * 200})]

    with pytest.raises(RejectThresholdError, match=r"2 of 3 input records were rejected"):
        run_target(config_for(sf, tmp_path, INVALID_MAPPING, fail_on_rejects=0.5),
            singer("users", USER_SCHEMA, users))

    assert len(read_jsonl(tmp_path / "out" / "rejects.jsonl")) == 2
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["objects"]["Contact"]["updated"] == 1
    assert "(tmp" not in report["error"]
    assert records(sf, "Contact", "Personalization_Tier__c", "Email = 'c0@example.com'") == [
        {"Personalization_Tier__c": "Gold"}]


# -- credentials and permissions ------------------------------------------------------------


def test_expired_session_mid_run_recovers(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(300)])
    users = [user(n, f"c{n}@example.com") for n in range(300)]
    text = lines(singer("users", USER_SCHEMA, users))
    target = TargetSalesforceCRM(config=config_for(sf, tmp_path, batch_size_rows=100))

    def expire_at_line_150(number: int) -> None:  # as an admin might
        if number == 150:
            sf.admin("POST", "sessions/expire")

    target.listen(HookedInput(text, expire_at_line_150))

    stored = records(sf, "Contact", "Personalization_Engagement_Score__c")
    assert all(r["Personalization_Engagement_Score__c"] is not None for r in stored)
    assert kinds(sf)["oauth"] == 2
    assert target.run.report.objects["Contact"].updated == 300


def test_revoked_credentials_end_the_run_with_the_actionable_message(
        sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": "c0@example.com"}])
    sf.admin("POST", "revoke", json={"reason": "inactive user"})
    (tmp_path / "config.json").write_text(json.dumps(config_for(sf, tmp_path)))
    (tmp_path / "input.jsonl").write_text(
        lines(singer("users", USER_SCHEMA, [user(0, "c0@example.com")])))

    done = subprocess.run(
        [sys.executable, "-c",
         "from target_salesforce_crm.target.target import TargetSalesforceCRM; "
         "TargetSalesforceCRM.cli()",
         "--config", str(tmp_path / "config.json"), "--input", str(tmp_path / "input.jsonl")],
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "inactive user" in errors[0]
    assert "Traceback" not in done.stderr
    assert defaults.SF_CLIENT_SECRET not in done.stderr + done.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed"
    assert "inactive user" in report["error"]


def test_revoked_mid_run_raises_authentication_error(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(20)])
    text = lines(singer("users", USER_SCHEMA, [user(n, f"c{n}@example.com") for n in range(20)]))

    def revoke_at_line_12(number: int) -> None:
        if number == 12:
            sf.admin("POST", "revoke", json={"reason": "ip restricted"})

    target = TargetSalesforceCRM(config=config_for(sf, tmp_path, batch_size_rows=10,
                                                    bulk_batch_size=10))
    with pytest.raises(AuthenticationError, match="ip restricted"):
        target.listen(HookedInput(text, revoke_at_line_12))

    assert kinds(sf)["bulk_batch"] == 1  # the first drain filled a batch and sent it
    report = target.run.report
    assert report.status == "failed"
    # Its answer was never read, so no outcome (and no STATE) claims those records.
    assert report.objects["Contact"].updated == 0


def test_field_without_edit_permission_fails_preflight(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": "c0@example.com"}])
    sf.admin("POST", "field-access", json={"object": "Contact",
                                           "field": "Personalization_Tier__c", "access": "read"})
    sf.admin("POST", "field-access", json={"object": "Contact",
                                           "field": "Personalization_Segments__c",
                                           "access": "hidden"})
    sf.clear_ledger()

    with pytest.raises(PreflightError) as caught:
        run_target(config_for(sf, tmp_path),
                   singer("users", USER_SCHEMA, [user(0, "c0@example.com")]))

    message = str(caught.value)
    assert message.startswith("Preflight failed (2 problems): ")
    assert "grant Edit on Contact.Personalization_Tier__c to the integration user's " \
        "permission set" in message
    assert "grant Read and Edit on Contact.Personalization_Segments__c" in message
    assert set(kinds(sf)) == {"oauth", "describe"}


def test_api_budget_is_checked_before_any_write(sf: Any, tmp_path: Path) -> None:
    sf.admin("POST", "limits", json={"DailyApiRequests": {"Remaining": 20}})
    sf.clear_ledger()

    with pytest.raises(ApiBudgetError, match="max_api_share"):
        run_target(config_for(sf, tmp_path), singer(
            "users", USER_SCHEMA, [user(n, f"c{n}@example.com") for n in range(10)]))

    assert "soap_query" not in kinds(sf)
    assert "bulk_job" not in kinds(sf)


# -- escaping ---------------------------------------------------------------------------------


def test_emails_with_quotes_backslashes_and_unicode_match_without_injection(
        sf: Any, tmp_path: Path) -> None:
    emails = ["o'brien@example.com", "back\\slash@example.com", "zoë.ünïcode@exämple.com",
              '"quoted"@example.com', "plain@example.com"]
    ids = seed(sf, "Contact", [{"LastName": "C", "Email": e} for e in emails])
    users = [user(n, e.upper()) for n, e in enumerate(emails[:4])]
    users.append(user(9, "x' OR Email != '"))

    run_target(config_for(sf, tmp_path), singer("users", USER_SCHEMA, users))

    scores = {r["Id"]: r["Personalization_Engagement_Score__c"]
              for r in records(sf, "Contact", "Id,Personalization_Engagement_Score__c")}
    assert scores == {ids[0]: 0.0, ids[1]: 0.0, ids[2]: 0.0, ids[3]: 0.0, ids[4]: None}
    [unmatched] = read_jsonl(tmp_path / "out" / "unmatched.jsonl")
    assert unmatched["key"] == "u-000009"


# -- composition: any tap whose streams the mapping names ------------------------------------

CSV_MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: crm_contacts
    key: email
    match:
      - {field: Email, source: email, normalize: [email]}
    fields:
      Personalization_Engagement_Score__c: {source: score, convert: [number]}
      Personalization_Last_Activity__c: {source: last_seen, convert: [iso_datetime]}
"""


def test_a_csv_like_stream_feeds_contacts_and_other_streams_are_ignored(
        sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": "ada@example.com"}])
    csv_schema = {"type": "object", "properties": {
        "email": {"type": "string"}, "score": {"type": "string"},
        "last_seen": {"type": "string"}}}
    messages = [
        {"type": "SCHEMA", "stream": "crm_contacts", "schema": csv_schema,
         "key_properties": ["email"]},
        {"type": "RECORD", "stream": "crm_contacts",
         "record": {"email": "ADA@example.com", "score": "0.75", "last_seen": "2026-01-02"}},
        {"type": "SCHEMA", "stream": "orders",
         "schema": {"type": "object", "properties": {"id": {"type": "string"}}},
         "key_properties": ["id"]},
        {"type": "RECORD", "stream": "orders", "record": {"id": "o-1"}},
        {"type": "RECORD", "stream": "orders", "record": {"id": "o-2"}},
    ]

    run_target(config_for(sf, tmp_path, CSV_MAPPING), messages)

    assert records(sf, "Contact", "Personalization_Engagement_Score__c,"
                   "Personalization_Last_Activity__c") == [
        {"Personalization_Engagement_Score__c": 0.75,
         "Personalization_Last_Activity__c": "2026-01-02T00:00:00.000+0000"}]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["streams"]["orders"] == {"records": 2, "invalid": 0, "ignored": True}
    assert report["ignored_records"] == 2
    assert "Ignored streams (not in the mapping): orders." in (
        tmp_path / "out" / "report.md").read_text()


# -- nothing lost: odd records, duplicates, several matches -----------------------------------


def test_malformed_and_keyless_records_are_rejected_by_name(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(2)])
    users = [user(0, "c0@example.com"), user(1, "c1@example.com", engagementScore="high"),
             {"emailAddress": "c0@example.com", "engagementScore": 0.5}]
    schema = {**USER_SCHEMA, "properties": {**USER_SCHEMA["properties"],
                                            "id": {"type": ["string", "null"]}}}
    messages = singer("users", schema, users)
    messages[0]["key_properties"] = []

    run_target(config_for(sf, tmp_path, fail_on_rejects=5), messages)

    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    assert [(r["key"], r["code"], r["stage"]) for r in rejects] == [
        ("u-000001", "INVALID_RECORD", "input"), ("#3", "MISSING_KEY", "input")]
    assert ("record u-000001 of stream 'users' is unusable: it does not match the stream's "
            "schema") in rejects[0]["message"]
    assert "'high' is not of type 'number', 'null'" in rejects[0]["message"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["streams"]["users"]["invalid"] == 1
    assert report["rejected_records"] == 2
    assert report["objects"]["Contact"]["updated"] == 1


DUPLICATES_MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    ambiguity: %s
    match:
      - {field: Email, source: emailAddress, normalize: [email]}
    fields:
      Personalization_Engagement_Score__c: {source: engagementScore}
"""


def test_two_users_on_one_contact_are_merged_into_one_write(sf: Any, tmp_path: Path) -> None:
    [contact_id] = seed(sf, "Contact", [{"LastName": "C", "Email": "shared@example.com"}])
    users = [user(1, "shared@example.com", engagementScore=0.1),
             user(2, "SHARED@example.com", engagementScore=0.2)]

    run_target(config_for(sf, tmp_path, DUPLICATES_MAPPING % "reject"),
               singer("users", USER_SCHEMA, users))

    assert records(sf, "Contact", "Id,Personalization_Engagement_Score__c") == [
        {"Id": contact_id, "Personalization_Engagement_Score__c": 0.2}]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["objects"]["Contact"]["updated"], report["objects"]["Contact"]["rejected"]) \
        == (2, 0)


@pytest.mark.parametrize(("policy", "written"), [("update_all", [0.7, 0.7]),
                                                  ("most_recent", [None, 0.7]),
                                                  ("reject", [None, None])])
def test_ambiguity_policy_on_duplicate_contacts(
        sf: Any, tmp_path: Path, policy: str, written: list[float | None]) -> None:
    seed(sf, "Contact", [
        {"LastName": "Old", "Email": "twin@example.com",
         "LastModifiedDate": "2024-01-01T00:00:00.000+0000"},
        {"LastName": "New", "Email": "twin@example.com",
         "LastModifiedDate": "2025-01-01T00:00:00.000+0000"},
    ])

    run_target(config_for(sf, tmp_path, DUPLICATES_MAPPING % policy, fail_on_rejects=1),
        singer("users", USER_SCHEMA, [user(1, "twin@example.com", engagementScore=0.7)]))

    stored = {r["LastName"]: r["Personalization_Engagement_Score__c"]
              for r in records(sf, "Contact", "LastName,Personalization_Engagement_Score__c")}
    assert [stored["Old"], stored["New"]] == written
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["objects"]["Contact"]["ambiguous"] == (1 if policy == "reject" else 0)
    assert balanced(report)


def test_http_503_and_dropped_connections_do_not_lose_records(sf: Any, tmp_path: Path) -> None:
    seed(sf, "Contact", [{"LastName": "C", "Email": f"c{n}@example.com"} for n in range(500)])
    users = [user(n, f"c{n}@example.com") for n in range(500)]
    sf.faults(http_503_rate=0.2, drop_rate=0.05, seed=3)

    run_target(config_for(sf, tmp_path, bulk_batch_size=100, lookup_batch_size=100, max_retries=8),
        singer("users", USER_SCHEMA, users))

    sf.faults()
    stored = records(sf, "Contact", "Personalization_Engagement_Score__c")
    assert all(r["Personalization_Engagement_Score__c"] is not None for r in stored)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["objects"]["Contact"]["updated"] == 500
    assert report["status"] == "succeeded"


# -- `meltano config test` -------------------------------------------------------------------

MELTANO_TEST_MESSAGES = [
    {"type": "SCHEMA", "stream": "meltano_test_stream", "key_properties": ["id"],
     "schema": {"type": "object", "properties": {"id": {"type": "integer"},
                                                 "name": {"type": "string"}}}},
    {"type": "RECORD", "stream": "meltano_test_stream", "record": {"id": 1, "name": "test"}},
    {"type": "STATE", "value": {"meltano_test_stream": 1}},
]


def test_meltano_config_test_checks_connection_and_permissions(
        sf: Any, tmp_path: Path) -> None:
    sf.clear_ledger()

    target = run_target(config_for(sf, tmp_path), MELTANO_TEST_MESSAGES)

    assert kinds(sf) == {"oauth": 1, "describe": 2}  # Contact and Account
    assert target.run.report.streams["meltano_test_stream"].ignored
    log_line = target.run.report.log_line()
    assert "error" not in log_line.lower()

    sf.admin("POST", "field-access", json={"object": "Account",
                                           "field": "Personalization_Segments__c",
                                           "access": "read"})
    with pytest.raises(PreflightError, match=r"grant Edit on Account\.Personalization_Segments"):
        run_target(config_for(sf, tmp_path), MELTANO_TEST_MESSAGES)


def test_a_record_without_its_key_property_is_one_reject(sf: Any, tmp_path: Path) -> None:
    """singer-sdk stops the run (MissingKeyPropertiesError); here it is one INVALID_RECORD."""
    [contact_id] = seed(sf, "Contact", [{"LastName": "One", "Email": "one@example.com"}])
    keyless = user(2, "two@example.com")
    del keyless["id"]
    cfg = config_for(sf, tmp_path, fail_on_rejects=1)
    run_target(cfg, singer("users", USER_SCHEMA, [keyless, user(1, "one@example.com")],
                           {"bookmark": 1}))

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "succeeded"
    [reject] = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open()]
    assert reject["code"] == "INVALID_RECORD"
    assert "it has no 'id' (the stream's key_properties)" in reject["message"]
    [row] = records(sf, "Contact", "Id,Personalization_User_Id__c")
    assert (row["Id"], row["Personalization_User_Id__c"]) == (contact_id, "u-000001")
