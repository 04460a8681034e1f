"""Bulk API 2.0 pieces that need no server: CSV cells, result keys, `sf__Error` parsing,
and the `bulk_api` setting as `--about` and meltano.yml declare it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from target_salesforce_crm.target.bulk2 import (
    Bulk2Client,
    cell,
    key_columns,
    parse_error,
    to_csv,
)
from target_salesforce_crm.target.outcomes import SourceRef
from target_salesforce_crm.target.writer import BulkWriter, WriteItem

ROOT = Path(__file__).resolve().parents[2]


def test_cells_null_booleans_numbers_and_references() -> None:
    columns, cells, body = to_csv([
        {"Id": "003A", "Score__c": 1e-05, "Ok__c": True, "Title": None},
        {"Id": "003B", "Title": "", "Account": {"Ext__c": "A,1"}},
    ])
    assert columns == ["Id", "Score__c", "Ok__c", "Title", "Account.Ext__c"]
    assert cells == [["003A", "0.000010", "true", "#N/A", ""],
                     ["003B", "", "", "#N/A", "A,1"]]
    assert body.decode().splitlines()[2] == '003B,,,#N/A,"A,1"'
    assert cell(0.7) == "0.7"
    assert cell(["a", "b"]) == "a;b"


def test_result_rows_are_keyed_by_id_external_id_or_the_whole_row() -> None:
    assert key_columns("update", None, ["Title", "Id"]) == ("Id",)
    assert key_columns("upsert", "email", ["Email", "Title"]) == ("Email",)
    assert key_columns("insert", None, ["LastName", "Email"]) == ("LastName", "Email")


def test_sf_error_cells() -> None:
    assert parse_error("INVALID_EMAIL_ADDRESS:Email: invalid email address: x:Email --") == {
        "statusCode": "INVALID_EMAIL_ADDRESS", "message": "Email: invalid email address: x",
        "fields": ["Email"]}
    assert parse_error("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--") == {
        "statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id",
        "fields": []}
    assert parse_error("INVALID_FIELD:No such column 'X' on entity 'Account'.") == {
        "statusCode": "INVALID_FIELD", "message": "No such column 'X' on entity 'Account'.",
        "fields": []}


def test_about_and_meltano_yml_offer_both_bulk_apis() -> None:
    script = Path(sys.executable).parent / "target-salesforce-crm"
    about = json.loads(subprocess.run([str(script), "--about", "--format=json"],
                                      capture_output=True, text=True, check=True).stdout)
    setting = about["settings"]["properties"]["bulk_api"]
    assert (setting["default"], setting["enum"]) == ("1.0", ["1.0", "2.0"])
    loaders = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"]
    [target] = [p for p in loaders if p["name"] == "target-salesforce-crm"]
    [declared] = [s for s in target["settings"] if s["name"] == "bulk_api"]
    assert (declared["kind"], declared["value"]) == ("options", "1.0")
    assert [option["value"] for option in declared["options"]] == ["1.0", "2.0"]
    assert declared["description"] == setting["description"]


class _Answer:
    def __init__(self, body: Any) -> None:
        self._body = body
        self.text = body if isinstance(body, str) else json.dumps(body)
        self.encoding: str | None = None

    def json(self) -> Any:
        return self._body


class _FailedPartWay:
    """Salesforce for one update job that `Failed` after processing the first record only
    (as when the daily allowance runs out between its internal batches)."""

    logger = None

    def __init__(self) -> None:
        self.rest_path = "/services/data/v59.0"
        self.jobs = 0
        self.calls: list[str] = []

    def request(self, method: str, path: str, *, kind: str, **_: Any) -> _Answer:
        self.calls.append(f"{method} {path.rsplit('/', 1)[-1] or path.rsplit('/', 2)[-2]}")
        if method == "POST":
            self.jobs += 1
            return _Answer({"id": f"750J{self.jobs}"})
        if method in ("PUT", "PATCH"):
            return _Answer({})
        if path.endswith("successfulResults/"):
            done = "003A" if "/750J1/" in path else "003B"
            return _Answer(f'"sf__Id","sf__Created",Id,Title\n"{done}","false","{done}","x"\n')
        if path.endswith("/750J1"):
            return _Answer({"state": "Failed", "numberRecordsProcessed": 1,
                            "numberRecordsFailed": 0,
                            "errorMessage": "ExceededQuota : the daily allowance is used up"})
        return _Answer({"state": "JobComplete", "numberRecordsProcessed": 1,
                        "numberRecordsFailed": 0})


def test_records_a_failed_job_left_unprocessed_are_sent_again() -> None:
    salesforce = _FailedPartWay()
    outcomes: list[Any] = []
    writer = BulkWriter(Bulk2Client(salesforce), retry_backoff=0, sleep=lambda seconds: None,
                        on_outcomes=lambda _, done: outcomes.extend(done))
    items = [WriteItem([SourceRef("users", f"u{n}", 1, n)], {"Id": crm_id, "Title": "x"},
                       crm_id) for n, crm_id in enumerate(("003A", "003B"))]

    writer.submit("Contact", "update", items)
    writer.settle()

    assert [(o.crm_id, o.status) for o in outcomes] == [("003A", "updated"),
                                                        ("003B", "updated")]
    assert writer.counts["Contact"].retried == 1
    # job 1: create, upload, close, poll, successes; job 2 (003B again): the same
    assert salesforce.calls.count("POST ingest") == 2
    assert salesforce.calls.count("GET successfulResults") == 2
    assert not any("failedResults" in call or "unprocessed" in call for call in salesforce.calls)
