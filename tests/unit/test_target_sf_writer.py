"""Run-wide Bulk writer: full batches across drains, merging, deferred outcomes, retries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from target_salesforce_crm.auth import Session
from target_salesforce_crm.errors import TransientError
from target_salesforce_crm.target.changes import fingerprint_fields
from target_salesforce_crm.target.fingerprints import fields_hash
from target_salesforce_crm.target.outcomes import SourceRef
from target_salesforce_crm.target.target import TargetSalesforceCRM
from target_salesforce_crm.target.writer import BulkWriter, WriteItem, WriteOutcome

MAPPING = Path(__file__).resolve().parents[2] / "transforms" / "personalization-to-crm.yml"

Row = dict[str, Any]


@dataclass
class Result:
    batch_id: str
    state: str
    state_message: str | None
    rows: list[Row]


@dataclass
class Clock:
    """Monotonic time the test moves: the writer's sleeps advance it."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeBulk:
    """Bulk 1.0 in memory; `row_outcome(record, attempt)` decides each row's result.

    A batch is unfinished for its first `lag` looks (`check`, or a round of `wait`).
    """

    row_outcome: Callable[[Row, int], Row | None] = lambda record, attempt: None
    batch_state: Callable[[int], tuple[str, str | None]] = lambda n: ("Completed", None)
    add_fails: int = 0
    lag: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[str, list[Row]] = field(default_factory=dict)
    job_of: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    looks: dict[str, int] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    _results: dict[str, Result] = field(default_factory=dict)

    def create_job(self, operation: str, sobject: str, *,
                   external_id_field: str | None = None,
                   concurrency_mode: str = "Parallel") -> str:
        self.calls.append("create")
        self.jobs.append({"operation": operation, "object": sobject,
                          "externalIdFieldName": external_id_field})
        self.modes.append(concurrency_mode)
        return f"750{len(self.jobs):015d}"

    def add_batch(self, job_id: str, records: list[Row]) -> str:
        self.calls.append("add")
        if self.add_fails:
            self.add_fails -= 1
            raise TransientError(503, "HTTP_5XX", "Service Unavailable")
        batch_id = f"751{len(self.batches):015d}"
        self.batches[batch_id] = records
        self.job_of[batch_id] = job_id
        return batch_id

    def close_job(self, job_id: str) -> None:
        self.calls.append("close")
        self.closed.append(job_id)

    def abort_job(self, job_id: str) -> None:
        self.calls.append("abort")
        self.aborted.append(job_id)

    def check(self, job_id: str, batch_ids: list[str]) -> tuple[list[Result], list[str]]:
        self.calls.append("check")
        finished: list[Result] = []
        unfinished: list[str] = []
        for batch_id in batch_ids:
            assert self.job_of[batch_id] == job_id
            self.looks[batch_id] = self.looks.get(batch_id, 0) + 1
            if self.looks[batch_id] <= self.lag:
                unfinished.append(batch_id)
            else:
                finished.append(self._result(batch_id))
        return finished, unfinished

    def wait(self, job_id: str, batch_ids: list[str], *, leave: int = 0) -> Iterator[Result]:
        pending = list(batch_ids)
        while len(pending) > leave:
            finished, pending = self.check(job_id, pending)
            yield from finished

    def _result(self, batch_id: str) -> Result:
        if batch_id in self._results:
            return self._results[batch_id]
        state, message = self.batch_state(list(self.batches).index(batch_id))
        rows: list[Row] = []
        if state == "Completed":
            for record in self.batches[batch_id]:
                identity = str(record.get("Id") or record.get("Ext__c"))
                attempt = self.attempts.get(identity, 0)
                self.attempts[identity] = attempt + 1
                rows.append(self.row_outcome(record, attempt)
                            or {"success": True, "created": "Id" not in record,
                                "id": record.get("Id") or f"003NEW{identity}", "errors": []})
        self._results[batch_id] = Result(batch_id, state, message, rows)
        return self._results[batch_id]


@dataclass
class Answers:
    """What `on_outcomes` received, by object."""

    outcomes: list[WriteOutcome] = field(default_factory=list)

    def __call__(self, sobject: str, outcomes: list[WriteOutcome]) -> None:
        self.outcomes.extend(outcomes)

    def statuses(self) -> dict[str, str]:
        return {s.key: o.status for o in self.outcomes for s in o.item.sources}


