"""Bulk write loop: batching, merging, per-row result check, transient retries, rejects."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from target_salesforce_crm.errors import TransientError
from target_salesforce_crm.outcomes import SourceRef
from target_salesforce_crm.writer import BulkWriter, WriteItem

Row = dict[str, Any]


@dataclass
class Result:
    batch_id: str
    state: str
    state_message: str | None
    rows: list[Row]


@dataclass
class FakeBulk:
    """Bulk 1.0 in memory; `row_outcome(record, attempt)` decides each row's result."""

    row_outcome: Callable[[Row, int], Row | None] = lambda record, attempt: None
    batch_state: Callable[[int], tuple[str, str | None]] = lambda n: ("Completed", None)
    add_fails: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[str, list[Row]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)

    def create_job(self, operation: str, sobject: str, *,
                   external_id_field: str | None = None) -> str:
        self.jobs.append({"operation": operation, "object": sobject,
                          "externalIdFieldName": external_id_field})
        return f"750{len(self.jobs):015d}"

    def add_batch(self, job_id: str, records: list[Row]) -> str:
        if self.add_fails:
            self.add_fails -= 1
            raise TransientError(503, "HTTP_5XX", "Service Unavailable")
        batch_id = f"751{len(self.batches):015d}"
        self.batches[batch_id] = records
        return batch_id

    def close_job(self, job_id: str) -> None:
        self.closed.append(job_id)

    def abort_job(self, job_id: str) -> None:
        self.aborted.append(job_id)

    def wait(self, job_id: str, batch_ids: list[str]) -> Iterator[Result]:
        for batch_id in batch_ids:
            number = list(self.batches).index(batch_id)
            state, message = self.batch_state(number)
            if state != "Completed":
                yield Result(batch_id, state, message, [])
                continue
            rows = []
            for record in self.batches[batch_id]:
                identity = str(record.get("Id") or record.get("Ext__c"))
                attempt = self.attempts.get(identity, 0)
                self.attempts[identity] = attempt + 1
                rows.append(self.row_outcome(record, attempt)
                            or {"success": True, "created": "Id" not in record,
                                "id": record.get("Id") or f"003NEW{identity}", "errors": []})
            yield Result(batch_id, "Completed", None, rows)


def items(count: int, **values: Any) -> list[WriteItem]:
    return [
        WriteItem([SourceRef("users", f"u-{n}", n)], {"Id": f"003{n:015d}", "Score__c": n,
                                                      **values}, f"003{n:015d}")
        for n in range(count)
    ]


def writer(bulk: FakeBulk, sleeps: list[float] | None = None, **kwargs: Any) -> BulkWriter:
    pauses = sleeps if sleeps is not None else []
    return BulkWriter(bulk, sleep=pauses.append, **kwargs)


def lock(record: Row) -> Row:
    return {"success": False, "created": False, "id": None, "errors": [
        {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access",
         "fields": []}]}


def test_fifteen_thousand_updates_are_one_job_of_two_batches() -> None:
    bulk = FakeBulk()

    summary = writer(bulk).write("Contact", "update", items(15_000))

    assert [len(b) for b in bulk.batches.values()] == [10_000, 5_000]
    assert bulk.jobs == [{"operation": "update", "object": "Contact",
                          "externalIdFieldName": None}]
    assert bulk.closed == ["750000000000000001"]
    assert (summary.jobs, summary.batches) == (1, 2)
    assert [o.status for o in summary.outcomes].count("updated") == 15_000


def test_batches_stay_under_the_byte_limit() -> None:
    bulk = FakeBulk()

    writer(bulk, max_batch_bytes=50_000).write("Contact", "update",
                                               items(300, Note__c="ë" * 100 + "x" * 300))

    sizes = [len(json.dumps(b, separators=(",", ":")).encode()) for b in bulk.batches.values()]
    assert len(sizes) > 2
    assert max(sizes) <= 50_000
    assert max(sizes) > 40_000
    assert sum(len(b) for b in bulk.batches.values()) == 300


def test_same_id_twice_is_merged_and_both_sources_get_the_outcome() -> None:
    bulk = FakeBulk()
    first = WriteItem([SourceRef("users", "u-1", 0)], {"Id": "003A", "A__c": 1, "B__c": 1}, "003A")
    second = WriteItem([SourceRef("users", "u-2", 1)], {"Id": "003A", "B__c": 2}, "003A")

    summary = writer(bulk).write("Contact", "update", [first, second])

    [batch] = bulk.batches.values()
    assert batch == [{"Id": "003A", "A__c": 1, "B__c": 2}]
    [outcome] = summary.outcomes
    assert outcome.status == "updated"
    assert [s.key for s in outcome.item.sources] == ["u-1", "u-2"]
    assert summary.merged == 1


