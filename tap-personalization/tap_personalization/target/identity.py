"""Which Personalization user or account a CRM record means, decided before anything is sent.

Feed files are applied by Personalization later and out of sight, and a file fails as a whole
when over 10 % of its rows name nobody. So rows are only written for users and accounts that
exist: the users and accounts exports are read once (on first need) into an on-disk SQLite
index of identity values, which keeps memory flat for millions of users.

Resolution follows the API's own identity rule, with the mapping's normalisers applied to
both sides (an identity rule `normalize: [email]` finds "Ada@Example.com" for a CRM
"ada@example.com"; without normalisers values compare exactly, as the API does): every
identity value that finds a user must find the same single one; values that find nobody are
then stored on that user (they become its links, e.g. the `sfcrmContactId` of a user so far
known by e-mail). Links written in this run are learnt at once, so a later campaign member of
the same contact finds its user.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_sync_mapping.normalize import apply_normalizers

from tap_personalization.target.changes import (
    AMBIGUOUS_IDENTITY,
    CONFLICTING_IDENTITY,
    REJECTED,
    UNKNOWN_IDENTITY,
    UNMATCHED,
    Refusal,
)

#: `export_page(export, page=, page_size=)` of `PersonalizationClient`.
PageReader = Callable[..., list[Any]]
#: How one identity value is compared: the attribute and the normalisers of its rule.
Lookup = tuple[str, tuple[str, ...]]
INSERT_CHUNK = 1000


def lookup_key(lookup: Lookup) -> str:
    attribute, normalizers = lookup
    return f"{attribute}|{','.join(normalizers)}"


@dataclass(frozen=True)
class Resolution:
    """A user id with the identity values to store on it, or why there is none."""

    user_id: str | None
    links: tuple[tuple[str, str], ...] = ()
    outcome: str | None = None
    reason: str | None = None
    message: str = ""

    def refusal(self, stream: str, sobject: str, key: str, details: dict[str, Any]) -> Refusal:
        """The report line of a record this resolution found no user for."""
        return Refusal(stream, sobject, key, self.outcome or UNMATCHED,
                       self.reason or UNKNOWN_IDENTITY, self.message, details)


def export_rows(read_page: PageReader, export: str, page_size: int) -> Iterator[dict[str, Any]]:
    """Every row of an export, page by page from 0 until the first empty page."""
    page = 0
    while True:
        rows = read_page(export, page=page, page_size=page_size)
        if not rows:
            return
        yield from (row for row in rows if isinstance(row, dict))
        page += 1


def stored_attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of an export row, which come as a map or as a list of name/value."""
    raw = row.get("attributes")
    if isinstance(raw, list):
        return {item.get("name"): item.get("value") for item in raw if isinstance(item, dict)}
    if isinstance(raw, Mapping):
        return dict(raw)
    return {}


def identity_values(
    user: Mapping[str, Any], attributes: Iterable[str]
) -> Iterator[tuple[str, str]]:
    """(attribute, value) of a user export row."""
    stored = stored_attributes(user)
    for attribute in attributes:
        value = stored.get(attribute)
        if value is None and attribute == "emailAddress":
            value = user.get("emailAddress")
        if value is not None and value != "":
            yield attribute, str(value)


