"""SQLite storage of the emulated Personalization dataset.

Why SQLite and these shapes:
- Exports page straight out of SQL (ids of one page from a covering index, then only those
  rows), so a dataset of millions of users never has to fit in memory.
- The identity attributes (`emailAddress`, `sfcrmContactId`, `sfcrmLeadId`) live in indexed
  columns because the Event API and the ETL feeds resolve users by them. Their values are
  compared case-sensitively, as Personalization does.
- User and account attributes are one JSON object per row, `{name: [value, updated_ms]}`,
  so both export shapes (map and list with `updated`) come from the same data.
  `emailAddress` is served top-level, never inside `attributes`; `sfcrmContactId` and
  `sfcrmLeadId` are ordinary attributes that are mirrored into their indexed columns.
- One connection per thread in WAL mode (db.py), so the feed processor's long write
  transaction does not block readers. The ledger lives in its own file (ledger.py) so that
  recording a call never waits for a feed file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulators.personalization.db import Database

DB_FILE = "personalization.db"

IDENTITY_COLUMNS = {
    "emailAddress": "email",
    "sfcrmContactId": "sfcrm_contact_id",
    "sfcrmLeadId": "sfcrm_lead_id",
}

USER_COLUMNS = (
    "id", "email", "sfcrm_contact_id", "sfcrm_lead_id", "display_name", "account_id",
    "account_name", "engagement_score", "first_activity", "last_activity", "attributes", "geo",
)
ACCOUNT_COLUMNS = (
    "id", "name", "domain", "engagement_score", "last_activity", "attributes",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT NOT NULL UNIQUE,
    email TEXT,
    sfcrm_contact_id TEXT,
    sfcrm_lead_id TEXT,
    display_name TEXT,
    account_id TEXT,
    account_name TEXT,
    engagement_score REAL,
    first_activity INTEGER,
    last_activity INTEGER,
    attributes TEXT NOT NULL DEFAULT '{}',
    geo TEXT
);
CREATE TABLE IF NOT EXISTS user_segments (
    user_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    joined INTEGER NOT NULL,
    PRIMARY KEY (user_id, segment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    domain TEXT,
    engagement_score REAL,
    last_activity INTEGER,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS attribute_defs (
    entity TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (entity, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_results (
    seq INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    result TEXT NOT NULL
);
"""

# Secondary indexes: dropped during a bulk load and built once afterwards (much faster
# than maintaining them row by row in random key order).
_INDEXES = (
    ("users_email", "CREATE INDEX IF NOT EXISTS users_email ON users(email)"),
    ("users_sfcrm_contact_id",
     "CREATE INDEX IF NOT EXISTS users_sfcrm_contact_id ON users(sfcrm_contact_id)"),
    ("users_sfcrm_lead_id",
     "CREATE INDEX IF NOT EXISTS users_sfcrm_lead_id ON users(sfcrm_lead_id)"),
    ("users_account_id", "CREATE INDEX IF NOT EXISTS users_account_id ON users(account_id)"),
    ("user_segments_by_segment",
     "CREATE INDEX IF NOT EXISTS user_segments_by_segment ON user_segments(segment_id, user_id)"),
)
_DROP_INDEXES = tuple(f"DROP INDEX IF EXISTS {name}" for name, _ in _INDEXES)

# Attributes every dataset has: the identity attributes of the CRM integration.
BUILTIN_USER_ATTRIBUTES = {"emailAddress": "string", "sfcrmContactId": "string",
                           "sfcrmLeadId": "string"}
