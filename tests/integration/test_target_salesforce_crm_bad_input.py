"""Bad input never stops target-salesforce-crm: each bad line is one reject with its reason.

One run reads a stream in which every kind of unusable line sits between good records
(`BAD_LINES`, the table docs/bad-inputs.md describes); the good records are written, and
each bad one is accounted for exactly once in rejects.jsonl and the report.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.target_salesforce_crm import config_for, kinds, records, report_of, seed
from target_salesforce_crm.target.preflight import PreflightError
from target_salesforce_crm.target.target import TargetSalesforceCRM

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "emailAddress": {"type": ["string", "null"]},
        "displayName": {"type": ["string", "null"]},
        "engagementScore": {"type": ["number", "null"]},
        "lastActivity": {"type": ["string", "null"], "format": "date-time"},
    },
}
SCHEMA = {"type": "SCHEMA", "stream": "users", "schema": USER_SCHEMA, "key_properties": ["id"]}


def user(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"u-{n:06d}", "emailAddress": f"user{n}@example.com", "displayName": f"U {n}",
            "engagementScore": 0.5, "lastActivity": "2026-03-01T12:00:00Z", **extra}


def record_line(record: Any) -> str:
    return json.dumps({"type": "RECORD", "stream": "users", "record": record})


DEEP = "[" * 100_000 + "]" * 100_000
# (input line, reject key, code, words of the reason)
BAD_LINES: list[tuple[str, str, str, str]] = [
    (record_line(user(90, displayName="cut \ud83d")), "u-000090", "INVALID_RECORD",
     "displayName holds text that is not valid Unicode"),
    (record_line(user(91, lastActivity="yesterday")), "u-000091", "INVALID_RECORD",
     "Could not parse value 'yesterday'"),
    (record_line(user(92, lastActivity="9999-12-31T23:30:00-01:00")), "u-000092",
     "INVALID_VALUE", "outside the years 1 to 9999 in UTC"),
    (record_line("text"), "#", "INVALID_RECORD", "its record is text, not a JSON object"),
    (record_line(None), "#", "INVALID_RECORD", "its record is null, not a JSON object"),
    (record_line([1, 2]), "#", "INVALID_RECORD", "its record is an array"),
    ('{"type": "RECORD", "stream": "users"}', "#", "INVALID_RECORD", "has no 'record'"),
    ('{"type": "RECORD", "stream": "users", "record": {"id": "u-000093", "deep": ' + DEEP
     + "}}", "u-000093", "INVALID_RECORD", "nests deeper than 64 levels"),
    (record_line(user(94, extra=json.loads("[" * 70 + "]" * 70))), "u-000094",
     "INVALID_RECORD", "nests 71 levels deep"),
    (record_line({"emailAddress": "nokey@example.com"}), "#", "INVALID_RECORD",
     "it has no 'id'"),
    ("this is not json", "line", "UNREADABLE_LINE", "not JSON"),
    ('{"type": "RECORD", "record": {"id": "u-000095"}}', "line", "UNREADABLE_LINE",
     "a RECORD message without a stream name"),
    ('{"stream": "users"}', "line", "UNREADABLE_LINE", "not a Singer message"),
    ('{"type": "SOMETHING"}', "line", "UNREADABLE_LINE", "unknown Singer message type"),
]


def test_every_bad_line_is_one_reject_and_the_good_records_are_written(
    sf: Any, tmp_path: Path,
) -> None:
    ids = seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"user{n}@example.com"}
                               for n in (1, 2)])
    seed(sf, "Contact", [{"LastName": "Overflow", "Email": "user92@example.com"}])
    lines = [json.dumps(SCHEMA), record_line(user(1))]
    lines += [line for line, *_ in BAD_LINES]
    lines += [record_line(user(2)), json.dumps({"type": "STATE", "value": {"done": True}})]
    cfg = config_for(sf, tmp_path, fail_on_rejects=100)

    TargetSalesforceCRM(config=cfg).listen(io.StringIO("\n".join(lines) + "\n"))

    report = report_of(cfg)
    assert report["status"] == "succeeded"
    assert report["records_read"] == 2 + len(BAD_LINES)
    assert report["rejected_records"] == len(BAD_LINES)
    assert report["unreadable_lines"] == sum(code == "UNREADABLE_LINE"
                                             for _, _, code, _ in BAD_LINES)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open()]
    assert len(rejects) == len(BAD_LINES)
    for _line, key, code, words in BAD_LINES:
        [reject] = [r for r in rejects if words in r["message"]]
        assert (reject["code"], reject["key"][:len(key)]) == (code, key), reject
        assert len(json.dumps(reject)) < 2_000  # a 100k-deep line is not repeated whole
    rows = records(sf, "Contact", "Id,Personalization_User_Id__c", where="LastName LIKE 'C%'")
    assert sorted((r["Id"], r["Personalization_User_Id__c"]) for r in rows) == sorted(
        zip(ids, ["u-000001", "u-000002"], strict=True))


def test_bytes_that_are_not_utf8_on_stdin_reject_one_record(sf: Any, tmp_path: Path) -> None:
    """The real command reading a pipe: an invalid byte costs its record, not the run."""
    [contact_id] = seed(sf, "Contact", [{"LastName": "C1", "Email": "user1@example.com"}])
    cfg = config_for(sf, tmp_path, fail_on_rejects=5)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data = b"\n".join([
        json.dumps(SCHEMA).encode(),
        record_line(user(7, displayName="X")).encode().replace(b'"X"', b'"\xff\xfe"'),
        record_line(user(1)).encode(),
    ]) + b"\n"
    answer = subprocess.run(
        [str(Path(sys.executable).parent / "target-salesforce-crm"),
         "--config", str(tmp_path / "config.json")],
        input=data, capture_output=True, timeout=120, check=False,
    )
    assert answer.returncode == 0, answer.stderr.decode(errors="replace")[-2000:]
    [reject] = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open()]
    assert (reject["key"], reject["code"]) == ("u-000007", "INVALID_RECORD")
    assert "displayName holds text that is not valid Unicode" in reject["message"]
    [row] = records(sf, "Contact", "Id,Personalization_User_Id__c")
    assert (row["Id"], row["Personalization_User_Id__c"]) == (contact_id, "u-000001")


def late_mapping(fields: str) -> str:
    return f"""
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    write: {{mode: update}}
    match:
      - {{field: Email, source: emailAddress}}
    fields:
{fields}
"""


def test_text_into_a_number_field_is_refused_before_anything_is_read(
    sf: Any, tmp_path: Path,
) -> None:
    """The stream's SCHEMA says displayName is text: the preflight stops the run with the
    fix, instead of a night of row-by-row rejects."""
    seed(sf, "Contact", [{"LastName": "C1", "Email": "user1@example.com"}])
    sf.clear_ledger()
    cfg = config_for(sf, tmp_path, late_mapping(
        "      Personalization_Engagement_Score__c: {source: displayName}"))
    lines = [json.dumps(SCHEMA), record_line(user(1))]
    with pytest.raises(PreflightError, match=(
            r"Contact.Personalization_Engagement_Score__c is a double field but its source "
            r"displayName is string in stream 'users''s schema: add `convert: \[number\]`")):
        TargetSalesforceCRM(config=cfg).listen(io.StringIO("\n".join(lines) + "\n"))
    assert "bulk" not in kinds(sf)
    assert report_of(cfg)["status"] == "failed"


def test_a_reject_line_never_repeats_a_huge_value(sf: Any, tmp_path: Path) -> None:
    """A 1 MB value refused on every record: each reject line carries its start and length."""
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"user{n}@example.com"}
                         for n in range(1, 4)])
    cfg = config_for(sf, tmp_path, late_mapping("      Title: {source: displayName}"),
                     fail_on_rejects=10)
    huge = "y" * 1_000_000
    lines = [json.dumps(SCHEMA), *(record_line(user(n, displayName=huge)) for n in (1, 2, 3))]
    TargetSalesforceCRM(config=cfg).listen(io.StringIO("\n".join(lines) + "\n"))

    rejects = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == 3
    for line in rejects:
        reject = json.loads(line)
        assert reject["code"] == "PRECHECK_STRING_TOO_LONG"
        assert reject["values"]["Title"].endswith("... (1000000 characters)")
        assert len(line) < 2_000


def test_a_terminated_run_leaves_a_failed_report(sf: Any, tmp_path: Path) -> None:
    """A cancelled `meltano run` sends SIGTERM: the report turns from running to failed."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"status": "succeeded"}')  # the previous run's
    cfg = config_for(sf, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "target-salesforce-crm"),
         "--config", str(tmp_path / "config.json")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write((json.dumps(SCHEMA) + "\n" + record_line(user(1)) + "\n").encode())
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while report_of(cfg)["status"] != "running":
        assert time.monotonic() < deadline
        assert process.poll() is None
        time.sleep(0.1)
    process.terminate()
    code = process.wait(timeout=60)
    assert code == 128 + signal.SIGTERM, process.stderr.read().decode()[-3000:]
    assert report_of(cfg)["status"] == "failed"


def test_a_record_before_its_schema_fails_the_run_with_a_failed_report(
    sf: Any, tmp_path: Path,
) -> None:
    """The tap broke the Singer protocol: the run stops with one line, the report says so."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"status": "succeeded"}')  # the previous run's
    cfg = config_for(sf, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    answer = subprocess.run(
        [str(Path(sys.executable).parent / "target-salesforce-crm"),
         "--config", str(tmp_path / "config.json")],
        input=(record_line(user(1)) + "\n").encode(), capture_output=True, timeout=120,
        check=False,
    )
    assert answer.returncode == 1
    last = answer.stderr.decode().strip().splitlines()[-1]
    assert "A record for stream 'users' was encountered before a corresponding schema" in last
    assert report_of(cfg)["status"] == "failed"
