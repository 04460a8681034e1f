"""Ledger of every API call and feed file, so tests count calls instead of trusting clients.

It is its own SQLite file (`ledger.db`) so that recording a call never waits for the
dataset's write lock (held while a feed file is applied).

Kinds: `users_export` (users.json, users.csv), `accounts_export`, `user_lookup`, `event`,
and `feed_file` (one entry per processed feed file: method `FEED`, path = file name,
status 200 when applied, 422 when the file failed). Calls refused by auth or by an injected
fault are recorded with their status. Admin calls are never recorded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulators.personalization.db import Database

LEDGER_FILE = "ledger.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    at TEXT NOT NULL
);
"""
KINDS = ("users_export", "accounts_export", "user_lookup", "event", "feed_file")
DEFAULT_LIMIT = 5000

_EXPORT = re.compile(r"^/api/dataset/[^/]+/(?P<what>users\.json|users\.csv|accounts\.json)$")
_LOOKUP = re.compile(r"^/api/dataset/[^/]+/user/[^/]+$")
_EVENT = re.compile(r"^/api2/authevent/[^/]+$")


def classify(path: str) -> str | None:
    """Ledger kind of an HTTP request, or None when it is not an emulated API call."""
    export = _EXPORT.match(path)
    if export:
        return "accounts_export" if export["what"] == "accounts.json" else "users_export"
    if _LOOKUP.match(path):
        return "user_lookup"
    if _EVENT.match(path):
        return "event"
    return None


class Ledger:
    """Append-only call log in SQLite: bounded memory however long a run lasts."""

    def __init__(self, path: Path) -> None:
        self._store = Database(path, _SCHEMA)

    def record(self, kind: str, method: str, path: str, status: int) -> None:
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._store.write() as conn:
            conn.execute(
                "INSERT INTO ledger(kind, method, path, status, at) VALUES (?, ?, ?, ?, ?)",
                (kind, method, path[:2000], status, at))

    def summary(self) -> dict[str, Any]:
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT kind, COUNT(*) FROM ledger GROUP BY kind ORDER BY kind").fetchall()
        by_kind = {row[0]: row[1] for row in rows}
        return {"total": sum(by_kind.values()), "by_kind": by_kind}

    def report(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        """Summary plus the most recent `limit` calls, oldest first."""
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT kind, method, path, status, at FROM ledger ORDER BY seq DESC LIMIT ?",
                (max(0, limit),)).fetchall()
        return {**self.summary(), "calls": [dict(row) for row in reversed(rows)]}

    def clear(self) -> None:
        with self._store.write() as conn:
            conn.execute("DELETE FROM ledger")
