"""ETL feeds: apply one user, account or segment-delta CSV to the dataset.

The documented rules: RFC 4180 CSV in UTF-8; a user feed addresses users by `userId`
(4-120 characters) or by identity columns (`attribute:emailAddress`,
`attribute:sfcrmContactId`, `attribute:sfcrmLeadId`, at most 5), then `attribute:<name>`
columns (at most 50 per feed, values at most 1,024 bytes); a blank cell leaves the stored
value unchanged; an account feed has `accountId` (lowercase, no spaces), `attribute:name`
and `attribute:<name>`; a segment-delta feed has `userId` or identity columns,
`segmentId` (of an existing segment) and `updateType` `Add` or `Remove`. A file fails, and
nothing of it is applied, when more than 10 % of its rows error; otherwise its good rows
apply and its bad rows are reported.

Choices where the docs are silent (strict reading):
- File-level failures (nothing applied): empty file, a UTF-8 byte-order mark, bytes that
  are not UTF-8, malformed quoting, an unknown, duplicate or missing column, too many
  columns, or new attributes past the dataset's 100-attribute limit.
- A blank cell is the empty string. A cell of only whitespace is a row error (leave the
  cell empty to keep the stored value).
- Row errors: wrong number of cells, a userId of the wrong length, an unknown or
  ambiguous user (feeds never create users), a value the attribute refuses, an account
  id that is not lowercase or has spaces, an unknown account without `attribute:name`
  (with a name the account is created), an unknown segment, another `updateType`.
- With a `userId` column, identity columns are ordinary values to store on that user.
- Errors carry `row` (1 = first row after the header) and `line` (the physical line on
  which the record ends). At most 1,000 errors are listed; `error_count` has them all.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from emulators.personalization.attributes import (
    IDENTITY_ATTRIBUTES,
    AttributeCatalog,
    InvalidAttribute,
    check_name,
)
from emulators.personalization.mutations import (
    UnknownIdentity,
    add_membership,
    remove_membership,
    resolve_user,
    update_user,
    upsert_account,
)
from emulators.personalization.store import PersonalizationStore

FEEDS = ("user", "account", "segment-delta")
MAX_ATTRIBUTE_COLUMNS = 50
MAX_IDENTITY_COLUMNS = 5
MAX_ERRORS_LISTED = 1000
USER_ID_LENGTH = (4, 120)
ACCOUNT_ID_MAX_LENGTH = 120
PREFIX = "attribute:"


class FeedFileError(ValueError):
    """The whole file is refused; the message says why and where."""


class RowError(ValueError):
    """One row is refused; the message names the column or value."""


class _TooManyErrors(Exception):
    """Raised inside the transaction so that nothing of a failed file is kept."""


@dataclass
class FeedOutcome:
    rows: int = 0
    applied: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, row: int, line: int, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_LISTED:
            self.errors.append({"row": row, "line": line, "reason": reason})

    @property
    def too_many_errors(self) -> bool:
        return self.error_count * 10 > self.rows


RowApplier = Callable[[list[str], int], None]


def apply_feed(store: PersonalizationStore, feed: str, text: TextIO) -> FeedOutcome:
    """Apply the file in one transaction; raise FeedFileError when it fails as a whole.

    When more than 10 % of the rows error, the transaction is rolled back and a
    FeedOutcome with `applied == 0` is returned (its `too_many_errors` is true).
    """
    outcome = FeedOutcome()
    reader = csv.reader(text, strict=True)
    try:
        with store.write() as conn:
            header = _header(reader)
            apply_row = _BUILDERS[feed](conn, header)
            now = int(time.time() * 1000)
            for cells in reader:
                outcome.rows += 1
                try:
                    _check_width(cells, header)
                    apply_row(cells, now)
                except (RowError, InvalidAttribute, UnknownIdentity) as error:
                    outcome.add_error(outcome.rows, reader.line_num, str(error))
                else:
                    outcome.applied += 1
            if outcome.too_many_errors:
                raise _TooManyErrors
    except _TooManyErrors:
        outcome.applied = 0
    except UnicodeDecodeError as error:
        raise FeedFileError(
            f"not valid UTF-8 after line {reader.line_num} (byte {error.start} of the "
            "chunk being read); save the file as UTF-8") from error
    except csv.Error as error:
        raise FeedFileError(f"malformed CSV at line {reader.line_num}: {error}") from error
    return outcome


def _header(reader: Any) -> list[str]:
    header = next(reader, None)
    if not header:
        raise FeedFileError("the file is empty: expected a header row")
    if header[0].startswith("\ufeff"):
        raise FeedFileError("the file starts with a UTF-8 byte-order mark; write UTF-8 "
                            "without BOM")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise FeedFileError(f"duplicate column {duplicates[0]!r} in the header")
    return header


def _check_width(cells: list[str], header: list[str]) -> None:
    if len(cells) != len(header):
        raise RowError(f"row has {len(cells)} cells, the header has {len(header)}")


def _cell(cells: list[str], index: int, column: str) -> str | None:
    """The cell's value, None when blank; whitespace-only cells are refused."""
    value = cells[index]
    if value == "":
        return None
    if not value.strip():
        raise RowError(f"{column} holds only whitespace; leave the cell empty to keep the "
                       "stored value")
    return value


@dataclass
class _Columns:
    user_id: int | None = None
    identities: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, int] = field(default_factory=dict)
    named: dict[str, int] = field(default_factory=dict)


