"""The Bulk work a run has opened, written down before it is sent: how the next run ends it.

A run that dies (kill -9, a revoked session, a machine lost) leaves batches Salesforce may
have applied but nobody read the results of, and jobs still Open. The tap sends those
records again (its STATE never moved past them), so without this record they would be
written twice. The journal lives in the fingerprint file (the cache CI keeps between runs):

- a job is noted when it is created, and forgotten when it is closed;
- a batch is noted with what it carries before it is sent (then its id once Salesforce
  answers), and forgotten once its results are folded and fingerprinted.

The next run reads what an ended run left (`recovery.py`). A run holds an OS lock on a file
named after it while it lives, so runs of two jobs sharing the file never take over each
other's work: only a run whose lock can be taken has ended.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class JournalError(Exception):
    """The journal (in the fingerprint file) cannot be used; the message names the setting."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_runs (
    run_id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE TABLE IF NOT EXISTS journal_jobs (
    job_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    sobject TEXT NOT NULL,
    operation TEXT NOT NULL,
    external_id_field TEXT,
    state TEXT NOT NULL DEFAULT 'Open'
);
CREATE TABLE IF NOT EXISTS journal_batches (
    token INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    batch_id TEXT,
    rows BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class JournalRow:
    """One record of a journaled batch: enough to fingerprint it once its result is known."""

    crm_id: str | None
    created_date: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class JournaledBatch:
    token: int
    batch_id: str | None  # None: sent, answer never read (it may or may not exist)
    rows: list[JournalRow]


@dataclass(frozen=True)
class JournaledJob:
    job_id: str
    sobject: str
    operation: str
    external_id_field: str | None
    state: str  # as this run last left it: Open, Closed or Aborted
    batches: list[JournaledBatch]


@dataclass(frozen=True)
class EndedRun:
    run_id: str
    jobs: list[JournaledJob]


class BulkJournal:
    """The journal of this run, in the SQLite file at `path` (opened at the first job)."""

    def __init__(self, path: Path, org: Callable[[], str]) -> None:
        self.path = path
        self._org = org  # asked only when needed: it may cost the sign-in
        self.run_id = uuid.uuid4().hex
        self._db: sqlite3.Connection | None = None
        self._lock: IO[bytes] | None = None

    # -- this run -------------------------------------------------------------------------

    def job_opened(self, job_id: str, sobject: str, operation: str,
                   external_id_field: str | None) -> None:
        self._write("INSERT OR REPLACE INTO journal_jobs (job_id, run_id, sobject, operation, "
                    "external_id_field) VALUES (?, ?, ?, ?, ?)",
                    (job_id, self._run(), sobject, operation, external_id_field))

    def sending(self, job_id: str, rows: Sequence[JournalRow]) -> int:
        """Note a batch before it is sent; the token names it until its id is known."""
        blob = zlib.compress(json.dumps(
            [[row.crm_id, row.created_date, row.payload] for row in rows],
            separators=(",", ":"), default=str).encode(), 1)
        db = self._connect()
        with _writing(self.path):
            cursor = db.execute("INSERT INTO journal_batches (job_id, rows) VALUES (?, ?)",
                                (job_id, blob))
            db.commit()
        return int(cursor.lastrowid or 0)

    def sent(self, token: int, batch_id: str) -> None:
        self._write("UPDATE journal_batches SET batch_id = ? WHERE token = ?", (batch_id, token))

    def not_sent(self, token: int) -> None:
        """Salesforce refused the batch (it does not exist): its records go again."""
        self._write("DELETE FROM journal_batches WHERE token = ?", (token,))

    def answered(self, batch_id: str) -> None:
        """The batch's results are folded and fingerprinted: nothing left to recover."""
        self._write("DELETE FROM journal_batches WHERE batch_id = ?", (batch_id,))

    def job_state(self, job_id: str, state: str) -> None:
        """Closed or Aborted: the next run need not close it (its batches stay noted)."""
        self._write("UPDATE journal_jobs SET state = ? WHERE job_id = ?", (state, job_id))

    def end(self) -> None:
        """This run is over: forget what is settled; what is not stays for the next run."""
        if self._db is None:
            return
        self._write("DELETE FROM journal_jobs WHERE run_id = ? AND state != 'Open' AND job_id "
                    "NOT IN (SELECT job_id FROM journal_batches)", (self.run_id,))
        if not self._db.execute("SELECT 1 FROM journal_jobs WHERE run_id = ?",
                                (self.run_id,)).fetchone():
            self._write("DELETE FROM journal_runs WHERE run_id = ?", (self.run_id,))
        self.close()

    def close(self) -> None:
        """Release the run's lock (kept work then belongs to an ended run)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()
            _lock_path(self.path, self.run_id).unlink(missing_ok=True)
            self._lock = None

    # -- ended runs -----------------------------------------------------------------------

    def ended_runs(self) -> list[EndedRun]:
        """What runs against this org left behind and no living process holds."""
        if not self.path.is_file():
            return []
        db = self._connect()
        runs = db.execute("SELECT run_id, org FROM journal_runs WHERE run_id != ? "
                          "ORDER BY started_at", (self.run_id,)).fetchall()
        if not runs:
            return []  # the usual case: nothing asked of Salesforce
        org = self._org()
        ended: list[EndedRun] = []
        for run_id, run_org in runs:
            if run_org != org or _alive(self.path, run_id):
                continue
            ended.append(EndedRun(run_id, self._jobs_of(db, run_id)))
        return ended

    def forget_run(self, run_id: str) -> None:
        """An ended run's work is settled by this one."""
        self._write("DELETE FROM journal_batches WHERE job_id IN "
                    "(SELECT job_id FROM journal_jobs WHERE run_id = ?)", (run_id,))
        self._write("DELETE FROM journal_jobs WHERE run_id = ?", (run_id,))
        self._write("DELETE FROM journal_runs WHERE run_id = ?", (run_id,))
        _lock_path(self.path, run_id).unlink(missing_ok=True)

    # -- storage --------------------------------------------------------------------------

    def _jobs_of(self, db: sqlite3.Connection, run_id: str) -> list[JournaledJob]:
        jobs: list[JournaledJob] = []
        for job_id, sobject, operation, external_id_field, state in db.execute(
                "SELECT job_id, sobject, operation, external_id_field, state FROM journal_jobs "
                "WHERE run_id = ?", (run_id,)).fetchall():
            batches = [
                JournaledBatch(int(token), batch_id, [
                    JournalRow(crm_id, created, payload)
                    for crm_id, created, payload in json.loads(zlib.decompress(blob))
                ])
                for token, batch_id, blob in db.execute(
                    "SELECT token, batch_id, rows FROM journal_batches WHERE job_id = ? "
                    "ORDER BY token", (job_id,)).fetchall()
            ]
            jobs.append(JournaledJob(job_id, sobject, operation, external_id_field, state,
                                     batches))
        return jobs

    def _run(self) -> str:
        """This run's id, registered (and its lock taken) on first use."""
        if self._lock is None:
            lock_path = _lock_path(self.path, self.run_id)
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = lock_path.open("wb")
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock.write(str(os.getpid()).encode())
            self._lock.flush()
            self._write("INSERT OR IGNORE INTO journal_runs (run_id, org) VALUES (?, ?)",
                        (self.run_id, self._org()))
        return self.run_id

    def _write(self, statement: str, params: tuple[Any, ...]) -> None:
        db = self._connect()
        with _writing(self.path):
            db.execute(statement, params)
            db.commit()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            with _writing(self.path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=30)
                self._db.executescript(_SCHEMA)
        return self._db


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """SQLite and file errors become the fingerprint file's one-line error."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise JournalError(
            f"fingerprint_db {path} cannot hold the Bulk journal ({exc}): point "
            "fingerprint_db at a writable file") from None


def _lock_path(db: Path, run_id: str) -> Path:
    return db.parent / f"{db.name}.runs" / f"{run_id}.lock"


def _alive(db: Path, run_id: str) -> bool:
    """Whether the run's process still holds its lock (its file missing: it ended)."""
    path = _lock_path(db, run_id)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