_CLEAR_DATA = (
    "DELETE FROM user_segments", "DELETE FROM users", "DELETE FROM accounts",
    "DELETE FROM segments", "DELETE FROM attribute_defs",
)
_CLEAR_RESULTS = "DELETE FROM feed_results"
_LOOKUPS = {
    "id": "SELECT id FROM users WHERE id = ? ORDER BY id",
    "email": "SELECT id FROM users WHERE email = ? ORDER BY id",
    "sfcrm_contact_id": "SELECT id FROM users WHERE sfcrm_contact_id = ? ORDER BY id",
    "sfcrm_lead_id": "SELECT id FROM users WHERE sfcrm_lead_id = ? ORDER BY id",
}
_INSERT_USER = (
    "INSERT OR REPLACE INTO users(id, email, sfcrm_contact_id, sfcrm_lead_id, display_name, "
    "account_id, account_name, engagement_score, first_activity, last_activity, attributes, geo) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ACCOUNT = (
    "INSERT OR REPLACE INTO accounts(id, name, domain, engagement_score, last_activity, "
    "attributes) VALUES (?, ?, ?, ?, ?, ?)"
)


class PersonalizationStore(Database):
    """The dataset's tables; every method opens its own short transaction."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path, _SCHEMA)
        self._create_indexes()
        self._define_builtins()


    def _create_indexes(self) -> None:
        with self.write() as conn:
            for _, statement in _INDEXES:
                conn.execute(statement)

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Secondary indexes off while many rows are loaded, rebuilt at the end."""
        with self.write() as conn:
            for statement in _DROP_INDEXES:
                conn.execute(statement)
        try:
            yield
        finally:
            self._create_indexes()

    def _define_builtins(self) -> None:
        with self.write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO attribute_defs(entity, name, type) VALUES ('user', ?, ?)",
                BUILTIN_USER_ATTRIBUTES.items(),
            )

    def reset(self, *, keep_feed_results: bool = False) -> None:
        """Empty every data table (and the feed results unless kept)."""
        statements = _CLEAR_DATA if keep_feed_results else (*_CLEAR_DATA, _CLEAR_RESULTS)
        with self.write() as conn:
            for statement in statements:
                conn.execute(statement)
        self._define_builtins()

    # -- reads ----------------------------------------------------------------------

    def user_page(self, page: int, size: int, segment_id: str | None) -> list[dict[str, Any]]:
        """One export page in id order, each user with its `memberships` list attached."""
        with self.read() as conn:
            if segment_id is None:
                ids = [row[0] for row in conn.execute(
                    "SELECT id FROM users ORDER BY id LIMIT ? OFFSET ?", (size, page * size))]
            else:
                ids = [row[0] for row in conn.execute(
                    "SELECT user_id FROM user_segments WHERE segment_id = ? "
                    "ORDER BY user_id LIMIT ? OFFSET ?", (segment_id, size, page * size))]
            return self._users_by_ids(conn, ids)

    def user(self, user_id: str) -> dict[str, Any] | None:
        with self.read() as conn:
            found = self._users_by_ids(conn, [user_id])
        return found[0] if found else None

    def users_where(self, column: str, value: str) -> list[dict[str, Any]]:
        """Users whose indexed identity column (or id) equals `value` exactly."""
        query = _LOOKUPS[column]
        with self.read() as conn:
            ids = [row[0] for row in conn.execute(query, (value,))]
            return self._users_by_ids(conn, ids)

    def iter_users(self, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every user in id order, fetched by keyset chunks (flat memory)."""
        after = ""
        while True:
            with self.read() as conn:
                ids = [row[0] for row in conn.execute(
                    "SELECT id FROM users WHERE id > ? ORDER BY id LIMIT ?", (after, chunk))]
                users = self._users_by_ids(conn, ids)
            if not users:
                return
            yield from users
            after = ids[-1]

    def _users_by_ids(self, conn: sqlite3.Connection, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        id_list = json.dumps(ids)
        users = {
            row["id"]: {**dict(row), "memberships": []}
            for row in conn.execute(
                "SELECT * FROM users WHERE id IN (SELECT value FROM json_each(?))", (id_list,))
        }
        for row in conn.execute(
            "SELECT us.user_id, us.segment_id, s.name, us.joined FROM user_segments us "
            "JOIN segments s ON s.id = us.segment_id "
            "WHERE us.user_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY us.user_id, us.joined, us.segment_id", (id_list,),
        ):
            users[row["user_id"]]["memberships"].append(
                {"id": row["segment_id"], "name": row["name"], "joined": row["joined"]})
        return [users[user_id] for user_id in ids if user_id in users]

    def account_page(self, page: int, size: int) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [dict(row) for row in conn.execute(
                "SELECT * FROM accounts WHERE id IN "
                "(SELECT id FROM accounts ORDER BY id LIMIT ? OFFSET ?) ORDER BY id",
                (size, page * size))]

    def iter_accounts(self, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        page = 0
        while rows := self.account_page(page, chunk):
            yield from rows
            page += 1

    def segments(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [dict(row) for row in conn.execute(
                "SELECT s.id, s.name, (SELECT COUNT(*) FROM user_segments us "
                "WHERE us.segment_id = s.id) AS members FROM segments s ORDER BY s.id")]

    def segment_by_id_or_name(self, key: str) -> str | None:
        """The id of the segment named by id or (exactly) by name, as the export filter reads it."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT id FROM segments WHERE id = ? UNION ALL "
                "SELECT id FROM segments WHERE name = ? LIMIT 1", (key, key)).fetchone()
        return row[0] if row else None

    def attribute_names(self, entity: str) -> list[str]:
        with self.read() as conn:
            return [row[0] for row in conn.execute(
                "SELECT name FROM attribute_defs WHERE entity = ? ORDER BY name", (entity,))]

    def counts(self) -> dict[str, int]:
        with self.read() as conn:
            return {
                "users": conn.execute("SELECT COUNT(*) FROM users").fetchone()[0],
                "accounts": conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0],
                "segments": conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0],
                "segment_memberships":
                    conn.execute("SELECT COUNT(*) FROM user_segments").fetchone()[0],
                "feed_files": conn.execute("SELECT COUNT(*) FROM feed_results").fetchone()[0],
            }

    # -- bulk loading (demo data, admin) ----------------------------------------------

    def load(self, *, users: Iterable[dict[str, Any]] = (),
             accounts: Iterable[dict[str, Any]] = (),
             segments: Iterable[tuple[str, str]] = (),
             memberships: Iterable[tuple[str, str, int]] = ()) -> None:
        """Insert or replace rows given in storage form, in one transaction."""
        with self.write() as conn:
            conn.executemany("INSERT OR REPLACE INTO segments(id, name) VALUES (?, ?)", segments)
            conn.executemany(
                _INSERT_ACCOUNT, ([row.get(col) for col in ACCOUNT_COLUMNS] for row in accounts))
            conn.executemany(
                _INSERT_USER, ([row.get(col) for col in USER_COLUMNS] for row in users))
            conn.executemany(
                "INSERT OR REPLACE INTO user_segments(user_id, segment_id, joined) "
                "VALUES (?, ?, ?)", memberships,
            )

    def upsert_users(self, users: list[dict[str, Any]],
                     memberships: list[tuple[str, str, int]],
                     segments: list[tuple[str, str]], attribute_types: dict[str, str]) -> None:
        """Replace the given users and their memberships as given (admin seeding)."""
        with self.write() as conn:
            conn.executemany("INSERT OR IGNORE INTO segments(id, name) VALUES (?, ?)", segments)
            conn.executemany(
                _INSERT_USER, ([row.get(col) for col in USER_COLUMNS] for row in users))
            conn.executemany("DELETE FROM user_segments WHERE user_id = ?",
                             [(row["id"],) for row in users])
            conn.executemany(
                "INSERT OR REPLACE INTO user_segments(user_id, segment_id, joined) "
                "VALUES (?, ?, ?)", memberships)
            conn.executemany(
                "INSERT OR IGNORE INTO attribute_defs(entity, name, type) "
                "VALUES ('user', ?, ?)", attribute_types.items())

    def define_attributes(self, entity: str, types: dict[str, str]) -> None:
        with self.write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO attribute_defs(entity, name, type) VALUES (?, ?, ?)",
                [(entity, name, kind) for name, kind in types.items()],
            )


def encode_attributes(values: dict[str, Any], updated: int) -> str:
    """Storage form of an attribute map whose values were all set at `updated`."""
    return json.dumps({name: [value, updated] for name, value in values.items()},
                      ensure_ascii=False, separators=(",", ":"))
