"""The HTTP layer's own SQLite file: ledger, Bulk jobs, batches and results.

It lives beside the data store's file (`api.db` next to `salesforce.db`) rather than inside
it, so a slow bulk apply never holds a lock that an unrelated ledger write waits on, and so
resetting the data and resetting the API state stay independent. Everything that grows with
traffic (calls, batch payloads, per-record results) is kept here on disk, never in memory.
Bulk API 2.0 query jobs keep their rendered CSV rows here too (`query_results`, 1,000 rows
per chunk), so a result set can be served again for as long as its job exists. Bulk API
2.0 ingest jobs keep their uploaded rows and per-row results here, 10,000 rows per internal
batch (`ingest_batches`), as Salesforce splits them. Bulk API 1.0 query batches keep their
rendered CSV rows like 2.0 query jobs (`bulk_query_*`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_kind ON ledger(kind);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    object TEXT NOT NULL,
    external_id_field TEXT,
    concurrency_mode TEXT NOT NULL,
    content_type TEXT NOT NULL,
    state TEXT NOT NULL,
    api_version REAL NOT NULL,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    state_message TEXT,
    records_total INTEGER NOT NULL,
    records_processed INTEGER NOT NULL DEFAULT 0,
    records_failed INTEGER NOT NULL DEFAULT 0,
    payload TEXT,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_job ON batches(job_id);
CREATE INDEX IF NOT EXISTS batches_state ON batches(state);
CREATE TABLE IF NOT EXISTS results (
    batch_id TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (batch_id, chunk)
);
CREATE TABLE IF NOT EXISTS query_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    operation TEXT NOT NULL,
    object TEXT NOT NULL,
    state TEXT NOT NULL,
    error_message TEXT,
    api_version REAL NOT NULL,
    column_delimiter TEXT NOT NULL,
    line_ending TEXT NOT NULL,
    header TEXT NOT NULL,
    records_processed INTEGER NOT NULL DEFAULT 0,
    processing_ms INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS query_results (
    job INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (job, chunk)
);
CREATE TABLE IF NOT EXISTS ingest_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    operation TEXT NOT NULL,
    object TEXT NOT NULL,
    external_id_field TEXT,
    state TEXT NOT NULL,
    error_message TEXT,
    api_version REAL NOT NULL,
    column_delimiter TEXT NOT NULL,
    line_ending TEXT NOT NULL,
    header TEXT,
    records_processed INTEGER NOT NULL DEFAULT 0,
    records_failed INTEGER NOT NULL DEFAULT 0,
    processing_ms INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ingest_jobs_state ON ingest_jobs(state);
CREATE TABLE IF NOT EXISTS ingest_batches (
    job INTEGER NOT NULL,
    number INTEGER NOT NULL,
    rows TEXT NOT NULL,
    results TEXT,
    PRIMARY KEY (job, number)
);
CREATE TABLE IF NOT EXISTS bulk_query_jobs (
    id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    object TEXT NOT NULL,
    state TEXT NOT NULL,
    api_version REAL NOT NULL,
    pk_chunking TEXT,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bulk_query_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    state_message TEXT,
    soql TEXT NOT NULL,
    header TEXT,
    records_processed INTEGER NOT NULL DEFAULT 0,
    processing_ms INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    modified TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bulk_query_batches_job ON bulk_query_batches(job_id);
CREATE TABLE IF NOT EXISTS bulk_query_results (
    batch INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (batch, chunk)
);
"""


class ApiDatabase:
    """One serialised connection; the threaded server and the bulk worker share it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the connection for one atomic unit of work."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """Run one statement in its own transaction; returns the changed row count."""
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def one(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def clear(self) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM ledger")
            conn.execute("DELETE FROM jobs")
            conn.execute("DELETE FROM batches")
            conn.execute("DELETE FROM results")
            conn.execute("DELETE FROM query_jobs")
            conn.execute("DELETE FROM query_results")
            conn.execute("DELETE FROM ingest_jobs")
            conn.execute("DELETE FROM ingest_batches")
            conn.execute("DELETE FROM bulk_query_jobs")
            conn.execute("DELETE FROM bulk_query_batches")
            conn.execute("DELETE FROM bulk_query_results")