def _columns(header: list[str], named: tuple[str, ...], *, attributes: bool,
             feed: str) -> _Columns:
    """Split a header into id/identity/attribute/named columns; refuse anything else."""
    columns = _Columns()
    for index, name in enumerate(header):
        if name == "userId" and "userId" in named:
            columns.user_id = index
        elif name in named:
            columns.named[name] = index
        elif name.startswith(PREFIX):
            attribute = name[len(PREFIX):]
            try:
                check_name(attribute)
            except InvalidAttribute as error:
                raise FeedFileError(f"column {name!r}: {error}") from error
            if attribute in IDENTITY_ATTRIBUTES and "userId" in named:
                columns.identities[attribute] = index
            elif attributes:
                columns.attributes[attribute] = index
            else:
                raise FeedFileError(f"column {name!r} is not allowed in a {feed} feed")
        else:
            allowed = ", ".join([*named, f"{PREFIX}<name>" if attributes else
                                 f"{PREFIX}<identity>"])
            raise FeedFileError(f"unknown column {name!r}; a {feed} feed has {allowed}")
    missing = [name for name in named if name != "userId" and name not in columns.named]
    if missing:
        raise FeedFileError(f"missing column {missing[0]!r} in the {feed} feed header")
    if "userId" in named and columns.user_id is None and not columns.identities:
        raise FeedFileError(
            f"a {feed} feed needs a userId column or an identity column "
            f"({', '.join(PREFIX + name for name in IDENTITY_ATTRIBUTES)})")
    if len(columns.identities) > MAX_IDENTITY_COLUMNS:
        raise FeedFileError(f"{len(columns.identities)} identity columns; the limit is "
                            f"{MAX_IDENTITY_COLUMNS}")
    attribute_columns = len(columns.attributes) + len(columns.identities)
    if attribute_columns > MAX_ATTRIBUTE_COLUMNS:
        raise FeedFileError(f"{attribute_columns} attribute columns; the limit is "
                            f"{MAX_ATTRIBUTE_COLUMNS} per feed")
    return columns


def _find_user(conn: sqlite3.Connection, cells: list[str], columns: _Columns) -> str:
    if columns.user_id is not None:
        user_id = _cell(cells, columns.user_id, "userId")
        low, high = USER_ID_LENGTH
        if user_id is None or not low <= len(user_id) <= high:
            raise RowError(f"userId must be {low} to {high} characters, got {user_id or ''!r}")
        return resolve_user(conn, user_id, {})
    identities = {name: value for name, index in columns.identities.items()
                  if (value := _cell(cells, index, PREFIX + name)) is not None}
    if not identities:
        raise RowError("every identity column is blank: give at least one identity value")
    return resolve_user(conn, None, identities)


def _user_feed(conn: sqlite3.Connection, header: list[str]) -> RowApplier:
    columns = _columns(header, ("userId",), attributes=True, feed="user")
    catalog = AttributeCatalog(conn, "user")
    try:
        catalog.declare_columns([*columns.identities, *columns.attributes])
    except InvalidAttribute as error:
        raise FeedFileError(str(error)) from error
    values = {**columns.identities, **columns.attributes}

    def apply(cells: list[str], now: int) -> None:
        user_id = _find_user(conn, cells, columns)
        changes = {name: catalog.accept_text(name, value) for name, index in values.items()
                   if (value := _cell(cells, index, PREFIX + name)) is not None}
        update_user(conn, user_id, changes, now)

    return apply


def _account_feed(conn: sqlite3.Connection, header: list[str]) -> RowApplier:
    columns = _columns(header, ("accountId",), attributes=True, feed="account")
    name_index = columns.attributes.pop("name", None)
    catalog = AttributeCatalog(conn, "account")
    try:
        catalog.declare_columns(list(columns.attributes))
    except InvalidAttribute as error:
        raise FeedFileError(str(error)) from error

    def apply(cells: list[str], now: int) -> None:
        account_id = _cell(cells, columns.named["accountId"], "accountId")
        if account_id is None:
            raise RowError("accountId is blank")
        if account_id != account_id.lower() or any(ch.isspace() for ch in account_id):
            raise RowError(f"accountId {account_id!r} must be lowercase without spaces")
        if len(account_id) > ACCOUNT_ID_MAX_LENGTH:
            raise RowError(f"accountId is longer than {ACCOUNT_ID_MAX_LENGTH} characters")
        name = None if name_index is None else _cell(cells, name_index, "attribute:name")
        changes = {key: catalog.accept_text(key, value)
                   for key, index in columns.attributes.items()
                   if (value := _cell(cells, index, PREFIX + key)) is not None}
        try:
            upsert_account(conn, account_id, changes, now, name=name)
        except UnknownIdentity as error:
            raise RowError(f"{error}; give attribute:name to create it") from error

    return apply


def _segment_delta_feed(conn: sqlite3.Connection, header: list[str]) -> RowApplier:
    columns = _columns(header, ("userId", "segmentId", "updateType"), attributes=False,
                       feed="segment-delta")
    segments = {row[0] for row in conn.execute("SELECT id FROM segments")}

    def apply(cells: list[str], now: int) -> None:
        segment_id = _cell(cells, columns.named["segmentId"], "segmentId")
        if segment_id not in segments:
            raise RowError(f"segment {segment_id or ''!r} does not exist; create it in "
                           "Personalization first")
        update_type = cells[columns.named["updateType"]]
        if update_type not in ("Add", "Remove"):
            raise RowError(f"updateType must be Add or Remove, got {update_type!r}")
        user_id = _find_user(conn, cells, columns)
        if update_type == "Add":
            add_membership(conn, user_id, segment_id, now)
        else:
            remove_membership(conn, user_id, segment_id)

    return apply


_BUILDERS: dict[str, Callable[[sqlite3.Connection, list[str]], RowApplier]] = {
    "user": _user_feed,
    "account": _account_feed,
    "segment-delta": _segment_delta_feed,
}
