"""Administration endpoints (no auth, never part of the emulated API, never in the ledger).

Besides the endpoints of docs/architecture.md, `POST /__admin/accounts` and
`POST /__admin/segments` seed accounts and segments as given, and `GET /__admin/feeds`
takes `?file=<name>` to read one file's results. Seeding endpoints take objects in the
export shape (attributes as a map or as a list) and store them without validation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from emulators.personalization.attributes import type_of
from emulators.personalization.faults import parse_settings
from emulators.personalization.ledger import DEFAULT_LIMIT
from emulators.personalization.shapes import account_object, user_object
from emulators.personalization.state import current
from emulators.personalization.store import IDENTITY_COLUMNS

bp = Blueprint("admin", __name__, url_prefix="/__admin")


def _error(message: str, status: int = 400) -> Response:
    answer = jsonify({"error": message})
    answer.status_code = status
    return answer


def _stream_array(items: Iterable[Any]) -> Response:
    """A JSON array written item by item, so listing millions of rows stays flat in memory."""
    def chunks() -> Iterator[str]:
        yield "["
        for index, item in enumerate(items):
            yield ("," if index else "") + json.dumps(item, ensure_ascii=False)
        yield "]"
    return Response(chunks(), mimetype="application/json")


@bp.get("/health")
def health() -> Response:
    return jsonify({"ok": True})


@bp.get("/status")
def status() -> Response:
    state = current()
    return jsonify({"counts": state.store.counts(), "ledger": state.ledger.summary(),
                    "faults": state.faults.as_json(), "inbound_pending": state.inbound.pending()})


@bp.post("/reset")
def reset() -> Response:
    current().reset()
    return jsonify({"ok": True})


@bp.get("/ledger")
def ledger() -> Response:
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit():
        return _error(f"limit must be a non-negative integer, got {raw!r}")
    return jsonify(current().ledger.report(int(raw)))


@bp.delete("/ledger")
def clear_ledger() -> Response:
    current().ledger.clear()
    return jsonify({"ok": True})


@bp.post("/faults")
def faults() -> Response:
    try:
        settings = parse_settings(request.get_json(silent=True))
    except ValueError as error:
        return _error(str(error))
    state = current()
    state.faults.configure(settings)
    return jsonify(state.faults.as_json())


@bp.get("/users")
def users() -> Response:
    store = current().store
    user_id, email = request.args.get("id"), request.args.get("email")
    if user_id is not None:
        rows: Iterable[dict[str, Any]] = store.users_where("id", user_id)
    elif email is not None:
        rows = store.users_where("email", email)
    else:
        rows = store.iter_users()
    return _stream_array(user_object(row, canonical=True) for row in rows)


@bp.get("/accounts")
def accounts() -> Response:
    return _stream_array(account_object(row) for row in current().store.iter_accounts())


@bp.get("/segments")
def segments() -> Response:
    return jsonify(current().store.segments())


def _stored_attributes(raw: Any, now: int) -> dict[str, list[Any]]:
    if isinstance(raw, list):
        return {item["name"]: [item.get("value"), item.get("updated", now)] for item in raw}
    return {name: [value, now] for name, value in (raw or {}).items()}


def _user_row(user: dict[str, Any], now: int) -> dict[str, Any]:
    attributes = _stored_attributes(user.get("attributes"), now)
    email = user.get("emailAddress")
    if "emailAddress" in attributes:
        email = attributes.pop("emailAddress")[0]
    row: dict[str, Any] = {
        "id": user["id"], "email": email, "display_name": user.get("displayName"),
        "account_id": user.get("accountId"), "account_name": user.get("accountName"),
        "engagement_score": user.get("engagementScore",
                                     (user.get("engagement") or {}).get("score")),
        "first_activity": user.get("firstActivity"), "last_activity": user.get("lastActivity"),
        "attributes": json.dumps(attributes, ensure_ascii=False),
        "geo": json.dumps(user["geo"]) if user.get("geo") is not None else None,
    }
    for name, column in IDENTITY_COLUMNS.items():
        if name != "emailAddress":
            entry = attributes.get(name)
            row[column] = None if entry is None else str(entry[0])
    return row


@bp.post("/users")
def upsert_users() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, list) or not all(
            isinstance(user, dict) and isinstance(user.get("id"), str) for user in body):
        return _error("expected a JSON array of user objects, each with a string id")
    now = int(time.time() * 1000)
    rows = [_user_row(user, now) for user in body]
    memberships, segment_names, types = [], {}, {}
    for user in body:
        for member in user.get("segmentMembership") or []:
            memberships.append((user["id"], member["id"], member.get("joined", now)))
            segment_names.setdefault(member["id"], member.get("name") or member["id"])
    for row in rows:
        for name, entry in json.loads(row["attributes"]).items():
            types.setdefault(name, type_of(entry[0]))
    current().store.upsert_users(rows, memberships, list(segment_names.items()), types)
    return jsonify({"upserted": len(rows)})


@bp.post("/accounts")
def upsert_accounts() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, list) or not all(
            isinstance(account, dict) and isinstance(account.get("id"), str)
            for account in body):
        return _error("expected a JSON array of account objects, each with a string id")
    now = int(time.time() * 1000)
    rows = [{"id": account["id"], "name": account.get("name"), "domain": account.get("domain"),
             "engagement_score": account.get("engagementScore"),
             "last_activity": account.get("lastActivity"),
             "attributes": json.dumps(_stored_attributes(account.get("attributes"), now),
                                      ensure_ascii=False)} for account in body]
    store = current().store
    store.load(accounts=rows)
    store.define_attributes("account", {
        name: type_of(entry[0]) for row in rows
        for name, entry in json.loads(row["attributes"]).items()})
    return jsonify({"upserted": len(rows)})


@bp.post("/segments")
def upsert_segments() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str)
            and isinstance(item.get("name"), str) for item in body):
        return _error('expected a JSON array of {"id": ..., "name": ...} segments')
    current().store.load(segments=[(item["id"], item["name"]) for item in body])
    return jsonify({"upserted": len(body)})


@bp.post("/process-inbound")
def process_inbound() -> Response:
    return jsonify({"processed": current().inbound.process_pending()})


@bp.get("/feeds")
def feeds() -> Response:
    return jsonify({"feeds": current().inbound.results(request.args.get("file"))})
