"""target-personalization end to end against a scripted API (requests-mock) and a local folder.

Asserts on outcomes: the feed files in the inbound folder, the events the fake API received,
STATE released only after delivery, report counts, rejects with reasons, settings errors.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm
from singer_sdk.exceptions import ConfigValidationError
from tap_personalization.errors import PersonalizationAuthError
from tap_personalization.target.delivery import normalized_fingerprint
from tap_personalization.target.report import RejectThresholdError
from tap_personalization.target.target import TargetPersonalization

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://acme.us-5.evergage.com"
SECRET = "very-secret-token-value"
USERS_URL = f"{BASE}/api/dataset/engage/users.json"
ACCOUNTS_URL = f"{BASE}/api/dataset/engage/accounts.json"
EVENT_URL = f"{BASE}/api2/authevent/engage"

USERS = [
    {"id": "u-000001", "emailAddress": "ada@example.com", "attributes": {}},
    {"id": "u-000002", "emailAddress": "bob@example.com",
     "attributes": [{"name": "sfcrmLeadId", "value": "00Q000000000001AAA", "updated": 1}]},
    {"id": "u-000003", "emailAddress": "cy@example.com",
     "attributes": {"sfcrmContactId": "003000000000003AAA"}},
]
ACCOUNTS = [{"id": "example-corp", "name": "Example Corp.", "attributes": {}}]

CONTACT_SCHEMA = {"type": "object", "properties": {
    "Id": {"type": "string"}, "Email": {"type": ["string", "null"]},
    "Title": {"type": ["string", "null"]}, "Department": {"type": ["string", "null"]},
    "LeadSource": {"type": ["string", "null"]}, "IsDeleted": {"type": "boolean"},
    "SystemModstamp": {"type": "string", "format": "date-time"}}}
LEAD_SCHEMA = {"type": "object", "properties": {
    "Id": {"type": "string"}, "Email": {"type": ["string", "null"]},
    "Status": {"type": ["string", "null"]}, "Rating": {"type": ["string", "null"]},
    "Industry": {"type": ["string", "null"]}, "IsConverted": {"type": "boolean"},
    "IsDeleted": {"type": "boolean"}}}
ACCOUNT_SCHEMA = {"type": "object", "properties": {
    "Id": {"type": "string"}, "Personalization_Account_Id__c": {"type": ["string", "null"]},
    "Industry": {"type": ["string", "null"]}, "Type": {"type": ["string", "null"]},
    "AnnualRevenue": {"type": ["number", "null"]},
    "NumberOfEmployees": {"type": ["integer", "null"]}, "IsDeleted": {"type": "boolean"}}}
MEMBER_SCHEMA = {"type": "object", "properties": {
    "Id": {"type": "string"}, "CampaignId": {"type": "string"},
    "Campaign": {"type": ["object", "null"], "properties": {"Name": {"type": ["string", "null"]}}},
    "ContactId": {"type": ["string", "null"]}, "LeadId": {"type": ["string", "null"]},
    "IsDeleted": {"type": "boolean"}}}


def schema(stream: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": body, "key_properties": ["Id"]}


def record(stream: str, **fields: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": fields}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"contacts": {"n": n}}}}


def contact(n: int, email: str, **fields: Any) -> dict[str, Any]:
    values = {"Id": f"0030000000000{n:02d}AAA", "Email": email, "Title": "CTO",
              "Department": None, "LeadSource": "Web", "IsDeleted": False,
              "SystemModstamp": "2026-01-01T00:00:00.000Z"}
    values.update(fields)
    return record("contacts", **values)


def sync_messages() -> list[dict[str, Any]]:
    return [
        schema("contacts", CONTACT_SCHEMA),
        contact(1, "Ada@Example.com"),                      # → u-000001 by e-mail (normalised)
        contact(3, "changed@example.com", Title="COO"),     # → u-000003 by contact id
        contact(9, "nobody@example.com"),                   # unmatched
        contact(8, "x@example.com", Title="é" * 1024),      # 2 KB: rejected
        contact(7, "gone@example.com", IsDeleted=True),     # skipped
        state(1),
        schema("leads", LEAD_SCHEMA),
        record("leads", Id="00Q000000000001AAA", Email=None, Status="Working - Contacted",
               Rating="Hot", Industry="Retail", IsConverted=False, IsDeleted=False),
        schema("accounts", ACCOUNT_SCHEMA),
        record("accounts", Id="001000000000001AAA", Personalization_Account_Id__c="Example-Corp",
               Industry="Retail", Type="Customer - Direct", AnnualRevenue=1250000.5,
               NumberOfEmployees=120, IsDeleted=False),
        record("accounts", Id="001000000000002AAA", Personalization_Account_Id__c="unknown-inc",
               Industry="Media", Type=None, AnnualRevenue=None, NumberOfEmployees=None,
               IsDeleted=False),
        schema("campaign_members", MEMBER_SCHEMA),
        record("campaign_members", Id="00v000000000001AAA", CampaignId="701000000000001AAA",
               Campaign={"Name": "Spring Webinar 2026"}, ContactId="003000000000001AAA",
               LeadId=None, IsDeleted=False),
        record("campaign_members", Id="00v000000000002AAA", CampaignId="701000000000001AAA",
               Campaign={"Name": "Spring Webinar 2026"}, ContactId=None,
               LeadId="00Q000000000001AAA", IsDeleted=True),
        state(2),
    ]


class FakeApi:
    """Exports served in pages; events answered by a script (errorCode per call, default 0)."""

    def __init__(self, mocker: rm.Mocker) -> None:
        self.events: list[dict[str, Any]] = []
        self.event_codes: dict[str, list[int]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        mocker.get(USERS_URL, json=self._pages(USERS))
        mocker.get(ACCOUNTS_URL, json=self._pages(ACCOUNTS))
        mocker.post(EVENT_URL, json=self._event)
        self.mocker = mocker

    @staticmethod
    def _pages(rows: list[dict[str, Any]]) -> Any:
        def answer(request: Any, context: Any) -> list[dict[str, Any]]:
            query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
            page, size = int(query["page"]), int(query["pageSize"])
            return rows[page * size:(page + 1) * size]
        return answer

    def _event(self, request: Any, context: Any) -> dict[str, Any]:
        body = request.json()
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.events.append(body)
            script = self.event_codes.get(body["user"]["id"])
            code = script.pop(0) if script else 0
        time.sleep(0.02)  # let calls overlap, so the concurrency bound is exercised
        with self.lock:
            self.in_flight -= 1
        if code:
            return {"errorCode": code, "errorMessage": f"scripted code {code}"}
        return {"errorCode": 0, "userId": body["user"]["id"]}

    def calls(self, path_end: str) -> int:
        return sum(1 for r in self.mocker.request_history if r.path.endswith(path_end))


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with rm.Mocker() as mocker:
        yield FakeApi(mocker)


@pytest.fixture
def inbound(tmp_path: Path) -> Path:
    folder = tmp_path / "inbound"
    folder.mkdir()
    return folder


def make_config(tmp_path: Path, inbound: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "account": "acme", "instance": "us-5", "dataset": "engage",
        "api_key_id": "key-id", "api_key_secret": SECRET,
        "mapping_file": str(ROOT / "transforms" / "crm-to-personalization.yml"),
        "feed_dir": str(inbound), "output_dir": str(tmp_path / "out"),
        "fingerprint_db": str(tmp_path / "fingerprints.sqlite"),
        "page_size": 2, "max_retries": 3, "fail_on_rejects": 10,
    }
    config.update(overrides)
    return config


class StateSpy(io.StringIO):
    """Stdout that notes which feed files were in the inbound folder when each STATE left."""

    def __init__(self, inbound: Path) -> None:
        super().__init__()
        self.inbound = inbound
        self.states: list[tuple[dict[str, Any], list[str]]] = []

    def write(self, text: str) -> int:
        if text.strip():
            files = sorted(p.name for p in self.inbound.iterdir() if not p.name.startswith("."))
            self.states.append((json.loads(text), files))
        return super().write(text)


def run(config: dict[str, Any], messages: list[dict[str, Any]], inbound: Path,
        monkeypatch: pytest.MonkeyPatch, *, drain_every_record: bool = False) -> StateSpy:
    target = TargetPersonalization(config=config)
    if drain_every_record:  # the SDK's age-based drain, made to happen after every record
        monkeypatch.setattr(target, "_MAX_RECORD_AGE_IN_MINUTES", -1)
    spy = StateSpy(inbound)
    monkeypatch.setattr("sys.stdout", spy)
    target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    return spy


def read_feed(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def feed_files(inbound: Path, prefix: str) -> list[Path]:
    return sorted(p for p in inbound.iterdir() if p.name.startswith(prefix + "-"))


def report_of(config: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((Path(config["output_dir"]) / "report.json").read_text()))


def rejects_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    path = Path(config["output_dir"]) / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_feed_run_writes_users_accounts_and_segment_deltas(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config(tmp_path, inbound)
    spy = run(config, sync_messages(), inbound, monkeypatch)

    [users] = feed_files(inbound, "user")
    assert read_feed(users) == [
        {"userId": "u-000001", "attribute:sfcrmContactId": "003000000000001AAA",
         "attribute:emailAddress": "", "attribute:sfcrmLeadId": "", "attribute:crmTitle": "CTO",
         "attribute:crmDepartment": "", "attribute:crmLeadSource": "Web",
         "attribute:crmLeadStatus": "", "attribute:crmLeadRating": "", "attribute:crmIndustry": ""},
        {"userId": "u-000003", "attribute:sfcrmContactId": "",
         "attribute:emailAddress": "changed@example.com", "attribute:sfcrmLeadId": "",
         "attribute:crmTitle": "COO", "attribute:crmDepartment": "",
         "attribute:crmLeadSource": "Web", "attribute:crmLeadStatus": "",
         "attribute:crmLeadRating": "", "attribute:crmIndustry": ""},
        {"userId": "u-000002", "attribute:sfcrmContactId": "", "attribute:emailAddress": "",
         "attribute:sfcrmLeadId": "", "attribute:crmTitle": "", "attribute:crmDepartment": "",
         "attribute:crmLeadSource": "", "attribute:crmLeadStatus": "Working - Contacted",
         "attribute:crmLeadRating": "Hot", "attribute:crmIndustry": "Retail"},
    ]
    [accounts] = feed_files(inbound, "account")
    assert read_feed(accounts) == [{
        "accountId": "example-corp", "attribute:crmIndustry": "Retail",
        "attribute:crmAccountType": "Customer - Direct", "attribute:crmAnnualRevenue": "1250000.5",
        "attribute:crmEmployees": "120"}]
    [segments] = feed_files(inbound, "segment-delta")
    assert read_feed(segments) == [
        {"userId": "u-000001", "segmentId": "seg-webinar", "updateType": "Add"},
        {"userId": "u-000002", "segmentId": "seg-webinar", "updateType": "Remove"},
    ]
    # files are processed in name-stamp order: users, then accounts, then segment deltas
    assert sorted([users, accounts, segments], key=lambda p: p.name[-23:]) == [
        users, accounts, segments]

    # one STATE, released after the three files were in the folder
    assert spy.states == [({"bookmarks": {"contacts": {"n": 2}}},
                           sorted([users.name, accounts.name, segments.name]))]

    report = report_of(config)
    assert report["status"] == "succeeded"
    assert report["objects"]["Contact"] == {
        "target": "user", "stream": "contacts", "received": 5, "written": 2, "segment_adds": 0,
        "segment_removes": 0, "unchanged": 0,
        "skipped": {"deleted": 1}, "unmatched": {"unknown_identity": 1},
        "rejected": {"value_too_long": 1}, "clears_not_applied": 0}
    assert report["objects"]["Account"]["unmatched"] == {"unknown_identity": 1}
    assert report["objects"]["segments"]["segment_adds"] == 1
    assert report["objects"]["segments"]["segment_removes"] == 1
    # connection check (1) + users export pages 0, 1, 2 + accounts export pages 0, 1
    assert report["api_calls"] == {"accounts_export": 2, "users_export": 4}
    assert api.calls("authevent/engage") == 0
    reasons = sorted((r["id"], r["outcome"], r["reason"]) for r in rejects_of(config))
    assert reasons == [("001000000000002AAA", "unmatched", "unknown_identity"),
                       ("003000000000008AAA", "rejected", "value_too_long"),
                       ("003000000000009AAA", "unmatched", "unknown_identity")]
    markdown = (Path(config["output_dir"]) / "report.md").read_text()
    assert "| Contact | contacts | user | 5 | 2 |" in markdown


def test_every_state_waits_for_its_files(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config(tmp_path, inbound, gzip=True)
    messages = [schema("contacts", CONTACT_SCHEMA), contact(1, "ada@example.com"), state(1),
                contact(3, "cy@example.com", Title="CFO"), state(2),
                contact(2, "bob@example.com", Title="CEO")]
    spy = run(config, messages, inbound, monkeypatch, drain_every_record=True)
    first, second = feed_files(inbound, "user")
    assert first.name.endswith(".csv.gz")
    # The SDK drains after a record, so a STATE leaves with every record read before it; it
    # leaves only once the file holding those records is in the folder.
    assert [(value["bookmarks"]["contacts"]["n"], files) for value, files in spy.states] == [
        (1, [first.name]), (2, [first.name, second.name]), (2, [first.name, second.name])]
    assert [row["userId"] for row in read_gzip_feed(first)] == ["u-000001", "u-000003"]
    assert [row["userId"] for row in read_gzip_feed(second)] == ["u-000002"]


def read_gzip_feed(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_event_run_posts_one_event_per_user_and_feeds_the_rest(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config(tmp_path, inbound, delivery="event_api", event_concurrency=2)
    run(config, sync_messages(), inbound, monkeypatch)
    by_user = {event["user"]["id"]: event for event in api.events}
    assert sorted(by_user) == ["u-000001", "u-000002", "u-000003"]
    assert by_user["u-000001"] == {
        "action": "CRM Sync", "source": {"channel": "Server"},
        "flags": {"noCampaigns": True, "nonInteractive": True},
        "user": {"id": "u-000001", "attributes": {
            "sfcrmContactId": "003000000000001AAA", "crmTitle": "CTO", "crmLeadSource": "Web"}}}
    assert api.max_in_flight <= 2
    assert feed_files(inbound, "user") == []
    assert len(feed_files(inbound, "account")) == 1
    assert len(feed_files(inbound, "segment-delta")) == 1
    report = report_of(config)
    assert report["api_calls"]["event"] == 3
    assert report["objects"]["Contact"]["written"] == 2
    assert report["objects"]["Lead"]["written"] == 1


def test_events_of_one_user_keep_input_order_and_busy_is_retried(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.event_codes["u-000001"] = [3]  # busy once: retried by the client
    api.mocker.get(USERS_URL, json=FakeApi._pages(USERS + [
        {"id": f"u-1{n:05d}", "emailAddress": f"p{n}@example.com", "attributes": {}}
        for n in range(12)]))
    titles = [f"Title {n}" for n in range(4)]
    messages = [schema("contacts", CONTACT_SCHEMA)]
    for n, title in enumerate(titles):
        messages.append(contact(1, "ada@example.com", Title=title))
        messages += [contact(20 + 3 * n + k, f"p{3 * n + k}@example.com") for k in range(3)]
    config = make_config(tmp_path, inbound, delivery="event_api", event_concurrency=4,
                         page_size=50)
    with caplog.at_level(logging.WARNING):
        run(config, messages, inbound, monkeypatch)
    ada = [e["user"]["attributes"]["crmTitle"] for e in api.events if e["user"]["id"] == "u-000001"]
    assert ada == ["Title 0", "Title 0", "Title 1", "Title 2", "Title 3"]  # retry, then in order
    [retry] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert retry.endswith("after attempt 1: event API busy (errorCode 3)")  # not "HTTP 200 OK"
    assert api.max_in_flight <= 4
    assert report_of(config)["objects"]["Contact"]["written"] == 16


def test_api_rejects_are_reported_and_the_threshold_fails_the_run(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    api.event_codes["u-000001"] = [5]
    config = make_config(tmp_path, inbound, delivery="event_api", fail_on_rejects=0)
    messages = [schema("contacts", CONTACT_SCHEMA), contact(1, "ada@example.com"),
                contact(3, "cy@example.com")]
    with pytest.raises(RejectThresholdError, match="1 records were rejected"):
        run(config, messages, inbound, monkeypatch)
    [reject] = rejects_of(config)
    assert (reject["reason"], reject["details"]["errorCode"]) == ("api_rejected", 5)
    assert "scripted code 5" in reject["message"]
    report = report_of(config)
    assert report["status"] == "failed"
    assert "fail_on_rejects" in report["failure"]
    assert report["objects"]["Contact"]["written"] == 1


def test_refused_token_stops_before_reading_input_with_the_settings_to_check(
    inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config(tmp_path, inbound)
    with rm.Mocker() as mocker:
        mocker.get(USERS_URL, status_code=401)
        with pytest.raises(PersonalizationAuthError, match="api_key_id and api_key_secret"):
            run(config, sync_messages(), inbound, monkeypatch)
    report = report_of(config)
    assert report["status"] == "failed"
    assert report["input_records"] == 0
    assert rejects_of(config) == []
    assert list(inbound.iterdir()) == []


def test_unmapped_stream_is_ignored_without_alarming_words(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What `meltano config test` sends: its output must not say error or exception."""
    config = make_config(tmp_path, inbound)
    messages = [
        {"type": "SCHEMA", "stream": "meltano_test_stream", "key_properties": ["id"],
         "schema": {"type": "object", "properties": {"id": {"type": "integer"},
                                                     "name": {"type": "string"}}}},
        {"type": "RECORD", "stream": "meltano_test_stream",
         "record": {"id": 1, "name": "Meltano Test Record"}},
        {"type": "STATE", "value": {"bookmarks": {"meltano_test_stream": {"last_record": 1}}}},
    ]
    caplog.set_level("INFO")
    spy = run(config, messages, inbound, monkeypatch)
    text = caplog.text + spy.getvalue()
    assert "error" not in text.lower()
    assert "exception" not in text.lower()
    assert "meltano_test_stream" in caplog.text
    assert "not named in mapping_file" in caplog.text
    assert SECRET not in text
    report = report_of(config)
    assert report["streams"] == {"meltano_test_stream": {"records": 1, "ignored": True}}
    assert api.calls("users.json") == 1  # the connection check only