def test_lock_errors_are_retried_in_a_later_batch_with_backoff() -> None:
    bulk = FakeBulk(row_outcome=lambda r, attempt: lock(r) if attempt < 2 and r["Score__c"] % 20
                    == 0 else None)
    sleeps: list[float] = []

    summary = writer(bulk, sleeps, retry_backoff=1.5).write("Contact", "update", items(200))

    assert [o.status for o in summary.outcomes].count("updated") == 200
    assert sleeps == [1.5, 3.0]
    assert summary.retried == 20  # 10 records, twice
    assert [len(b) for b in bulk.batches.values()] == [200, 10, 10]
    assert len(bulk.jobs) == 1


def test_lock_errors_beyond_max_retries_become_rejects() -> None:
    bulk = FakeBulk(row_outcome=lambda r, attempt: lock(r) if r["Score__c"] == 3 else None)

    summary = writer(bulk, max_record_retries=2).write("Contact", "update", items(5))

    rejected = [o for o in summary.outcomes if o.status == "rejected"]
    assert len(summary.outcomes) == 5
    assert [(o.crm_id, o.code) for o in rejected] == [(f"003{3:015d}", "UNABLE_TO_LOCK_ROW")]
    assert "gave up after 2 retries" in rejected[0].message
    assert len(bulk.batches) == 3


def test_permanent_row_errors_are_rejected_with_code_message_and_fields() -> None:
    def outcome(record: Row, attempt: int) -> Row | None:
        if record["Score__c"] == 1:
            return {"success": False, "created": False, "id": None, "errors": [
                {"statusCode": "STRING_TOO_LONG", "message": "Title: data value too large",
                 "fields": ["Title"]}]}
        return None

    summary = writer(FakeBulk(row_outcome=outcome)).write("Contact", "update", items(3))

    [rejected] = [o for o in summary.outcomes if o.status == "rejected"]
    assert (rejected.code, rejected.fields, rejected.item.sources[0].key) == (
        "STRING_TOO_LONG", ["Title"], "u-1")


def test_failed_batch_on_lock_is_retried_other_failures_rejected() -> None:
    states = {0: ("Failed", "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record")}
    bulk = FakeBulk(batch_state=lambda n: states.get(n, ("Completed", None)))

    summary = writer(bulk).write("Contact", "update", items(4))
    assert [o.status for o in summary.outcomes] == ["updated"] * 4
    assert summary.retried == 4

    bulk = FakeBulk(batch_state=lambda n: ("Failed", "InvalidBatch : Field name not found"))
    summary = writer(bulk).write("Contact", "update", items(2))
    assert [(o.status, o.code) for o in summary.outcomes] == [("rejected", "InvalidBatch")] * 2


def test_undeliverable_batch_is_retried() -> None:
    bulk = FakeBulk(add_fails=1)

    summary = writer(bulk).write("Contact", "update", items(3))

    assert [o.status for o in summary.outcomes] == ["updated"] * 3
    assert len(bulk.batches) == 1


def test_missing_result_rows_are_not_lost() -> None:
    class ShortResults(FakeBulk):
        def wait(self, job_id: str, batch_ids: list[str]) -> Iterator[Result]:
            for result in super().wait(job_id, batch_ids):
                if len(result.rows) > 1:
                    result.rows = result.rows[:-1]
                yield result

    summary = writer(ShortResults()).write("Contact", "update", items(3))

    assert sorted(o.item.sources[0].key for o in summary.outcomes) == ["u-0", "u-1", "u-2"]
    assert all(o.status == "updated" for o in summary.outcomes)


def test_upsert_merges_on_the_external_id_and_reports_created() -> None:
    bulk = FakeBulk()
    new = [
        WriteItem([SourceRef("users", "u-1", 0)], {"Ext__c": "u-1", "LastName": "A"}),
        WriteItem([SourceRef("users", "u-1", 1)], {"Ext__c": "u-1", "LastName": "B"}),
    ]

    summary = writer(bulk).write("Contact", "upsert", new, external_id_field="Ext__c")

    assert bulk.jobs[0]["externalIdFieldName"] == "Ext__c"
    assert list(bulk.batches.values()) == [[{"Ext__c": "u-1", "LastName": "B"}]]
    assert [o.status for o in summary.outcomes] == ["created"]


def test_an_error_while_waiting_aborts_the_job() -> None:
    class Broken(FakeBulk):
        def wait(self, job_id: str, batch_ids: list[str]) -> Iterator[Result]:
            raise TransientError(503, "HTTP_5XX", "down")

    bulk = Broken()
    with pytest.raises(TransientError):
        writer(bulk).write("Contact", "update", items(1))
    assert bulk.aborted == ["750000000000000001"]
    assert bulk.closed == []