def items(count: int, start: int = 0, **values: Any) -> list[WriteItem]:
    return [
        WriteItem([SourceRef("users", f"u-{n}", n)], {"Id": f"003{n:015d}", "Score__c": n,
                                                      **values}, f"003{n:015d}")
        for n in range(start, start + count)
    ]


def writer(bulk: FakeBulk, answers: Answers, clock: Clock | None = None,
           **kwargs: Any) -> BulkWriter:
    clock = clock or Clock()
    return BulkWriter(bulk, on_outcomes=answers, sleep=clock.sleep, clock=clock, **kwargs)


def lock(record: Row) -> Row:
    return {"success": False, "created": False, "id": None, "errors": [
        {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access",
         "fields": []}]}


# -- one job, full batches ------------------------------------------------------------------


def test_drains_share_one_job_and_only_full_batches_leave_before_settling() -> None:
    bulk, answers = FakeBulk(), Answers()
    write = writer(bulk, answers)

    write.submit("Contact", "update", items(15_000))
    assert [len(b) for b in bulk.batches.values()] == [10_000]  # 5,000 wait
    write.submit("Contact", "update", items(7_000, start=15_000))
    assert [len(b) for b in bulk.batches.values()] == [10_000, 10_000]  # 2,000 wait
    assert answers.outcomes == []  # nothing asked yet: sending never waits
    write.close()

    assert [len(b) for b in bulk.batches.values()] == [10_000, 10_000, 2_000]
    assert bulk.jobs == [{"operation": "update", "object": "Contact",
                          "externalIdFieldName": None}]
    assert bulk.closed == ["750000000000000001"]
    assert bulk.calls.count("create") == bulk.calls.count("close") == 1
    sent = [record["Score__c"] for batch in bulk.batches.values() for record in batch]
    assert sent == list(range(22_000))  # input order kept
    assert list(answers.statuses().values()) == ["updated"] * 22_000
    counts = write.counts["Contact"]
    assert (counts.jobs, counts.batches, counts.retried) == (1, 3, 0)


def test_batches_stay_under_the_byte_limit() -> None:
    bulk, answers = FakeBulk(), Answers()
    write = writer(bulk, answers, max_batch_bytes=50_000)

    write.submit("Contact", "update", items(300, Note__c="ë" * 100 + "x" * 300))
    byte_full = len(bulk.batches)
    write.close()

    sizes = [len(json.dumps(b, separators=(",", ":")).encode()) for b in bulk.batches.values()]
    assert byte_full >= 2  # full by bytes: sent without waiting for settle
    assert max(sizes) <= 50_000
    assert max(sizes) > 40_000
    assert sum(len(b) for b in bulk.batches.values()) == 300


def test_a_job_that_reaches_its_batch_limit_is_closed_and_another_opened() -> None:
    bulk, answers = FakeBulk(), Answers()
    write = writer(bulk, answers, batch_size=10, max_batches_per_job=2)

    write.submit("Contact", "update", items(45))
    write.close()

    assert len(bulk.jobs) == 3
    assert bulk.closed == ["750000000000000001", "750000000000000002", "750000000000000003"]
    assert [bulk.job_of[b][-1] for b in bulk.batches] == ["1", "1", "2", "2", "3"]
    assert len(answers.outcomes) == 45


# -- merging ------------------------------------------------------------------------------


def test_the_same_id_from_two_drains_is_one_row_and_both_sources_get_its_outcome() -> None:
    bulk, answers = FakeBulk(), Answers()
    write = writer(bulk, answers)
    first = WriteItem([SourceRef("users", "u-1", 0, 1)], {"Id": "003A", "A__c": 1, "B__c": 1},
                      "003A")
    second = WriteItem([SourceRef("users", "u-2", 5, 2)], {"Id": "003A", "B__c": 2}, "003A")

    write.submit("Contact", "update", [first])
    assert write.is_pending("Contact", "update", "003A")
    write.submit("Contact", "update", [second])
    write.close()

    [batch] = bulk.batches.values()
    assert batch == [{"Id": "003A", "A__c": 1, "B__c": 2}]
    [outcome] = answers.outcomes
    assert outcome.status == "updated"
    assert [(s.key, s.drain) for s in outcome.item.sources] == [("u-1", 1), ("u-2", 2)]
    assert write.counts["Contact"].merged == 1
    assert not write.is_pending("Contact", "update", "003A")


