"""Bulk API 1.0 jobs, batches and results, persisted in SQLite.

Batch payloads and per-record results live on disk, not in memory, so a million-record
load does not grow the server; results are written per 200-record chunk and streamed back
chunk by chunk.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emulators import defaults
from emulators.salesforce.apidb import ApiDatabase
from emulators.salesforce.ids import BASE62, POD, suffix

OPEN, CLOSED, ABORTED = "Open", "Closed", "Aborted"
QUEUED, IN_PROGRESS, COMPLETED, FAILED, NOT_PROCESSED = (
    "Queued", "InProgress", "Completed", "Failed", "NotProcessed")


def new_id(prefix: str) -> str:
    """An 18-character Salesforce id: prefix, pod, random serial, case-safe suffix.

    Random rather than counted, so ids stay unique across server restarts without a
    sequence table.
    """
    base = prefix + POD + "".join(secrets.choice(BASE62) for _ in range(10))
    return base + suffix(base)


def timestamp() -> str:
    """Bulk 1.0 JSON date format, e.g. 2024-05-01T10:00:00.000+0000."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass(frozen=True)
class ClaimedBatch:
    id: str
    job_id: str
    operation: str
    sobject: str
    external_id_field: str | None
    payload: str


class BulkJobs:
    """The job/batch state machine's storage; transitions are single transactions."""

    def __init__(self, db: ApiDatabase) -> None:
        self._db = db

    def create_job(self, operation: str, sobject: str, external_id_field: str | None,
                   concurrency_mode: str, api_version: float) -> dict[str, Any]:
        job_id, now = new_id("750"), timestamp()
        self._db.execute(
            "INSERT INTO jobs(id, operation, object, external_id_field, concurrency_mode,"
            " content_type, state, api_version, created, modified)"
            " VALUES (?, ?, ?, ?, ?, 'JSON', ?, ?, ?, ?)",
            (job_id, operation, sobject, external_id_field, concurrency_mode, OPEN,
             api_version, now, now),
        )
        info = self.job_info(job_id)
        assert info is not None
        return info

    def summary(self) -> dict[str, Any]:
        """Ingest jobs by state and the rows their batches processed: what a test of
        "nothing written twice, no job left open" reads (admin status)."""
        jobs = {str(row["state"]): int(row["n"]) for row in self._db.all(
            "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")}
        batches = self._db.one(
            "SELECT COUNT(*) AS n, COALESCE(SUM(records_processed), 0) AS processed "
            "FROM batches")
        assert batches is not None
        return {"jobs": jobs, "batches": int(batches["n"]),
                "records_processed": int(batches["processed"])}

    def listed(self) -> list[dict[str, Any]]:
        """Every ingest job in "Get All Jobs" form (`jobType: Classic`), oldest first."""
        return [{
            "id": row["id"], "operation": row["operation"], "object": row["object"],
            "createdById": defaults.SF_USER_ID, "createdDate": row["created"],
            "systemModstamp": row["modified"], "state": row["state"],
            "concurrencyMode": row["concurrency_mode"], "contentType": row["content_type"],
            "apiVersion": row["api_version"], "jobType": "Classic", "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        } for row in self._db.all("SELECT * FROM jobs ORDER BY created, rowid")]

    def job_info(self, job_id: str) -> dict[str, Any] | None:
        job = self._db.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if job is None:
            return None
        counts = self._db.one(
            "SELECT COUNT(*) AS total,"
            " COALESCE(SUM(state = 'Queued'), 0) AS queued,"
            " COALESCE(SUM(state = 'InProgress'), 0) AS in_progress,"
            " COALESCE(SUM(state = 'Completed'), 0) AS completed,"
            " COALESCE(SUM(state = 'Failed'), 0) AS failed,"
            " COALESCE(SUM(records_processed), 0) AS processed,"
            " COALESCE(SUM(records_failed), 0) AS records_failed"
            " FROM batches WHERE job_id = ?", (job_id,))
        assert counts is not None
        return {
            "apexProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apiVersion": job["api_version"],
            "assignmentRuleId": None,
            "concurrencyMode": job["concurrency_mode"],
            "contentType": job["content_type"],
            "createdById": defaults.SF_USER_ID,
            "createdDate": job["created"],
            "externalIdFieldName": job["external_id_field"],
            "fastPathEnabled": False,
            "id": job["id"],
            "numberBatchesCompleted": counts["completed"],
            "numberBatchesFailed": counts["failed"],
            "numberBatchesInProgress": counts["in_progress"],
            "numberBatchesQueued": counts["queued"],
            "numberBatchesTotal": counts["total"],
            "numberRecordsFailed": counts["records_failed"],
            "numberRecordsProcessed": counts["processed"],
            "numberRetries": 0,
            "object": job["object"],
            "operation": job["operation"],
            "state": job["state"],
            "systemModstamp": job["modified"],
            "totalProcessingTime": 0,
        }

    def job_state(self, job_id: str) -> str | None:
        row = self._db.one("SELECT state FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else str(row["state"])

    def set_job_state(self, job_id: str, state: str) -> None:
        """Close or abort; aborting turns every still-queued batch into NotProcessed."""
        now = timestamp()
        with self._db.transaction() as conn:
            conn.execute("UPDATE jobs SET state = ?, modified = ? WHERE id = ?",
                         (state, now, job_id))
            if state == ABORTED:
                conn.execute(
                    "UPDATE batches SET state = ?, modified = ? WHERE job_id = ? AND state = ?",
                    (NOT_PROCESSED, now, job_id, QUEUED))

    def add_batch(self, job_id: str, payload: str, records_total: int) -> dict[str, Any]:
        batch_id, now = new_id("751"), timestamp()
        self._db.execute(
            "INSERT INTO batches(id, job_id, state, records_total, payload, created, modified)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (batch_id, job_id, QUEUED, records_total, payload, now, now))
        info = self.batch_info(job_id, batch_id)
        assert info is not None
        return info

    @staticmethod
    def _batch_json(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "apexProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "createdDate": row["created"],
            "id": row["id"],
            "jobId": row["job_id"],
            "numberRecordsFailed": row["records_failed"],
            "numberRecordsProcessed": row["records_processed"],
            "state": row["state"],
            "stateMessage": row["state_message"],
            "systemModstamp": row["modified"],
            "totalProcessingTime": 0,
        }

    def batch_info(self, job_id: str, batch_id: str) -> dict[str, Any] | None:
        row = self._db.one(
            "SELECT id, job_id, state, state_message, records_processed, records_failed,"
            " created, modified FROM batches WHERE id = ? AND job_id = ?", (batch_id, job_id))
        return None if row is None else self._batch_json(row)

    def list_batches(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._db.all(
            "SELECT id, job_id, state, state_message, records_processed, records_failed,"
            " created, modified FROM batches WHERE job_id = ? ORDER BY seq", (job_id,))
        return [self._batch_json(row) for row in rows]

    def batch_payload(self, job_id: str, batch_id: str) -> str | None:
        row = self._db.one("SELECT payload FROM batches WHERE id = ? AND job_id = ?",
                           (batch_id, job_id))
        return None if row is None else row["payload"]

    def result_chunks(self, batch_id: str) -> Iterator[str]:
        """The stored result chunks (JSON arrays) in order, one query per chunk."""
        chunk = 0
        while True:
            row = self._db.one("SELECT body FROM results WHERE batch_id = ? AND chunk = ?",
                               (batch_id, chunk))
            if row is None:
                return
            yield row["body"]
            chunk += 1

    # -- the worker's side ---------------------------------------------------------------

    def claim_next(self) -> ClaimedBatch | None:
        """Move the oldest queued batch that may start to InProgress and hand it over.

        Any batch of a Parallel job may start; a batch of a Serial job only while no batch
        of any Serial job is in progress (Salesforce processes Serial jobs' batches one at
        a time, beside the Parallel ones).
        """
        with self._db.transaction() as conn:
            serial_busy = conn.execute(
                "SELECT 1 FROM batches b JOIN jobs j ON j.id = b.job_id"
                " WHERE b.state = ? AND j.concurrency_mode = 'Serial' LIMIT 1",
                (IN_PROGRESS,)).fetchone() is not None
            row = conn.execute(
                "SELECT b.id, b.job_id, b.payload, j.operation, j.object, j.external_id_field"
                " FROM batches b JOIN jobs j ON j.id = b.job_id"
                " WHERE b.state = ? AND (? = 0 OR j.concurrency_mode = 'Parallel')"
                " ORDER BY b.seq LIMIT 1", (QUEUED, int(serial_busy))).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE batches SET state = ?, modified = ? WHERE id = ?",
                         (IN_PROGRESS, timestamp(), row["id"]))
        return ClaimedBatch(row["id"], row["job_id"], row["operation"], row["object"],
                            row["external_id_field"], row["payload"])

    def record_chunk(self, batch_id: str, chunk: int, body: str, failed: int,
                     processed: int) -> bool:
        """Store one chunk's results and bump the counters; False if the batch is gone."""
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE batches SET records_processed = records_processed + ?,"
                " records_failed = records_failed + ?, modified = ? WHERE id = ?",
                (processed, failed, timestamp(), batch_id)).rowcount
            if changed:
                conn.execute("INSERT INTO results(batch_id, chunk, body) VALUES (?, ?, ?)",
                             (batch_id, chunk, body))
        return bool(changed)

    def finish(self, batch_id: str, state: str, message: str | None = None) -> None:
        self._db.execute(
            "UPDATE batches SET state = ?, state_message = ?, modified = ? WHERE id = ?",
            (state, message, timestamp(), batch_id))

    def fail_interrupted(self) -> None:
        """Batches a previous server process left InProgress end Failed, never half-redone."""
        self._db.execute(
            "UPDATE batches SET state = ?, state_message = ?, modified = ? WHERE state = ?",
            (FAILED, "InternalServerError : the server stopped while the batch was in "
             "progress; resubmit its records", timestamp(), IN_PROGRESS))
