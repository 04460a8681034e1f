"""Target start-up, settings, outcome files and the report, without a Salesforce server."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError
from target_salesforce_crm.target.outcomes import OutcomeFiles, Reject, SourceRef
from target_salesforce_crm.target.report import RunReport, reject_allowance
from target_salesforce_crm.target.sinks import IgnoredSink, MappedSink
from target_salesforce_crm.target.target import TargetConfigError, TargetSalesforceCRM
from target_salesforce_crm.target.validation import RecordingValidator, compiled_check, plain_record

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "transforms" / "personalization-to-crm.yml"


def settings(tmp_path: Path, **overrides: object) -> dict[str, object]:
    return {"mapping_file": str(MAPPING), "output_dir": str(tmp_path / "out"),
            "client_id": "id", "client_secret": "secret", **overrides}


def test_settings_have_documented_defaults(tmp_path: Path) -> None:
    target = TargetSalesforceCRM(config=settings(tmp_path))

    assert {name: target.config[name] for name in (
        "lookup_batch_size", "bulk_batch_size", "max_api_share", "fail_on_rejects",
        "max_record_retries", "batch_size_rows", "api_version")} == {
        "lookup_batch_size": 1000, "bulk_batch_size": 10_000, "max_api_share": 0.25,
        "fail_on_rejects": 0.01, "max_record_retries": 3, "batch_size_rows": 10_000,
        "api_version": "59.0"}
    schema = TargetSalesforceCRM.config_jsonschema["properties"]
    assert schema["client_secret"]["secret"] is True
    assert "secret" not in schema["mapping_file"]
    assert target.max_parallelism == 1


def test_streams_route_to_mapped_or_ignored_sinks(tmp_path: Path) -> None:
    target = TargetSalesforceCRM(config=settings(tmp_path))

    assert target.get_sink_class("users") is MappedSink
    assert target.get_sink_class("accounts") is MappedSink
    assert target.get_sink_class("orders") is IgnoredSink


def test_limits_of_the_batch_sizes_are_enforced(tmp_path: Path) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TargetSalesforceCRM(config=settings(tmp_path, lookup_batch_size=5000,
                                            bulk_batch_size=20_000))
    assert any("lookup_batch_size" in e for e in caught.value.errors)
    assert any("bulk_batch_size" in e for e in caught.value.errors)


def test_serial_jobs_with_bulk_2_are_refused_at_start_up(tmp_path: Path) -> None:
    """Bulk API 2.0 ingest jobs have no serial mode: the combination would silently not be."""
    with pytest.raises(TargetConfigError, match=r"^concurrency_mode: Serial needs bulk_api 1.0"):
        TargetSalesforceCRM(config=settings(tmp_path, concurrency_mode="Serial", bulk_api="2.0"))


def test_missing_mapping_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(TargetConfigError, match=r"^mapping_file: .*nope\.yml does not exist"):
        TargetSalesforceCRM(config=settings(tmp_path, mapping_file=str(tmp_path / "nope.yml")))


def test_bad_mapping_lists_every_problem_with_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\ndirection: personalization-to-crm\nobjects:\n"
                   "  Contact:\n    stream: users\n    match: []\n    fields: {}\n")

    with pytest.raises(TargetConfigError) as caught:
        TargetSalesforceCRM(config=settings(tmp_path, mapping_file=str(bad)))

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"mapping_file {bad} is invalid: {bad}:")
    assert f"; {bad}:6:12: objects.Contact.match must not be empty" in message
    assert f"; {bad}:7:13: objects.Contact.fields must not be empty" in message


def test_cli_prints_one_line_for_a_bad_mapping(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(settings(tmp_path, mapping_file=str(tmp_path / "x.yml"),
                                          client_secret="do-not-print-me")))

    done = subprocess.run(
        [sys.executable, "-c", "from target_salesforce_crm.target.target import "
         "TargetSalesforceCRM; TargetSalesforceCRM.cli()", "--config", str(config)],
        input="", capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "mapping_file:" in errors[0]
    assert "Traceback" not in done.stderr
    assert "do-not-print-me" not in done.stderr + done.stdout


def test_plain_record_undoes_sdk_parsing() -> None:
    record = {"score": decimal.Decimal("0.25"), "visits": decimal.Decimal("12"),
              "seen": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
              "nested": {"values": [decimal.Decimal("1.5"), "x"]}}

    assert plain_record(record) == {"score": 0.25, "visits": 12,
                                    "seen": "2026-01-02T03:04:05+00:00",
                                    "nested": {"values": [1.5, "x"]}}


def test_outcome_files_are_replaced_per_run(tmp_path: Path) -> None:
    first = OutcomeFiles(tmp_path)
    first.reject(Reject(SourceRef("users", "u-1", 0), "Contact", "X", "m", "precheck",
                        fields=["Title"], values={"Title": "t"}))
    first.unmatched(SourceRef("users", "u-2", 1), ["Contact", "Lead"], {"Email": "a@b.c"})
    first.close()
    assert json.loads(first.rejects_path.read_text()) == {
        "stream": "users", "key": "u-1", "object": "Contact", "crm_id": None,
        "stage": "precheck", "code": "X", "message": "m", "fields": ["Title"],
        "values": {"Title": "t"}}
    assert json.loads(first.unmatched_path.read_text())["objects"] == ["Contact", "Lead"]

    second = OutcomeFiles(tmp_path)
    second.open()
    second.close()
    assert first.rejects_path.read_text() == ""
    assert first.unmatched_path.read_text() == ""


def test_report_json_markdown_and_step_summary(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = RunReport()
    report.stream("users").records = 10
    report.stream("orders").records = 3
    report.stream("orders").ignored = True
    contact = report.object("Contact")
    contact.candidates, contact.matched, contact.updated, contact.unmatched = 10, 7, 6, 3
    contact.rejected["UNABLE_TO_LOCK_ROW"] = 1
    report.api_calls.update({"query": 1, "bulk": 5, "auth": 1})
    report.status = "succeeded"

    paths = report.write(tmp_path / "out")

    data = json.loads(paths["json"].read_text())
    assert data["objects"]["Contact"]["rejected_by_code"] == {"UNABLE_TO_LOCK_ROW": 1}
    assert data["api_calls_total"] == 7
    assert (data["input_records"], data["ignored_records"]) == (10, 3)
    assert contact.balanced
    markdown = paths["markdown"].read_text()
    assert "| Contact | 10 | 7 | 3 | 0 | 6 | 0 | 0 | 1 | 0 |" in markdown
    assert "`UNABLE_TO_LOCK_ROW` 1" in markdown
    assert summary.read_text() == "earlier step\n" + markdown
    assert report.log_line().startswith('run summary {"status":"succeeded"')


def test_reject_allowance_share_or_count() -> None:
    assert reject_allowance(0.01, 25_000) == 250
    assert reject_allowance(0, 25_000) == 0
    assert reject_allowance(5, 25_000) == 5


RECORD_SCHEMA = {
    "type": "object", "required": ["id"],
    "properties": {"id": {"type": "string"}, "score": {"type": ["number", "null"]},
                   "plan": {"type": "string", "default": "bronze"},
                   "seen": {"type": ["string", "null"], "format": "date-time"}},
}


def test_validation_lets_valid_records_through_fast_and_keeps_jsonschema_reasons(
        monkeypatch: pytest.MonkeyPatch) -> None:
    validator = RecordingValidator(RECORD_SCHEMA)
    slow: list[dict[str, object]] = []

    class Spy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def validate(self, record: dict[str, object]) -> None:
            slow.append(record)
            self.inner.validate(record)

    monkeypatch.setattr(validator, "validator", Spy(validator.validator))
    valid = {"id": "u-1", "score": decimal.Decimal("0.5"), "seen": "not a date"}

    validator.validate(valid)
    assert validator.take_problem() is None
    assert slow == []  # the compiled check decided alone
    assert "plan" not in valid  # a schema default never lands in the record
    validator.validate({"id": "u-2", "score": "high"})
    assert validator.take_problem() == (
        "it does not match the stream's schema ('high' is not of type 'number', 'null')")
    validator.validate({"score": 1})
    assert validator.take_problem() == (
        "it does not match the stream's schema ('id' is a required property)")


def test_schemas_the_compiled_check_does_not_fully_know_are_left_to_jsonschema() -> None:
    with_ref = {"type": "object", "$defs": {"name": {"type": "string"}},
                "properties": {"name": {"$ref": "#/$defs/name"}}}
    assert compiled_check(with_ref) is None
    assert compiled_check({"type": "array", "prefixItems": [{"type": "string"}]}) is None
    validator = RecordingValidator(with_ref)
    validator.validate({"name": 5})
    assert validator.take_problem() == (
        "it does not match the stream's schema (5 is not of type 'string')")
    assert RecordingValidator(RECORD_SCHEMA, validate_formats=True)._passes is None