def test_a_record_in_an_unanswered_batch_waits_so_the_later_input_is_written_later() -> None:
    bulk, answers = FakeBulk(lag=1), Answers()
    write = writer(bulk, answers, batch_size=2)

    write.submit("Contact", "update", items(2))  # full: sent, unanswered
    newer = WriteItem([SourceRef("users", "again", 0, 2)], {"Id": f"003{0:015d}", "Score__c": 99},
                      f"003{0:015d}")
    write.submit("Contact", "update", [newer, *items(1, start=2)])

    # 003...0 is in flight: the next batch must not carry it (parallel batches race).
    assert [[r["Score__c"] for r in b] for b in bulk.batches.values()] == [[0, 1]]
    write.close()
    assert [[r["Score__c"] for r in b] for b in bulk.batches.values()] == [[0, 1], [2], [99]]
    assert answers.statuses() == {"u-0": "updated", "u-1": "updated", "u-2": "updated",
                                  "again": "updated"}


def test_upsert_merges_on_the_external_id_and_reports_created() -> None:
    bulk, answers = FakeBulk(), Answers()
    write = writer(bulk, answers)

    write.submit("Contact", "upsert", [
        WriteItem([SourceRef("users", "u-1", 0)], {"Ext__c": "u-1", "LastName": "A"}),
        WriteItem([SourceRef("users", "u-1", 1)], {"Ext__c": "u-1", "LastName": "B"}),
    ], external_id_field="Ext__c")
    write.close()

    assert bulk.jobs[0]["externalIdFieldName"] == "Ext__c"
    assert list(bulk.batches.values()) == [[{"Ext__c": "u-1", "LastName": "B"}]]
    assert [o.status for o in answers.outcomes] == ["created"]


# -- answers without waiting --------------------------------------------------------------


def test_collect_looks_once_per_job_without_waiting_and_not_more_often_than_asked() -> None:
    bulk, answers, clock = FakeBulk(lag=1), Answers(), Clock()
    write = writer(bulk, answers, clock, batch_size=10, check_every=10.0)
    write.submit("Contact", "update", items(20))
    write.submit("Lead", "update", items(10, start=100))

    write.collect()
    assert "check" not in bulk.calls  # too early: Salesforce just got them
    clock.now += 10
    write.collect()
    assert bulk.calls.count("check") == 2  # one look per job, all its batches at once
    assert answers.outcomes == []  # still unfinished: no wait
    write.collect()
    assert bulk.calls.count("check") == 2
    clock.now += 10
    write.collect()
    assert bulk.calls.count("check") == 4
    assert len(answers.outcomes) == 30
    assert clock.sleeps == []


def test_unanswered_batches_are_bounded_by_waiting_for_the_oldest() -> None:
    bulk, answers = FakeBulk(lag=1), Answers()
    write = writer(bulk, answers, batch_size=10, max_unfinished=2)

    write.submit("Contact", "update", items(20))
    assert bulk.calls.count("check") == 0
    write.submit("Contact", "update", items(10, start=20))  # a third batch: wait

    assert bulk.calls.count("check") >= 1
    assert len(answers.outcomes) >= 10
    write.close()
    assert len(answers.outcomes) == 30


# -- failures -------------------------------------------------------------------------------


def test_lock_errors_are_retried_in_one_serial_job_with_backoff() -> None:
    bulk = FakeBulk(row_outcome=lambda r, attempt: lock(r) if attempt < 2 and r["Score__c"] % 20
                    == 0 else None)
    answers, clock = Answers(), Clock()
    write = writer(bulk, answers, clock, retry_backoff=1.5)

    write.submit("Contact", "update", items(200))
    write.settle()

    assert list(answers.statuses().values()).count("updated") == 200
    assert clock.sleeps == [1.5, 3.0]
    assert write.counts["Contact"].retried == 20  # 10 records, twice
    assert write.counts["Contact"].lock_retried == 20
    assert [len(b) for b in bulk.batches.values()] == [200, 10, 10]
    assert bulk.modes == ["Parallel", "Serial"]
    assert [bulk.job_of[b][-1] for b in bulk.batches] == ["1", "2", "2"]
    assert (write.counts["Contact"].jobs, bulk.closed) == (2, [])  # open for later drains


