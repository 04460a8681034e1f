"""Changes to users, accounts and memberships, inside a caller's write transaction.

The Event API and the three ETL feeds make the same kinds of change, so they share these
functions (and so the same identity rules). Identity resolution, where the docs are silent:
- `user.id` / `userId` addresses one existing user; an unknown id is an error (the sandbox,
  like the CRM integration it stands in for, never creates users from these inputs).
- Without an id, every given identity attribute (`emailAddress`, `sfcrmContactId`,
  `sfcrmLeadId`, values compared case-sensitively) is looked up: at least one must find a
  user, all that find one must find the same single user, and the ones that find nobody
  are then stored on that user as new values.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

_FIND = {
    "emailAddress": "SELECT id FROM users WHERE email = ? ORDER BY id LIMIT 2",
    "sfcrmContactId": "SELECT id FROM users WHERE sfcrm_contact_id = ? ORDER BY id LIMIT 2",
    "sfcrmLeadId": "SELECT id FROM users WHERE sfcrm_lead_id = ? ORDER BY id LIMIT 2",
}


class UnknownIdentity(ValueError):
    """The input names no user (or several); the message says which value."""


def resolve_user(conn: sqlite3.Connection, user_id: str | None,
                 identities: dict[str, str]) -> str:
    if user_id is not None:
        if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
            raise UnknownIdentity(f"unknown user id {user_id!r}")
        return user_id
    if not identities:
        raise UnknownIdentity(
            "no user id and no identity attribute (emailAddress, sfcrmContactId, sfcrmLeadId)")
    found: dict[str, str] = {}
    for attribute, value in identities.items():
        ids = [row[0] for row in conn.execute(_FIND[attribute], (value,))]
        if len(ids) > 1:
            raise UnknownIdentity(f"{attribute} {value!r} is ambiguous: several users have it")
        if ids:
            found[attribute] = ids[0]
    if not found:
        given = ", ".join(f"{name}={value!r}" for name, value in identities.items())
        raise UnknownIdentity(f"no user has {given}")
    if len(set(found.values())) > 1:
        pairs = ", ".join(f"{name} -> {uid}" for name, uid in found.items())
        raise UnknownIdentity(f"identity attributes point to different users ({pairs})")
    return next(iter(found.values()))


def update_user(conn: sqlite3.Connection, user_id: str, changes: dict[str, Any], now: int,
                *, account: tuple[str, str | None] | None = None,
                activity: bool = False) -> None:
    """Apply attribute values (None clears) and optionally link an account / mark activity."""
    row = conn.execute(
        "SELECT email, attributes, account_id, account_name, first_activity, last_activity "
        "FROM users WHERE id = ?", (user_id,)).fetchone()
    email = row["email"]
    attributes: dict[str, list[Any]] = json.loads(row["attributes"])
    for name, value in changes.items():
        if name == "emailAddress":
            email = value
        elif value is None:
            attributes.pop(name, None)
        elif name not in attributes or attributes[name][0] != value:
            attributes[name] = [value, now]
    account_id, account_name = row["account_id"], row["account_name"]
    if account is not None:
        account_id, account_name = account
    first, last = row["first_activity"], row["last_activity"]
    if activity:
        first, last = first or now, now
    conn.execute(
        "UPDATE users SET email = ?, sfcrm_contact_id = ?, sfcrm_lead_id = ?, attributes = ?, "
        "account_id = ?, account_name = ?, first_activity = ?, last_activity = ? WHERE id = ?",
        (email, _value(attributes, "sfcrmContactId"), _value(attributes, "sfcrmLeadId"),
         json.dumps(attributes, ensure_ascii=False, separators=(",", ":")),
         account_id, account_name, first, last, user_id),
    )


def _value(attributes: dict[str, list[Any]], name: str) -> str | None:
    entry = attributes.get(name)
    return None if entry is None else str(entry[0])


def account_row(conn: sqlite3.Connection, account_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT id, name FROM accounts WHERE id = ?", (account_id,)).fetchone()
    return row


def upsert_account(conn: sqlite3.Connection, account_id: str, changes: dict[str, Any],
                   now: int, *, name: str | None = None) -> None:
    """Update an account's attributes (and name); create it when a name is given."""
    row = conn.execute(
        "SELECT name, attributes FROM accounts WHERE id = ?", (account_id,)).fetchone()
    renamed = row is None or (name is not None and name != row["name"])
    if row is None:
        if name is None:
            raise UnknownIdentity(f"unknown account id {account_id!r}")
        attributes: dict[str, list[Any]] = {}
    else:
        attributes = json.loads(row["attributes"])
        name = name if name is not None else row["name"]
    for key, value in changes.items():
        if value is None:
            attributes.pop(key, None)
        elif key not in attributes or attributes[key][0] != value:
            attributes[key] = [value, now]
    encoded = json.dumps(attributes, ensure_ascii=False, separators=(",", ":"))
    if row is None:
        conn.execute("INSERT INTO accounts(id, name, attributes) VALUES (?, ?, ?)",
                     (account_id, name, encoded))
    else:
        conn.execute("UPDATE accounts SET name = ?, attributes = ? WHERE id = ?",
                     (name, encoded, account_id))
    if renamed:
        conn.execute("UPDATE users SET account_name = ? WHERE account_id = ?", (name, account_id))


def segment_exists(conn: sqlite3.Connection, segment_id: str) -> bool:
    return conn.execute("SELECT 1 FROM segments WHERE id = ?", (segment_id,)).fetchone() is not None


def add_membership(conn: sqlite3.Connection, user_id: str, segment_id: str, now: int) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO user_segments(user_id, segment_id, joined) VALUES (?, ?, ?)",
        (user_id, segment_id, now))


def remove_membership(conn: sqlite3.Connection, user_id: str, segment_id: str) -> None:
    conn.execute("DELETE FROM user_segments WHERE user_id = ? AND segment_id = ?",
                 (user_id, segment_id))

