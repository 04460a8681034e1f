"""BATCH messages: both targets give a record the outcome it gets as a RECORD message.

An upstream singer-sdk tap (tests/fixtures/tap-jsonl) with `batch_config` sends BATCH
messages with gzip JSONL files; the same records sent as RECORD messages are the reference.
Outcomes are compared through what the sandboxes hold and what each run reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from crm_sync_mapping.singer_batch import BatchFileError
from support import target_personalization as pzn
from support import target_salesforce_crm as crm
from support.tap_jsonl import tap_messages

pytestmark = pytest.mark.integration

USERS = [
    {"id": "u-000001", "emailAddress": "ada@example.com", "engagementScore": 0.5,
     "lastActivity": "2026-03-01T12:00:00.000Z", "attributes": {"plan": "gold"}},
    {"id": "u-000002", "emailAddress": "nobody@example.com", "engagementScore": 0.25},
    {"emailAddress": "bob@example.com", "engagementScore": 0.75},  # no id: a reject
    {"id": "u-000004", "emailAddress": "cy@example.com", "engagementScore": "high"},
    {"id": "u-000005", "emailAddress": "Bob@Example.com", "engagementScore": 0.125},
]
USER_SCHEMA = {"type": "object", "properties": {
    "id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
    "engagementScore": {"type": ["number", "null"]},
    "lastActivity": {"type": ["string", "null"], "format": "date-time"},
    "attributes": {"type": ["object", "null"]}}}


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return sorted({message["type"] for message in messages})


def outcomes(output_dir: Path) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    report = json.loads((output_dir / "report.json").read_text())
    rejects = [json.loads(line) for line in (output_dir / "rejects.jsonl").read_text().splitlines()]
    return report["objects"], sorted((r.get("id"), r.get("code") or r.get("reason"), r["message"])
                                     for r in rejects)


def test_target_salesforce_crm_batch_files_give_the_record_outcomes(
    sf: Any, tmp_path: Path,
) -> None:
    crm.seed(sf, "Contact", [{"LastName": "Ada", "Email": "ada@example.com"},
                             {"LastName": "Bob", "Email": "bob@example.com"},
                             {"LastName": "Cy", "Email": "cy@example.com"}])
    runs = {}
    for batch in (False, True):
        messages = tap_messages(tmp_path, "users", USER_SCHEMA, USERS, key="id", batch=batch)
        assert kinds(messages) == (["BATCH", "SCHEMA", "STATE"] if batch
                                   else ["RECORD", "SCHEMA", "STATE"])
        cfg = crm.config_for(sf, tmp_path / str(batch), fail_on_rejects=10)
        sf.clear_ledger()
        crm.run_target(cfg, messages)
        runs[batch] = outcomes(Path(cfg["output_dir"])), sf.ledger()["by_kind"]
        written = crm.records(sf, "Contact", "Email,Personalization_Engagement_Score__c",
                              "Personalization_Engagement_Score__c != null")
        assert sorted((row["Email"], row["Personalization_Engagement_Score__c"])
                      for row in written) == [("ada@example.com", 0.5), ("bob@example.com", 0.125)]

    (objects, rejects), ledger = runs[True]
    assert runs[True] == runs[False]
    contact = objects["Contact"]
    assert (contact["updated"], contact["unmatched"], contact["candidates"]) == (2, 1, 3)
    assert [code for _, code, _ in rejects] == ["INVALID_RECORD", "INVALID_RECORD"]
    assert "it has no 'id' (the stream's key_properties)" in rejects[0][2]
    assert "'high' is not of type 'number', 'null'" in rejects[1][2]
    assert ledger["bulk_batch"] == 1  # five records in three files: still one batch


def test_target_personalization_batch_files_give_the_record_outcomes(
    personalization_sandbox: Any, tmp_path: Path,
) -> None:
    box = personalization_sandbox
    schema = {"type": "object", "properties": {
        "Id": {"type": "string"}, "Email": {"type": ["string", "null"]},
        "Title": {"type": ["string", "null"]}, "Department": {"type": ["string", "null"]},
        "LeadSource": {"type": ["string", "null"]}, "IsDeleted": {"type": "boolean"}}}
    contacts = [
        {"Id": "003000000000001AAA", "Email": "ada@example.com", "Title": "CTO",
         "Department": None, "LeadSource": "Web", "IsDeleted": False},
        {"Id": "003000000000009AAA", "Email": "stranger@example.com", "Title": "CEO",
         "Department": None, "LeadSource": None, "IsDeleted": False},
        {"Email": "cy@example.com", "Title": "CFO", "Department": None, "LeadSource": None,
         "IsDeleted": False},  # no Id: a reject
    ]
    runs = {}
    for batch in (False, True):
        box.reset()
        box.admin("POST", "users", json=[{"id": "u-000001", "emailAddress": "ada@example.com",
                                          "attributes": {}}])
        messages = tap_messages(tmp_path, "contacts", schema, contacts, key="Id", batch=batch)
        assert ("BATCH" if batch else "RECORD") in kinds(messages)
        # Each run its own fingerprints: the sandbox is reset in between, which the
        # change detection of one deployment would not see (it would skip Ada's values).
        config = pzn.config_for(box, tmp_path / str(batch), delivery="event_api",
                                fingerprint_db=str(tmp_path / f"fingerprints-{batch}.sqlite"))
        pzn.run_target(config, messages)
        attributes = box.admin("GET", "users", params={"id": "u-000001"})[0]["attributes"]
        assert attributes["crmTitle"] == "CTO"
        report = json.loads((Path(config["output_dir"]) / "report.json").read_text())
        rejects = sorted((r["id"], r["outcome"], r["reason"]) for r in [
            json.loads(line)
            for line in (Path(config["output_dir"]) / "rejects.jsonl").read_text().splitlines()])
        runs[batch] = report["objects"], rejects, box.ledger()["by_kind"]
    assert runs[True] == runs[False]
    assert runs[True][1] == [("(no Id)", "rejected", "invalid_record"),
                             ("003000000000009AAA", "unmatched", "unknown_identity")]


def test_a_batch_line_that_is_not_json_is_an_unreadable_line_reject(
    sf: Any, tmp_path: Path,
) -> None:
    """As such a line on standard input would be: one UNREADABLE_LINE reject naming the
    file and line; the rest of the file goes on."""
    crm.seed(sf, "Contact", [{"LastName": "Ada", "Email": "ada@example.com"}])
    files = tmp_path / "files"
    files.mkdir()
    lines = ['{"id": "u-000001", "emailAddress": "ada@example.com", "engagementScore": 0.5}',
             "not json", '{"id": "u-000002"},"stream":"accounts"', '"text"']
    (files / "users-1.jsonl").write_text("".join(line + "\n" for line in lines))
    cfg = crm.config_for(sf, tmp_path, fail_on_rejects=10)
    url = (files / "users-1.jsonl").as_uri()
    crm.run_target(cfg, [
        {"type": "SCHEMA", "stream": "users", "schema": USER_SCHEMA, "key_properties": ["id"]},
        {"type": "BATCH", "stream": "users", "encoding": {"format": "jsonl"}, "manifest": [url]},
    ])
    objects, rejects = outcomes(tmp_path / "out")
    assert objects["Contact"]["updated"] == 1
    assert [code for _, code, _ in rejects] == [
        "INVALID_RECORD", "UNREADABLE_LINE", "UNREADABLE_LINE"]
    assert "its record is text, not a JSON object" in rejects[0][2]  # line 4
    assert rejects[1][2].startswith("input line 2 is not JSON (Expecting value")
    assert rejects[2][2].startswith("input line 3 is not JSON (Extra data")
    assert all(f"in BATCH file {url}" in message for _, _, message in rejects[1:])


def test_a_batch_file_that_cannot_be_read_fails_the_run_naming_it(
    sf: Any, tmp_path: Path,
) -> None:
    cfg = crm.config_for(sf, tmp_path)
    missing = (tmp_path / "gone.jsonl.gz").as_uri()
    with pytest.raises(BatchFileError, match=r"BATCH file .*gone\.jsonl\.gz of stream 'users'"):
        crm.run_target(cfg, [
            {"type": "SCHEMA", "stream": "users", "schema": USER_SCHEMA,
             "key_properties": ["id"]},
            {"type": "BATCH", "stream": "users",
             "encoding": {"format": "jsonl", "compression": "gzip"}, "manifest": [missing]},
        ])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed"
    assert "gone.jsonl.gz" in report["error"]