def test_a_retry_merges_with_newer_input_for_the_same_record() -> None:
    bulk = FakeBulk(row_outcome=lambda r, attempt: lock(r) if attempt == 0 else None, lag=1)
    answers = Answers()
    write = writer(bulk, answers, batch_size=1, retry_backoff=0)
    older = WriteItem([SourceRef("users", "old", 0, 1)], {"Id": "003A", "A__c": 1, "B__c": 1},
                      "003A")
    newer = WriteItem([SourceRef("users", "new", 0, 2)], {"Id": "003A", "B__c": 2}, "003A")

    write.submit("Contact", "update", [older])  # sent, unanswered
    write.submit("Contact", "update", [newer])  # waits for it
    write.close()

    assert list(bulk.batches.values()) == [[{"Id": "003A", "A__c": 1, "B__c": 1}],
                                           [{"Id": "003A", "A__c": 1, "B__c": 2}]]
    assert answers.statuses() == {"old": "updated", "new": "updated"}


def test_lock_errors_beyond_max_retries_become_rejects() -> None:
    bulk, answers = FakeBulk(row_outcome=lambda r, attempt: lock(r) if r["Score__c"] == 3
                             else None), Answers()
    write = writer(bulk, answers, max_record_retries=2)

    write.submit("Contact", "update", items(5))
    write.close()

    rejected = [o for o in answers.outcomes if o.status == "rejected"]
    assert len(answers.outcomes) == 5
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

    answers = Answers()
    write = writer(FakeBulk(row_outcome=outcome), answers)
    write.submit("Contact", "update", items(3))
    write.close()

    [rejected] = [o for o in answers.outcomes if o.status == "rejected"]
    assert (rejected.code, rejected.fields, rejected.item.sources[0].key) == (
        "STRING_TOO_LONG", ["Title"], "u-1")


def test_failed_batch_on_lock_is_retried_other_failures_rejected() -> None:
    states = {0: ("Failed", "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record")}
    answers = Answers()
    write = writer(FakeBulk(batch_state=lambda n: states.get(n, ("Completed", None))), answers)
    write.submit("Contact", "update", items(4))
    write.close()
    assert [o.status for o in answers.outcomes] == ["updated"] * 4
    assert write.counts["Contact"].retried == 4

    answers = Answers()
    invalid = ("Failed", "InvalidBatch : Field name not found")
    write = writer(FakeBulk(batch_state=lambda n: invalid), answers)
    write.submit("Contact", "update", items(2))
    write.close()
    assert [(o.status, o.code) for o in answers.outcomes] == [("rejected", "InvalidBatch")] * 2


def test_undeliverable_batch_is_retried() -> None:
    bulk, answers = FakeBulk(add_fails=1), Answers()
    write = writer(bulk, answers)

    write.submit("Contact", "update", items(3))
    write.close()

    assert [o.status for o in answers.outcomes] == ["updated"] * 3
    assert len(bulk.batches) == 1


def test_missing_result_rows_are_not_lost() -> None:
    class ShortResults(FakeBulk):
        def _result(self, batch_id: str) -> Result:
            result = super()._result(batch_id)
            if len(result.rows) > 1:
                result.rows = result.rows[:-1]
            return result

    answers = Answers()
    write = writer(ShortResults(), answers)
    write.submit("Contact", "update", items(3))
    write.close()

    assert sorted(answers.statuses()) == ["u-0", "u-1", "u-2"]
    assert set(answers.statuses().values()) == {"updated"}


def test_an_error_while_waiting_leaves_the_job_to_abort() -> None:
    class Broken(FakeBulk):
        def check(self, job_id: str, batch_ids: list[str]) -> tuple[list[Result], list[str]]:
            raise TransientError(503, "HTTP_5XX", "down")

    bulk, answers = Broken(), Answers()
    write = writer(bulk, answers)
    write.submit("Contact", "update", items(1))
    with pytest.raises(TransientError):
        write.close()
    write.abort()

    assert bulk.aborted == ["750000000000000001"]
    assert bulk.closed == []
    assert answers.outcomes == []