class IdentityIndex:
    """Identity values of the dataset's users (one row per lookup) and its account ids, on disk."""

    def __init__(
        self, directory: Path, lookups: Iterable[Lookup], *, keep: Iterable[str] = ()
    ) -> None:
        """`keep` names user attributes whose current values are kept too (a dry run shows
        old → new for a sample of users; the real run needs no values, so keeps none)."""
        self.lookups = tuple(dict.fromkeys(lookups))
        self.identity_attributes = tuple(dict.fromkeys(attr for attr, _ in self.lookups))
        self.keep = tuple(dict.fromkeys(keep))
        self._db = sqlite3.connect(directory / "identities.sqlite3")
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE identities (lookup TEXT, value TEXT, user_id TEXT);"
            "CREATE TABLE accounts (id TEXT PRIMARY KEY);"
            "CREATE TABLE current (user_id TEXT PRIMARY KEY, attributes TEXT);"
        )
        self.users_loaded = False
        self.accounts_loaded = False

    def close(self) -> None:
        self._db.close()

    def _keys(self, attribute: str, value: str) -> Iterator[tuple[str, str]]:
        """(lookup key, compared value) of one stored identity value, for every rule using it."""
        for lookup in self.lookups:
            if lookup[0] == attribute:
                compared = apply_normalizers(value, lookup[1])
                if compared is not None:
                    yield lookup_key(lookup), compared

    def load_users(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Index the users export; returns how many users it held."""
        count = 0
        chunk: list[tuple[str, str, str]] = []
        kept: list[tuple[str, str]] = []
        for row in rows:
            user_id = row.get("id")
            if not user_id:
                continue
            count += 1
            for attribute, value in identity_values(row, self.identity_attributes):
                chunk.extend((key, compared, str(user_id))
                             for key, compared in self._keys(attribute, value))
            if self.keep:
                kept.append((str(user_id), json.dumps(self._kept_values(row), default=str)))
            if len(chunk) >= INSERT_CHUNK or len(kept) >= INSERT_CHUNK:
                self._db.executemany("INSERT INTO identities VALUES (?, ?, ?)", chunk)
                self._db.executemany("INSERT OR REPLACE INTO current VALUES (?, ?)", kept)
                chunk.clear()
                kept.clear()
        self._db.executemany("INSERT INTO identities VALUES (?, ?, ?)", chunk)
        self._db.executemany("INSERT OR REPLACE INTO current VALUES (?, ?)", kept)
        self._db.execute("CREATE INDEX IF NOT EXISTS by_value ON identities (lookup, value)")
        self._db.execute("CREATE INDEX IF NOT EXISTS by_user ON identities (user_id, lookup)")
        self._db.commit()
        self.users_loaded = True
        return count

    def _kept_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        stored = stored_attributes(row)
        if "emailAddress" not in stored and row.get("emailAddress"):
            stored["emailAddress"] = row["emailAddress"]
        return {name: stored[name] for name in self.keep if stored.get(name) is not None}

    def current_values(self, user_id: str) -> dict[str, Any]:
        """The kept attribute values the users export showed for a user (empty if none)."""
        found = self._db.execute("SELECT attributes FROM current WHERE user_id = ?",
                                 (user_id,)).fetchone()
        return dict(json.loads(found[0])) if found else {}

    def load_accounts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Index the accounts export; returns how many accounts it held."""
        count = 0
        chunk: list[tuple[str]] = []
        for row in rows:
            if row.get("id"):
                count += 1
                chunk.append((str(row["id"]),))
            if len(chunk) >= INSERT_CHUNK:
                self._db.executemany("INSERT OR IGNORE INTO accounts VALUES (?)", chunk)
                chunk.clear()
        self._db.executemany("INSERT OR IGNORE INTO accounts VALUES (?)", chunk)
        self._db.commit()
        self.accounts_loaded = True
        return count

    def account_exists(self, account_id: str) -> bool:
        found = self._db.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,))
        return found.fetchone() is not None

    def resolve(
        self,
        identities: Iterable[tuple[str, str]],
        normalizers: Iterable[tuple[str, ...]] | None = None,
    ) -> Resolution:
        """The one user the identities find (see the module docstring).

        `identities` are (attribute, value) already normalised by their rules; `normalizers`
        (parallel, default none) name each rule's normalisers, i.e. which lookup to use.
        """
        pairs = list(identities)
        rules = list(normalizers) if normalizers is not None else [()] * len(pairs)
        found: dict[str, str] = {}
        missing: list[tuple[str, str]] = []
        for (attribute, value), names in zip(pairs, rules, strict=True):
            users = [row[0] for row in self._db.execute(
                "SELECT DISTINCT user_id FROM identities WHERE lookup = ? AND value = ? "
                "LIMIT 2", (lookup_key((attribute, tuple(names))), value))]
            if len(users) > 1:
                return Resolution(None, outcome=REJECTED, reason=AMBIGUOUS_IDENTITY,
                                  message=f"{attribute} {value!r} belongs to several users "
                                          f"({', '.join(users)}); merge them in Personalization")
            if users:
                found[attribute] = users[0]
            else:
                missing.append((attribute, value))
        if not found:
            given = ", ".join(f"{attribute}={value!r}" for attribute, value in pairs)
            return Resolution(None, outcome=UNMATCHED, reason=UNKNOWN_IDENTITY,
                              message=f"no Personalization user has {given}")
        if len(set(found.values())) > 1:
            which = ", ".join(f"{attribute} -> {user}" for attribute, user in found.items())
            return Resolution(None, outcome=REJECTED, reason=CONFLICTING_IDENTITY,
                              message=f"the identity values point to different users ({which})")
        return Resolution(next(iter(found.values())), links=tuple(missing))

    def learn(self, user_id: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Record identity values stored on a user in this run (one value per attribute)."""
        for attribute, value in pairs:
            for key, compared in self._keys(attribute, value):
                self._db.execute("DELETE FROM identities WHERE user_id = ? AND lookup = ?",
                                 (user_id, key))
                self._db.execute("INSERT INTO identities VALUES (?, ?, ?)",
                                 (key, compared, user_id))
