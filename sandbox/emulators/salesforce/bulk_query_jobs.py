"""Bulk API 1.0 query jobs and their batches in `api.db`, and the thread that runs them.

A query batch is the SOQL statement itself. Adding it takes the snapshot of matching rows
(the cursor, as REST and Bulk 2.0 do); the worker then renders the rows as CSV into
`bulk_query_results`, 1,000 rows per chunk, so a million-row extract never sits in memory
and its result can be fetched again. Salesforce keeps one result per batch unless it is
larger than 1 GB; the sandbox always keeps one, whose id is derived from the batch's.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from emulators import defaults
from emulators.salesforce.apidb import ApiDatabase
from emulators.salesforce.bulk2_query import CsvLayout
from emulators.salesforce.bulk_jobs import new_id, timestamp
from emulators.salesforce.faults import Faults
from emulators.salesforce.store import QueryCursor

OPEN, CLOSED, ABORTED = "Open", "Closed", "Aborted"
QUEUED, IN_PROGRESS, COMPLETED, FAILED, NOT_PROCESSED = (
    "Queued", "InProgress", "Completed", "Failed", "Not Processed")
OPERATIONS = ("query", "queryAll")
CHUNK_ROWS = 1_000
IDLE_POLL_SECONDS = 0.5
DELAY_CHECK_SECONDS = 0.05
# What a batch injected with `fail_batches` reports: Salesforce's message when the results
# could not be retrieved in 30 attempts ("How Bulk Queries Are Processed").
RETRIES_EXHAUSTED = "InternalServerError : Retried more than thirty times"
INTERRUPTED_MESSAGE = ("InternalServerError : the server stopped while the batch was being "
                       "processed; add the query again")


@dataclass(frozen=True)
class QueryJob:
    id: str
    operation: str
    object: str
    state: str
    api_version: float
    pk_chunking: str | None  # the job's Sforce-Enable-PKChunking header, as sent
    created: str
    modified: str


@dataclass(frozen=True)
class QueryBatch:
    seq: int
    id: str
    job_id: str
    state: str
    state_message: str | None
    soql: str
    header: str | None
    records_processed: int
    processing_ms: int
    created: str
    modified: str

    @property
    def result_id(self) -> str:
        """`752` + the batch id's serial: one result per batch, stable for its lifetime."""
        return "752" + self.id[3:]


