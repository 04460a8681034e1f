"""Change detection: what was last written to each CRM record, so unchanged ones are skipped.

A nightly push sends mostly the same values again; every such row costs a Bulk row, a
`LastModifiedDate` bump and trigger/flow executions in the org. The store keeps, per CRM
record (object + Id) and mapped field set, a hash of the values last confirmed written by a
batch result. The field set has its own hash so a mapping change (a field added or removed)
makes every record "changed" once instead of being skipped forever.

Fingerprints are scoped by org (the instance URL): a sandbox refreshed from production
shares its record Ids, not its values. The store is a small SQLite file holding no paths,
so CI can cache and restore its folder anywhere. It is consulted per drain with `IN`
queries (never loaded whole), and written only from confirmed batch results, committed
before the drain's STATE is emitted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from target_salesforce_crm.target.writer import json_ready

DEFAULT_FINGERPRINT_DB = ".cache/fingerprints/target-salesforce-crm.sqlite"
# Ids per look-up statement (one drain chunk of look-ups at most).
_IN_CHUNK = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    org TEXT NOT NULL,
    sobject TEXT NOT NULL,
    crm_id TEXT NOT NULL,
    fields_hash TEXT NOT NULL,
    values_hash TEXT NOT NULL,
    written_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (org, sobject, crm_id, fields_hash)
) WITHOUT ROWID
"""


# The ids travel as one JSON array parameter: a fixed statement, no placeholder counting.
_LOOKUP = (
    "SELECT crm_id, values_hash FROM fingerprints WHERE org = ? AND sobject = ? "
    "AND fields_hash = ? "
    "AND crm_id IN (SELECT value FROM json_each(?))"
)


class FingerprintStoreError(Exception):
    """The fingerprint file cannot be used; the message names the setting."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fields_hash(fields: Iterable[str]) -> str:
    """Identity of a mapped field set, independent of order and case."""
    return _digest("\n".join(sorted({name.lower() for name in fields})))


def values_hash(payload: Mapping[str, Any], fields: Iterable[str], created_date: str) -> str:
    """Hash of the values a write sends for `fields`; a left-out field differs from null.

    The record's `CreatedDate` is hashed along: a re-issued Id is another record.
    """
    wanted = {name.lower() for name in fields}
    values = {
        name.lower(): json_ready(value) for name, value in payload.items()
        if name.lower() in wanted
    }
    document = {"created": created_date, "values": values}
    return _digest(json.dumps(document, sort_keys=True, separators=(",", ":"), default=str))


class FingerprintStore:
    """SQLite-backed fingerprints; opened lazily so a run that writes nothing creates no file.

    `readonly` (dry runs) never creates the file and never records.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        if self.readonly and not self.path.is_file():
            return None
        try:
            if self.readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path)
                self._db.execute(_SCHEMA)
                self._db.commit()
            return self._db
        except (OSError, sqlite3.Error) as exc:
            raise FingerprintStoreError(
                f"fingerprint_db {self.path} cannot be used ({exc}): point fingerprint_db at "
                "a writable file or delete the damaged one (the next run then sends everything)"
            ) from None

    def lookup(
        self, org: str, sobject: str, field_set: str, crm_ids: Sequence[str]
    ) -> dict[str, str]:
        """Stored value hashes of those of `crm_ids` that have one for this field set."""
        db = self._connect()
        if db is None or not crm_ids:
            return {}
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(crm_ids))
        try:
            for start in range(0, len(unique), _IN_CHUNK):
                chunk = unique[start:start + _IN_CHUNK]
                rows = db.execute(_LOOKUP, (org, sobject, field_set, json.dumps(chunk)))
                found.update(rows)
        except sqlite3.Error as exc:
            raise FingerprintStoreError(
                f"fingerprint_db {self.path} cannot be read ({exc}): delete it or set "
                "full_refresh: true"
            ) from None
        return found

    def record(
        self, org: str, sobject: str, field_set: str, entries: Iterable[tuple[str, str]]
    ) -> int:
        """Remember confirmed writes; committed at once (a STATE message may follow)."""
        if self.readonly:
            return 0
        rows = [(org, sobject, crm_id, field_set, digest) for crm_id, digest in entries]
        if not rows:
            return 0
        db = self._connect()
        assert db is not None
        try:
            db.executemany(
                "INSERT INTO fingerprints (org, sobject, crm_id, fields_hash, values_hash) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (org, sobject, crm_id, fields_hash) "
                "DO UPDATE "
                "SET values_hash = excluded.values_hash, written_at = excluded.written_at",
                rows,
            )
            db.commit()
        except sqlite3.Error as exc:
            raise FingerprintStoreError(
                f"fingerprint_db {self.path} cannot be written ({exc}): point fingerprint_db "
                "at a writable file"
            ) from None
        return len(rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