def test_schema_violation_becomes_a_reject_and_the_run_goes_on(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config(tmp_path, inbound)
    messages = [schema("contacts", CONTACT_SCHEMA),
                contact(1, "ada@example.com", IsDeleted="no"), contact(3, "cy@example.com")]
    run(config, messages, inbound, monkeypatch)
    [reject] = rejects_of(config)
    assert (reject["id"], reject["reason"]) == ("003000000000001AAA", "invalid_record")
    assert report_of(config)["objects"]["Contact"]["written"] == 1


def test_every_settings_problem_is_listed_at_once(tmp_path: Path) -> None:
    config = {"account": "acme", "dataset": "engage", "api_key_id": "id", "api_key_secret": "s",
              "mapping_file": str(tmp_path / "missing.yml"), "sftp_host": "sftp.example.com",
              "feed_dir": str(tmp_path)}
    with pytest.raises(ConfigValidationError) as caught:
        TargetPersonalization(config=config)
    errors = caught.value.errors
    assert any("mapping_file" in e and "does not exist" in e for e in errors)
    assert any("not both" in e for e in errors)
    assert any("sftp_username" in e for e in errors)
    assert any("sftp_password" in e for e in errors)
    assert any("sftp_known_hosts" in e and "always checked" in e for e in errors)


def test_event_delivery_needs_a_feed_destination_for_accounts_and_segments(
    tmp_path: Path,
) -> None:
    config = {"base_url": "https://x.example", "dataset": "engage", "api_key_id": "id",
              "api_key_secret": "s", "delivery": "event_api",
              "mapping_file": str(ROOT / "transforms" / "crm-to-personalization.yml")}
    with pytest.raises(ConfigValidationError) as caught:
        TargetPersonalization(config=config)
    assert caught.value.errors == [
        "delivery event_api still sends Account, segments as feed files (the Event API has no "
        "segment operation and changes accounts only with a user): set feed_dir or sftp_host, "
        "or disable them in the mapping file."]
    with pytest.raises(ConfigValidationError) as feed:
        TargetPersonalization(config={**config, "delivery": "etl_feed"})
    assert feed.value.errors == [
        "Set feed_dir (a local inbound folder) or sftp_host for delivery etl_feed."]


def test_host_key_fingerprint_forms() -> None:
    expected = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"
    assert normalized_fingerprint("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8=") == \
        expected
    assert normalized_fingerprint(" nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8 ") == expected


def test_ignored_stream_records_are_never_validated_and_summary_reaches_ci(
    api: FakeApi, inbound: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    config = make_config(tmp_path, inbound)
    messages = [
        {"type": "SCHEMA", "stream": "other", "key_properties": ["id"],
         "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}},
        {"type": "RECORD", "stream": "other", "record": {"id": "not a number"}},
        schema("contacts", CONTACT_SCHEMA), contact(1, "ada@example.com"),
    ]
    run(config, messages, inbound, monkeypatch)
    report = report_of(config)
    assert report["streams"]["other"] == {"records": 1, "ignored": True}
    assert report["objects"]["Contact"]["written"] == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n## target-personalization run")
    assert "| Contact | contacts | user | 1 | 1 |" in text
    assert "Ignored streams (not in the mapping): other." in text
