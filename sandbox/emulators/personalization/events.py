"""The Event API: `POST /api2/authevent/{dataset}` applies user and account attributes.

Choices where the docs are silent (strict reading):
- Every event outcome is HTTP 200 with an `errorCode` in the body (0 = applied), so a
  client must read the body, not only the status; auth problems stay 401/403/404.
- errorCode 5 ("invalid event") for: a body that is not a JSON object sent as
  application/json, a missing or empty `action`, a missing `user` object, an attribute the
  dataset refuses (see attributes.py), an unknown or ambiguous identity (see mutations.py),
  or an unknown `account.id` without an `account.attributes.name` to create it. Nothing of
  a refused event is applied.
- errorCode 3 ("busy") when injected through the `busy_next` / `busy_rate` faults, and
  when the dataset stays write-locked (a large feed file being applied) for a minute.
- `account` links the user to that account. Unless `flags.nonInteractive` is true the event
  counts as activity and moves the user's `lastActivity` to now.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request

from emulators.personalization.attributes import (
    IDENTITY_ATTRIBUTES,
    AttributeCatalog,
    InvalidAttribute,
)
from emulators.personalization.auth import SEND_EVENTS, require
from emulators.personalization.db import is_locked
from emulators.personalization.mutations import (
    UnknownIdentity,
    account_row,
    resolve_user,
    update_user,
    upsert_account,
)
from emulators.personalization.state import current

BUSY = 3
INVALID_EVENT = 5

bp = Blueprint("events", __name__)


class InvalidEvent(ValueError):
    """The payload is not an event the API accepts."""


@dataclass
class Event:
    user_id: str | None
    user_attributes: dict[str, Any]
    account_id: str | None = None
    account_attributes: dict[str, Any] = field(default_factory=dict)
    interactive: bool = True

    @property
    def identities(self) -> dict[str, str]:
        return {name: value for name, value in self.user_attributes.items()
                if name in IDENTITY_ATTRIBUTES and isinstance(value, str) and value}


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where} must be a JSON object")
    return value


def _non_empty_string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{where} must be a non-empty string")
    return value


def parse_event(body: Any) -> Event:
    body = _object(body, "the request body (sent as application/json)")
    _non_empty_string(body.get("action"), "action")
    user = _object(body.get("user"), "user")
    user_id = user.get("id")
    if user_id is not None:
        _non_empty_string(user_id, "user.id")
    event = Event(user_id, _object(user.get("attributes", {}), "user.attributes"))
    if "account" in body:
        account = _object(body["account"], "account")
        account_id = _non_empty_string(account.get("id"), "account.id")
        if account_id != account_id.lower() or any(ch.isspace() for ch in account_id):
            raise InvalidEvent(f"account.id {account_id!r} must be lowercase without spaces")
        event.account_id = account_id
        event.account_attributes = _object(account.get("attributes", {}), "account.attributes")
    flags = _object(body.get("flags", {}), "flags")
    event.interactive = flags.get("nonInteractive") is not True
    if user_id is None and not event.identities:
        raise InvalidEvent("user needs an id or an identity attribute "
                           f"({', '.join(IDENTITY_ATTRIBUTES)})")
    return event


def apply_event(conn: sqlite3.Connection, event: Event, now: int) -> str:
    """Apply one event inside the caller's transaction; returns the user id."""
    user_id = resolve_user(conn, event.user_id, event.identities)
    users = AttributeCatalog(conn, "user")
    changes = {name: users.accept_json(name, value)
               for name, value in event.user_attributes.items()}
    link = None
    if event.account_id is not None:
        accounts = AttributeCatalog(conn, "account")
        account_changes = {name: accounts.accept_json(name, value)
                           for name, value in event.account_attributes.items() if name != "name"}
        name = event.account_attributes.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidEvent("account.attributes.name must be a string")
        upsert_account(conn, event.account_id, account_changes, now, name=name)
        row = account_row(conn, event.account_id)
        link = (event.account_id, row["name"] if row is not None else None)
    update_user(conn, user_id, changes, now, account=link, activity=event.interactive)
    return user_id


def _reply(code: int, message: str) -> Response:
    return jsonify({"errorCode": code, "errorMessage": message})


@bp.post("/api2/authevent/<dataset>")
def authevent(dataset: str) -> Response:
    require(request, dataset, SEND_EVENTS)
    state = current()
    if state.faults.event_busy():
        return _reply(BUSY, "busy: the dataset cannot take this event now; retry later")
    try:
        event = parse_event(request.get_json(silent=True))
        with state.store.write() as conn:
            user_id = apply_event(conn, event, int(time.time() * 1000))
    except (InvalidEvent, InvalidAttribute, UnknownIdentity) as error:
        return _reply(INVALID_EVENT, f"invalid event: {error}")
    except sqlite3.OperationalError as error:
        if not is_locked(error):
            raise
        return _reply(BUSY, "busy: the dataset is applying a feed file; retry later")
    return jsonify({"errorCode": 0, "userId": user_id})
