"""What Personalization was last given, per user or account and attribute, so echoes are skipped.

Every contact that target-salesforce-crm writes gets a new `SystemModstamp`, so the next
CRM → Personalization run reads it again although none of the values it carries changed.
This store keeps, per dataset, object kind (user, account, segment), Personalization id and
attribute (for segments: the segment id), a hash of the value last delivered, so such
values are not sent again.

A value counts as delivered only once Personalization confirmed it:
- an event, when the Event API answered `errorCode` 0 (recorded at once);
- a feed row, when its file reached the `processed` folder (the ETL job completed). Rows
  of a delivered file wait in `awaiting` under the file's name until a later run sees
  where the file went (`settle`): processed → their values become delivered; failed, or
  gone → dropped, so the values are sent again. A value waiting in any file counts as
  changed: that file may still fail, or overwrite what a newer run sends.

Feed rows are staged per temporary file while it is written (a TEMP table: on disk, gone
with the connection) and move to `awaiting` when the file is delivered; everything is
committed at the run's checkpoint, before STATE, so a killed run records nothing it did not
deliver. The store is looked up per record (never loaded whole): memory stays flat. It is
a small SQLite file holding no paths, so CI can cache its folder anywhere.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tap_personalization.errors import PersonalizationError

DEFAULT_FINGERPRINT_DB = ".cache/fingerprints/target-personalization.sqlite"
STAGE_CHUNK = 1000  # staged values held in memory before they go to the TEMP table
USER, ACCOUNT, SEGMENT = "user", "account", "segment"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value_hash TEXT NOT NULL,
    delivered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (scope, kind, entity, attribute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS awaiting (
    scope TEXT NOT NULL,
    file TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    attribute TEXT NOT NULL,
    value_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS awaiting_by_value ON awaiting (scope, kind, entity, attribute);
CREATE INDEX IF NOT EXISTS awaiting_by_file ON awaiting (scope, file);
"""
_STAGED = """
CREATE TEMP TABLE IF NOT EXISTS staged (
    part TEXT NOT NULL, kind TEXT NOT NULL, entity TEXT NOT NULL, attribute TEXT NOT NULL,
    value_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS temp.staged_by_part ON staged (part);
"""
# Delivered values of one entity that no delivered-but-unconfirmed file overrides.
_LOOKUP = (
    "SELECT attribute, value_hash FROM delivered d WHERE scope = ? AND kind = ? AND entity = ? "
    "AND NOT EXISTS (SELECT 1 FROM awaiting a WHERE a.scope = d.scope AND a.kind = d.kind "
    "AND a.entity = d.entity AND a.attribute = d.attribute)"
)
_UPSERT = (
    "INSERT INTO delivered (scope, kind, entity, attribute, value_hash) {rows} "
    "ON CONFLICT (scope, kind, entity, attribute) DO UPDATE "
    "SET value_hash = excluded.value_hash, delivered_at = excluded.delivered_at"
)


class FingerprintStoreError(PersonalizationError):
    """The fingerprint file cannot be used; the message names the setting."""


