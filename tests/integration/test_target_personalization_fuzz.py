"""Fuzz: random valid and invalid Singer input never crashes target-personalization, and its
report accounts for every record (records read = the streams' records + unreadable lines;
per object, received = written + segment changes + skipped + unmatched + rejected).

Derandomized, so CI sees the same examples every time; FUZZ_EXAMPLES raises the count.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.target_personalization import config_for
from tap_personalization.target.target import TargetPersonalization

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
TEXT = {"type": ["string", "null"]}
CONTACTS = {"type": "SCHEMA", "stream": "contacts", "key_properties": ["Id"], "schema": {
    "type": "object", "properties": {
        "Id": {"type": "string"}, "Email": TEXT, "Title": TEXT, "Department": TEXT,
        "LeadSource": TEXT, "IsDeleted": {"type": "boolean"},
        "LastModifiedDate": {"type": ["string", "null"], "format": "date-time"}}}}
USERS = [{"id": f"u-{n:06d}", "emailAddress": f"user{n}@example.com", "attributes": {}}
         for n in range(8)]

texts = st.one_of(st.text(max_size=15),
                  st.sampled_from(["cut \ud83d", "\udcff", "y" * 300, "", "Ünïcode"]))
values = st.one_of(st.none(), st.booleans(), st.integers(), texts, st.floats(),
                   st.lists(st.integers(), max_size=2))
contacts = st.builds(
    lambda n, mail, title, deleted, when: {
        "Id": f"003{n:015d}", "Email": mail, "Title": title, "Department": None,
        "LeadSource": None, "IsDeleted": deleted, "LastModifiedDate": when},
    st.integers(0, 20),
    st.one_of(st.none(), st.integers(0, 12).map(lambda n: f"User{n}@Example.com")),
    st.one_of(st.none(), texts), st.booleans(),
    st.one_of(st.none(), st.sampled_from(["2026-01-01T00:00:00Z", "yesterday"])),
)
hostile = st.dictionaries(st.sampled_from(["Id", "Email", "Title", "IsDeleted", "Other"]),
                          values, max_size=5)


def record_line(record: Any) -> str:
    return json.dumps({"type": "RECORD", "stream": "contacts", "record": record})


body_strategy = st.lists(st.one_of(
    contacts.map(record_line), contacts.map(record_line), hostile.map(record_line),
    values.map(record_line),
    st.just(json.dumps({"type": "STATE", "value": {"n": 1}})),
    st.sampled_from(["garbage", "{", '{"type": "NOPE"}', '{"type": "RECORD", "record": {}}']),
), min_size=1, max_size=60)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=body_strategy)
def test_random_input_is_accounted_for(
    personalization_sandbox: Any, tmp_path: Path, body: list[str],
) -> None:
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "users", json=USERS)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    config = config_for(box, tmp_path / "out", delivery="event_api")
    text = "\n".join([json.dumps(CONTACTS), *body]) + "\n"

    with redirect_stdout(io.StringIO()):
        TargetPersonalization(config=config).listen(io.StringIO(text))

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "succeeded"
    streams = report["streams"]
    assert report["records_read"] == sum(s["records"] for s in streams.values()) + report[
        "unreadable_lines"]
    for name, stats in report["objects"].items():
        accounted = (stats["written"] + stats["segment_adds"] + stats["segment_removes"]
                     + sum(stats["skipped"].values()) + sum(stats["unmatched"].values())
                     + sum(stats["rejected"].values()))
        assert accounted == stats["received"], name
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == report["rejected_records"] + report["unmatched_records"]
    titled = [u for u in box.admin("GET", "users") if "crmTitle" in u["attributes"]]
    written = sum(stats["written"] for stats in report["objects"].values())
    assert len(titled) <= written