# -- the run's side: outcomes folded per input record as batches come back ------------------


class FakeClient:
    """Just enough of `SalesforceClient` for fingerprints: the org's instance URL."""

    api_calls: dict[str, int] = {}
    api_usage = None

    def session(self) -> Any:
        return Session("token", "https://org.example.test", 0.0)


def test_a_record_is_counted_once_all_its_writes_are_answered_worst_outcome_first(
        tmp_path: Path) -> None:
    target = TargetSalesforceCRM(config={
        "mapping_file": str(MAPPING), "output_dir": str(tmp_path / "out"),
        "fingerprint_db": str(tmp_path / "fp.sqlite"), "client_id": "id",
        "client_secret": "secret"})
    run = target.run
    run._client = FakeClient()
    bad = {"success": False, "created": False, "id": None, "errors": [
        {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "no", "fields": []}]}
    bulk = FakeBulk(row_outcome=lambda record, attempt: bad if record["Id"] == "003B" else None)
    run._writer = BulkWriter(bulk, on_outcomes=run._on_outcomes, sleep=Clock().sleep)
    contact = target.mapping.object("Contact")
    both = SourceRef("users", "u-1", 0, 1)  # ambiguity update_all: two contacts
    same = SourceRef("users", "u-2", 1, 1)
    run.outcomes.open()

    run._write(contact, "update", [
        WriteItem([both], {"Id": "003A", "Personalization_Tier__c": "Gold"}, "003A",
                  created_date="2026-01-01T00:00:00.000+0000"),
        WriteItem([both], {"Id": "003B", "Personalization_Tier__c": "Gold"}, "003B",
                  created_date="2026-01-01T00:00:00.000+0000"),
    ], [WriteItem([same], {"Id": "003C"}, "003C")])

    stats = run.report.object("Contact")
    assert (stats.unchanged, stats.updated, stats.rejected_total) == (1, 0, 0)  # u-1 is open
    run.settle()

    assert (stats.unchanged, stats.updated, dict(stats.rejected)) == (
        1, 0, {"FIELD_CUSTOM_VALIDATION_EXCEPTION": 1})
    run.outcomes.close()
    [reject] = [json.loads(line) for line in run.outcomes.rejects_path.read_text().splitlines()]
    assert (reject["key"], reject["crm_id"], reject["stage"]) == ("u-1", "003B", "salesforce")
    stored = run.fingerprints.lookup("https://org.example.test", "Contact",
                                     fields_hash(fingerprint_fields(contact)),
                                     ["003A", "003B"])
    assert list(stored) == ["003A"]  # only what a batch result confirmed written


def test_a_retry_that_arrives_while_the_queue_is_being_sent_is_not_lost() -> None:
    bulk = FakeBulk(row_outcome=lambda r, attempt: lock(r) if r["Id"] == "003X"
                    and attempt == 0 else None)
    answers = Answers()
    write = writer(bulk, answers, batch_size=1, max_unfinished=1, retry_backoff=0)
    first = WriteItem([SourceRef("users", "x-1", 0, 1)], {"Id": "003X", "A__c": 1}, "003X")
    others = [WriteItem([SourceRef("users", key, n, 2)], {"Id": f"003{key}"}, f"003{key}")
              for n, key in enumerate(["Y", "Z"])]
    later = WriteItem([SourceRef("users", "x-2", 2, 2)], {"Id": "003X", "B__c": 2}, "003X")

    write.submit("Contact", "update", [first])
    # Sending 003Y makes room by waiting for 003X's batch, whose lock error puts 003X back
    # in the queue while `later` (the same record) is still to be sent.
    write.submit("Contact", "update", [*others, later])
    write.close()

    assert answers.statuses() == {"x-1": "updated", "Y": "updated", "Z": "updated",
                                  "x-2": "updated"}
    assert [r for b in bulk.batches.values() for r in b][-1] == {"Id": "003X", "A__c": 1,
                                                                 "B__c": 2}