def value_hash(value: Any) -> str:
    """Hash of one delivered value (None: cleared); 1 and 1.0 stay apart, as they do in a feed."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class FingerprintStore:
    """SQLite-backed; opened on first use, so a run that writes nothing creates no file.

    `readonly` (dry runs) never creates the file and never records, nor settles: values
    waiting in a file no real run has settled yet count as changed in a dry run.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._opened = False
        self._staged: list[tuple[str, str, str, str, str]] = []

    def _connect(self) -> sqlite3.Connection | None:
        if self._opened:
            return self._db
        self._opened = True
        if self.readonly and not self.path.is_file():
            return None
        try:
            if self.readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path)
                self._db.executescript(_SCHEMA)
                self._db.execute("PRAGMA temp_store = FILE")
                self._db.executescript(_STAGED)
                self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise self._error("cannot be used", exc) from None
        return self._db

    def _error(self, what: str, exc: Exception) -> FingerprintStoreError:
        return FingerprintStoreError(
            f"fingerprint_db {self.path} {what} ({exc}): point fingerprint_db at a writable "
            "file, or delete the damaged one (the next run then sends everything)")

    def lookup(self, scope: str, kind: str, entity: str) -> dict[str, str]:
        """Confirmed value hashes of one entity, by attribute (none while a file awaits)."""
        db = self._connect()
        if db is None:
            return {}
        try:
            return dict(db.execute(_LOOKUP, (scope, kind, entity)).fetchall())
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from None

    def holds(self, scope: str) -> bool:
        """Whether anything was ever confirmed for this dataset (a first sync: no)."""
        db = self._connect()
        if db is None:
            return False
        try:
            found = db.execute("SELECT 1 FROM delivered WHERE scope = ? LIMIT 1", (scope,))
            return found.fetchone() is not None
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from None

    def confirm(self, scope: str, kind: str, entity: str, hashes: Mapping[str, str]) -> None:
        """Values Personalization accepted (Event API errorCode 0); committed by `commit`."""
        db = None if self.readonly else self._connect()
        if db is None or not hashes:
            return
        self._run(db, _UPSERT.format(rows="VALUES (?, ?, ?, ?, ?)"),
                  [(scope, kind, entity, name, digest) for name, digest in hashes.items()])

    def stage(self, part: str, kind: str, entity: str, hashes: Mapping[str, str]) -> None:
        """Values written into a feed file not yet delivered (`part`: its temporary path)."""
        if self.readonly:
            return
        self._staged.extend((part, kind, entity, name, digest) for name, digest in hashes.items())
        if len(self._staged) >= STAGE_CHUNK:
            self._flush_staged()

    def _flush_staged(self) -> None:
        db = self._connect()
        if db is not None and self._staged:
            self._run(db, "INSERT INTO staged VALUES (?, ?, ?, ?, ?)", self._staged)
        self._staged = []

    def delivered(self, scope: str, files: Iterable[tuple[str, str]]) -> None:
        """Files now in the inbound folder (temporary path, final name): their rows await."""
        db = None if self.readonly else self._connect()
        if db is None:
            return
        self._flush_staged()
        for part, name in files:
            self._run(db, "INSERT INTO awaiting SELECT ?, ?, kind, entity, attribute, value_hash "
                          "FROM staged WHERE part = ? ORDER BY rowid", [(scope, name, part)])
            self._run(db, "DELETE FROM staged WHERE part = ?", [(part,)])

    def awaiting_files(self, scope: str) -> list[str]:
        """Delivered files whose outcome no run has seen yet, oldest first."""
        db = self._connect()
        if db is None:
            return []
        try:
            rows = db.execute("SELECT file FROM awaiting WHERE scope = ? GROUP BY file "
                              "ORDER BY min(rowid)", (scope,)).fetchall()
        except sqlite3.Error as exc:
            raise self._error("cannot be read", exc) from None
        return [row[0] for row in rows]

    def settle(self, scope: str, processed: Iterable[str], dropped: Iterable[str]) -> None:
        """Processed files' rows become delivered (in delivery order); dropped ones are
        forgotten, so their values are sent again. Committed at once."""
        db = None if self.readonly else self._connect()
        if db is None:
            return
        for name in processed:
            self._run(db, _UPSERT.format(
                rows="SELECT scope, kind, entity, attribute, value_hash FROM awaiting "
                     "WHERE scope = ? AND file = ? ORDER BY rowid"), [(scope, name)])
            self._run(db, "DELETE FROM awaiting WHERE scope = ? AND file = ?", [(scope, name)])
        for name in dropped:
            self._run(db, "DELETE FROM awaiting WHERE scope = ? AND file = ?", [(scope, name)])
        self.commit()

    def commit(self) -> None:
        if self._db is not None and not self.readonly:
            try:
                self._db.commit()
            except sqlite3.Error as exc:
                raise self._error("cannot be written", exc) from None

    def close(self) -> None:
        """Close without committing: what no checkpoint committed was not confirmed."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def _run(self, db: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error("cannot be written", exc) from None
