"""Fuzz: random valid and invalid Singer input never crashes target-salesforce-crm, and its
report accounts for every record.

Each example is a stream of SCHEMA, RECORD (good, damaged and hostile), STATE and junk
lines against a freshly seeded sandbox. Whatever comes in, the run finishes, every record
read has exactly one outcome (records read = invalid + unreadable + candidates, and
candidates = updated + created + unchanged + unmatched + ambiguous + rejected), and the
sandbox holds exactly the writes the report claims. Examples are derandomized, so CI sees
the same ones every time; FUZZ_EXAMPLES raises the count for a longer local hunt.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.target_salesforce_crm import config_for, records, report_of, seed
from target_salesforce_crm.target.target import TargetSalesforceCRM

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
MAPPING = """
version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    key: id
    write: {mode: update}
    match:
      - {field: Email, source: emailAddress, normalize: [trim, lowercase]}
    fields:
      Personalization_User_Id__c: {source: id}
      Personalization_Engagement_Score__c: {source: engagementScore, convert: [{round: 4}]}
      Personalization_Last_Activity__c: {source: lastActivity, convert: [iso_datetime]}
      Title: {source: title}
"""
SCHEMA = {"type": "SCHEMA", "stream": "users", "key_properties": ["id"], "schema": {
    "type": "object", "properties": {
        "id": {"type": "string"},
        "emailAddress": {"type": ["string", "null"]},
        "engagementScore": {"type": ["number", "null"]},
        "lastActivity": {"type": ["string", "null"], "format": "date-time"},
        "title": {"type": ["string", "null"]},
    }}}
SEEDED = 12  # contacts user0..user11@example.com exist; other e-mails match nothing

texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["cut \ud83d", "\udcff", "x" * 300, "", "  ", "O'Brien \\ \"q\""]),
)
values = st.one_of(st.none(), st.booleans(), st.integers(), texts,
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.lists(st.integers(), max_size=3), st.dictionaries(texts, st.integers(),
                                                                        max_size=2))
good_users = st.builds(
    lambda n, mail, score, when, title: {
        "id": f"u-{n}", "emailAddress": mail, "engagementScore": score,
        "lastActivity": when, "title": title},
    st.integers(0, 30),
    st.one_of(st.none(), st.integers(0, 20).map(lambda n: f" User{n}@Example.com")),
    st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
    st.one_of(st.none(), st.sampled_from([
        "2026-03-01T12:00:00Z", "yesterday", "9999-12-31T23:30:00-01:00",
        "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z"])),
    st.one_of(st.none(), texts),
)
hostile_users = st.dictionaries(st.sampled_from(
    ["id", "emailAddress", "engagementScore", "lastActivity", "title", "extra"]), values,
    max_size=6)


def record_line(record: Any) -> str:
    return json.dumps({"type": "RECORD", "stream": "users", "record": record})


lines_strategy = st.lists(st.one_of(
    good_users.map(record_line),
    good_users.map(record_line),
    hostile_users.map(record_line),
    values.map(record_line),
    st.just(json.dumps({"type": "STATE", "value": {"n": 1}})),
    st.sampled_from(["not json", "{", "[]", '{"type": 7}', '{"type": "WHAT"}',
                     '{"type": "RECORD", "record": {}}',
                     record_line({"id": "u-deep", "d": json.loads("[" * 70 + "]" * 70)})]),
    st.text(max_size=30).filter(lambda text: "\n" not in text and "\r" not in text),
), min_size=1, max_size=80)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=lines_strategy)
def test_random_input_is_accounted_for_and_written_as_reported(
    sf: Any, tmp_path: Path, body: list[str],
) -> None:
    sf.reset()
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"user{n}@example.com"}
                         for n in range(SEEDED)])
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    (tmp_path / "fingerprints.sqlite").unlink(missing_ok=True)
    cfg = config_for(sf, tmp_path, MAPPING, fail_on_rejects=1_000, batch_size_rows=7,
                     bulk_batch_size=5)
    text = "\n".join([json.dumps(SCHEMA), *body]) + "\n"

    TargetSalesforceCRM(config=cfg).listen(io.StringIO(text))

    report = report_of(cfg)
    assert report["status"] == "succeeded"
    users = report["streams"].get("users", {"records": 0, "invalid": 0})
    assert report["records_read"] == users["records"] + report["unreadable_lines"]
    contact = report["objects"].get("Contact", {"candidates": 0, "updated": 0})
    assert users["records"] == users["invalid"] + contact["candidates"]
    if contact["candidates"]:
        assert contact["candidates"] == sum(contact[name] for name in (
            "updated", "created", "unchanged", "unmatched", "ambiguous", "rejected"))
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    unmatched = (tmp_path / "out" / "unmatched.jsonl").read_text().splitlines()
    assert len(rejects) == report["rejected_records"]
    assert len(unmatched) == contact.get("unmatched", 0)
    written = [row for row in records(sf, "Contact", "Id,Email,Personalization_User_Id__c")
               if row["Personalization_User_Id__c"]]
    # Two records for one contact are one write: each written contact is claimed by at
    # least one updated record, and no more contacts are written than records updated.
    assert len(written) <= contact["updated"]
    assert bool(written) == bool(contact["updated"])
