"""Fingerprint store, dry-run writer, change sampling and the CLI's `--test`, without a server."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from target_salesforce_crm.target.changes import field_changes, same_value
from target_salesforce_crm.target.fingerprints import (
    FingerprintStore,
    FingerprintStoreError,
    fields_hash,
    values_hash,
)
from target_salesforce_crm.target.outcomes import SourceRef
from target_salesforce_crm.target.report import ObjectStats, RunReport
from target_salesforce_crm.target.target import TargetSalesforceCRM
from target_salesforce_crm.target.writer import DryRunWriter, WriteItem, WriteOutcome

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "transforms" / "personalization-to-crm.yml"
ORG = "https://acme.my.salesforce.com"
FIELDS = ["Personalization_Engagement_Score__c", "Personalization_Tier__c"]
CREATED = "2026-01-01T00:00:00.000+0000"


def test_fingerprints_round_trip_and_survive_a_move(tmp_path: Path) -> None:
    store = FingerprintStore(tmp_path / "a" / "fp.sqlite")
    field_set = fields_hash(FIELDS)
    payload = {"Id": "003A", "Personalization_Engagement_Score__c": 0.5,
               "Personalization_Tier__c": "Gold"}
    ids = [f"003{n:015d}" for n in range(2500)]  # more than one IN chunk

    assert store.record(ORG, "Contact", field_set,
                        [(i, values_hash(payload, FIELDS, CREATED)) for i in ids]) == 2500
    store.close()
    moved = tmp_path / "elsewhere" / "fp.sqlite"
    moved.parent.mkdir()
    shutil.move(tmp_path / "a" / "fp.sqlite", moved)  # CI restores the cache anywhere

    found = FingerprintStore(moved).lookup(ORG, "Contact", field_set, [*ids, "003missing"])

    assert len(found) == 2500
    assert set(found.values()) == {values_hash(payload, FIELDS, CREATED)}
    assert FingerprintStore(moved).lookup("https://other.org", "Contact", field_set, ids) == {}
    assert FingerprintStore(moved).lookup(ORG, "Contact", fields_hash(FIELDS[:1]), ids) == {}


def test_value_hash_tells_apart_what_a_write_would_change() -> None:
    base = {"Personalization_Engagement_Score__c": 0.5, "Personalization_Tier__c": "Gold"}
    same = values_hash(base, FIELDS, CREATED)

    assert values_hash({"Id": "x", **base}, FIELDS, CREATED) == same  # the Id is not a value
    assert values_hash(dict(reversed(base.items())), FIELDS, CREATED) == same
    assert values_hash({**base, "Personalization_Tier__c": None}, FIELDS, CREATED) != same
    assert values_hash({"Personalization_Engagement_Score__c": 0.5}, FIELDS, CREATED) != same
    assert values_hash(base, FIELDS, "2026-02-01T00:00:00.000+0000") != same
    assert fields_hash(["B", "a"]) == fields_hash(["A", "b"])


def test_a_readonly_store_creates_nothing_and_records_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "fp.sqlite"
    store = FingerprintStore(path, readonly=True)

    assert store.lookup(ORG, "Contact", fields_hash(FIELDS), ["003A"]) == {}
    assert store.record(ORG, "Contact", fields_hash(FIELDS), [("003A", "h")]) == 0
    assert not path.parent.exists()


def test_a_damaged_store_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "fp.sqlite"
    path.write_text("not a database")

    with pytest.raises(FingerprintStoreError, match=r"^fingerprint_db .*fp\.sqlite"):
        FingerprintStore(path).lookup(ORG, "Contact", fields_hash(FIELDS), ["003A"])


def test_the_store_table_is_keyed_by_org_object_id_and_field_set(tmp_path: Path) -> None:
    store = FingerprintStore(tmp_path / "fp.sqlite")
    store.record(ORG, "Contact", "f1", [("003A", "h1")])
    store.record(ORG, "Contact", "f1", [("003A", "h2")])  # a later write replaces
    store.record(ORG, "Contact", "f2", [("003A", "h3")])
    store.close()

    rows = sqlite3.connect(tmp_path / "fp.sqlite").execute(
        "SELECT fields_hash, values_hash FROM fingerprints ORDER BY fields_hash").fetchall()
    assert rows == [("f1", "h2"), ("f2", "h3")]


def test_dry_run_writer_merges_like_the_bulk_writer_and_makes_no_job() -> None:
    first, second = SourceRef("users", "u-1", 0), SourceRef("users", "u-2", 1)
    items = [WriteItem([first], {"Id": "003A", "Title": "a"}, "003A"),
             WriteItem([second], {"Id": "003A", "Department": "b"}, "003A")]
    answered: list[WriteOutcome] = []
    writer = DryRunWriter(on_outcomes=lambda sobject, outcomes: answered.extend(outcomes))

    writer.submit("Contact", "update", items)

    counts = writer.counts["Contact"]
    assert (counts.jobs, counts.batches, counts.merged) == (0, 0, 1)
    [outcome] = answered
    assert outcome.status == "updated"
    assert outcome.item.sources == [first, second]
    assert outcome.item.payload == {"Id": "003A", "Title": "a", "Department": "b"}
    writer.submit("Contact", "upsert", [WriteItem([first], {"Ext__c": "u-1", "LastName": "x"})],
                  external_id_field="Ext__c")
    writer.settle()
    writer.close()
    assert [o.status for o in answered] == ["updated", "created"]
    assert not writer.is_pending("Contact", "update", "003A")


def test_changes_ignore_spelling_differences_of_equal_values() -> None:
    assert same_value(12.0, 12)
    assert same_value("2026-03-01T12:00:00.000+0000", "2026-03-01T12:00:00.000Z")
    assert same_value(None, "")
    assert not same_value("Gold", "Silver")
    assert not same_value(None, 0.0)
    current = {"Id": "003A", "personalization_tier__c": "Gold", "Title": "CEO"}
    assert field_changes(current, {"Id": "003A", "Personalization_Tier__c": "Silver",
                                   "Title": "CEO"}) == {
        "Personalization_Tier__c": {"old": "Gold", "new": "Silver"}}


def test_unchanged_is_part_of_the_outcome_sum_and_the_report() -> None:
    stats = ObjectStats(candidates=10, matched=8, unmatched=2, updated=3, unchanged=5)
    assert stats.balanced
    report = RunReport(dry_run=True)
    report.objects["Contact"] = stats
    stats.changes_sample.append({"key": "u-1", "crm_id": "003A", "changes": {
        "Title": {"old": None, "new": "CEO"}}})

    data = report.as_json()
    markdown = report.to_markdown()

    assert data["dry_run"] is True
    assert data["objects"]["Contact"]["unchanged"] == 5
    assert "| Contact | 10 | 8 | 2 | 0 | 3 | 0 | 5 | 0 | 0 |" in markdown
    assert "- u-1 (003A): Title None → 'CEO'" in markdown
    assert markdown.startswith("## target-salesforce-crm dry run")


def test_new_settings_defaults(tmp_path: Path) -> None:
    target = TargetSalesforceCRM(config={
        "mapping_file": str(MAPPING), "output_dir": str(tmp_path / "out"),
        "client_id": "id", "client_secret": "secret"})

    assert target.setting("dry_run") is False
    assert target.setting("full_refresh") is False
    assert target.setting("fingerprint_db") == ".cache/fingerprints/target-salesforce-crm.sqlite"
    assert not target.run.fingerprints.readonly


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c",
         "from target_salesforce_crm.target.target import TargetSalesforceCRM; "
         "TargetSalesforceCRM.cli()", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd, stdin=subprocess.DEVNULL,
    )


def test_cli_keeps_about_and_help_and_adds_test(tmp_path: Path) -> None:
    about = cli("--about", "--format", "json", cwd=tmp_path)
    helped = cli("--help", cwd=tmp_path)

    assert about.returncode == 0
    settings = json.loads(about.stdout)["settings"]["properties"]
    assert {"dry_run", "full_refresh", "fingerprint_db"} <= set(settings)
    assert "--test" in helped.stdout
    assert "--input" in helped.stdout


def test_cli_test_with_a_bad_mapping_fails_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mapping_file": str(tmp_path / "nope.yml"),
                                  "client_id": "id", "client_secret": "secret"}))

    done = cli("--config", str(config), "--test", cwd=tmp_path)

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "mapping_file:" in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".cache").exists()