class QueryJobStore:
    """Jobs, batches and rendered rows; each transition is one statement or transaction."""

    def __init__(self, db: ApiDatabase) -> None:
        self._db = db

    def create_job(self, operation: str, sobject: str, api_version: float,
                   pk_chunking: str | None) -> QueryJob:
        job_id, now = new_id("750"), timestamp()
        self._db.execute(
            "INSERT INTO bulk_query_jobs(id, operation, object, state, api_version,"
            " pk_chunking, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, operation, sobject, OPEN, api_version, pk_chunking, now, now))
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> QueryJob | None:
        row = self._db.one("SELECT * FROM bulk_query_jobs WHERE id = ?", (job_id,))
        return None if row is None else QueryJob(**dict(row))

    def set_job_state(self, job_id: str, state: str) -> None:
        self._db.execute("UPDATE bulk_query_jobs SET state = ?, modified = ? WHERE id = ?",
                         (state, timestamp(), job_id))

    def add_batch(self, job_id: str, soql: str, state: str = QUEUED,
                  message: str | None = None, header: str | None = None) -> QueryBatch:
        batch_id, now = new_id("751"), timestamp()
        self._db.execute(
            "INSERT INTO bulk_query_batches(id, job_id, state, state_message, soql, header,"
            " created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch_id, job_id, state, message, soql, header, now, now))
        batch = self.batch(job_id, batch_id)
        assert batch is not None
        return batch

    def batch(self, job_id: str, batch_id: str) -> QueryBatch | None:
        row = self._db.one("SELECT * FROM bulk_query_batches WHERE job_id = ? AND id = ?",
                           (job_id, batch_id))
        return None if row is None else QueryBatch(**dict(row))

    def batches(self, job_id: str) -> list[QueryBatch]:
        rows = self._db.all("SELECT * FROM bulk_query_batches WHERE job_id = ? ORDER BY seq",
                            (job_id,))
        return [QueryBatch(**dict(row)) for row in rows]

    def counts(self, job_id: str) -> dict[str, int]:
        row = self._db.one(
            "SELECT COUNT(*) AS total,"
            " COALESCE(SUM(state = ?), 0) AS queued, COALESCE(SUM(state = ?), 0) AS running,"
            " COALESCE(SUM(state = ?), 0) AS completed, COALESCE(SUM(state = ?), 0) AS failed,"
            " COALESCE(SUM(records_processed), 0) AS processed"
            " FROM bulk_query_batches WHERE job_id = ?",
            (QUEUED, IN_PROGRESS, COMPLETED, FAILED, job_id))
        assert row is not None
        return dict(row)

    def start(self, seq: int, header: str) -> bool:
        return bool(self._db.execute(
            "UPDATE bulk_query_batches SET state = ?, header = ?, modified = ?"
            " WHERE seq = ? AND state = ?", (IN_PROGRESS, header, timestamp(), seq, QUEUED)))

    def add_chunk(self, seq: int, chunk: int, lines: list[str]) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE bulk_query_batches SET records_processed ="
                         " records_processed + ?, modified = ? WHERE seq = ?",
                         (len(lines), timestamp(), seq))
            conn.execute("INSERT INTO bulk_query_results(batch, chunk, lines)"
                         " VALUES (?, ?, ?)", (seq, chunk, json.dumps(lines)))

    def finish(self, seq: int, state: str, processing_ms: int,
               message: str | None = None) -> None:
        self._db.execute(
            "UPDATE bulk_query_batches SET state = ?, state_message = ?, processing_ms = ?,"
            " modified = ? WHERE seq = ? AND state IN (?, ?)",
            (state, message, processing_ms, timestamp(), seq, QUEUED, IN_PROGRESS))

    def chunk(self, seq: int, number: int) -> list[str] | None:
        row = self._db.one("SELECT lines FROM bulk_query_results WHERE batch = ? AND chunk = ?",
                           (seq, number))
        return None if row is None else list(json.loads(row["lines"]))

    def fail_interrupted(self) -> None:
        """Batches a previous server process left unfinished lost their snapshot."""
        self._db.execute(
            "UPDATE bulk_query_batches SET state = ?, state_message = ?, modified = ?"
            " WHERE state IN (?, ?)", (FAILED, INTERRUPTED_MESSAGE, timestamp(), QUEUED,
                                       IN_PROGRESS))


def job_info(job: QueryJob, counts: dict[str, int]) -> dict[str, Any]:
    """JobInfo as Salesforce documents it (the HTTP layer renders it as JSON or XML)."""
    return {
        "id": job.id, "operation": job.operation, "object": job.object,
        "createdById": defaults.SF_USER_ID, "createdDate": job.created,
        "systemModstamp": job.modified, "state": job.state, "concurrencyMode": "Parallel",
        "contentType": "CSV", "numberBatchesQueued": counts["queued"],
        "numberBatchesInProgress": counts["running"],
        "numberBatchesCompleted": counts["completed"],
        "numberBatchesFailed": counts["failed"], "numberBatchesTotal": counts["total"],
        "numberRecordsProcessed": counts["processed"], "numberRetries": 0,
        "apiVersion": job.api_version, "numberRecordsFailed": 0, "totalProcessingTime": 0,
        "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
    }


def batch_info(batch: QueryBatch) -> dict[str, Any]:
    info: dict[str, Any] = {"id": batch.id, "jobId": batch.job_id, "state": batch.state}
    if batch.state_message:
        info["stateMessage"] = batch.state_message
    info.update(createdDate=batch.created, systemModstamp=batch.modified,
                numberRecordsProcessed=batch.records_processed, numberRecordsFailed=0,
                totalProcessingTime=batch.processing_ms,
                apiActiveProcessingTime=batch.processing_ms, apexProcessingTime=0)
    return info


@dataclass(frozen=True)
class _Pending:
    seq: int
    cursor: QueryCursor
    layout: CsvLayout


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class QueryBatchWorker:
    """One daemon thread rendering batches in the order they were added; the injected
    delay and failures (`batch_delay_seconds`, `fail_batches`) take effect here."""

    def __init__(self, store: QueryJobStore, faults: Faults) -> None:
        self._store = store
        self._faults = faults
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulk-query-worker",
                                        daemon=True)

    def start(self) -> None:
        self._store.fail_interrupted()
        self._thread.start()

    def submit(self, seq: int, cursor: QueryCursor, layout: CsvLayout) -> None:
        self._queue.put(_Pending(seq, cursor, layout))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pending = self._queue.get(timeout=IDLE_POLL_SECONDS)
            except queue.Empty:
                continue
            started = time.monotonic()
            try:
                self._process(pending, started)
            except Exception as exc:  # a sandbox bug must fail the batch, not the thread
                traceback.print_exc(file=sys.stderr)
                self._store.finish(pending.seq, FAILED, _elapsed_ms(started),
                                   f"InternalServerError : {type(exc).__name__}: {exc}")

    def _process(self, pending: _Pending, started: float) -> None:
        if not self._store.start(pending.seq, pending.layout.header_line()):
            return
        deadline = started + self._faults.settings.batch_delay_seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, DELAY_CHECK_SECONDS)):
                return
        if self._faults.take_failed_batch():
            self._store.finish(pending.seq, FAILED, _elapsed_ms(started), RETRIES_EXHAUSTED)
            return
        cursor, number, lines = pending.cursor, 0, []
        while not cursor.done:  # chunks hold exactly CHUNK_ROWS rows, except the last
            lines += pending.layout.lines(cursor.fetch(CHUNK_ROWS - len(lines)))
            if len(lines) == CHUNK_ROWS or (cursor.done and lines):
                self._store.add_chunk(pending.seq, number, lines)
                number, lines = number + 1, []
        self._store.finish(pending.seq, COMPLETED, _elapsed_ms(started))
