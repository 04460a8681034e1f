"""Reading out: `users.json`, `users.csv`, `accounts.json` and the single-user lookup.

Choices where the docs are silent (strict reading):
- `pageSize` defaults to 50 and may be 1 to 5,000; `page` starts at 0. Anything else, and
  any parameter an endpoint does not know, is a 400 naming the parameter.
- `filter` (users only) takes a segment id or exact name; a value naming no segment is a 400.
- `start`/`end` are epoch milliseconds with start <= end; they only frame engagement
  statistics, which the sandbox serves as stored, so they do not change the result set.
- `includeGeo` is `true` or `false`; `true` adds `geo` (null when unknown).
- Order is by id, so pages are stable while data does not change; a page past the end is
  the empty array that ends paging.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, NoReturn

from flask import Blueprint, Response, abort, jsonify, make_response, request

from emulators.personalization.auth import ACCESS_API, require
from emulators.personalization.shapes import (
    CSV_FIXED_COLUMNS,
    account_object,
    user_csv_row,
    user_object,
)
from emulators.personalization.state import current

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 5000

USERS_PARAMS = frozenset({"page", "pageSize", "filter", "start", "end", "includeGeo"})
ACCOUNTS_PARAMS = frozenset({"page", "pageSize", "start", "end"})
LOOKUP_PARAMS = frozenset({"includeGeo"})

bp = Blueprint("exports", __name__)


def _bad_request(message: str) -> NoReturn:
    abort(make_response(jsonify({"error": "Bad Request", "message": message}), 400))


def _check_params(known: frozenset[str]) -> None:
    for name in request.args:
        if name not in known:
            _bad_request(f"unknown parameter {name!r}; this endpoint accepts "
                         f"{', '.join(sorted(known))}")


def _optional_int(name: str, minimum: int, maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.lstrip("-").isdigit():
        _bad_request(f"{name} must be an integer, got {raw!r}")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum:,}" if maximum is not None else ""
        _bad_request(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


def _paging() -> tuple[int, int]:
    page = _optional_int("page", 0)
    size = _optional_int("pageSize", 1, MAX_PAGE_SIZE)
    start = _optional_int("start", 0)
    end = _optional_int("end", 0)
    if start is not None and end is not None and start > end:
        _bad_request(f"start ({start}) must not be after end ({end})")
    return (page or 0), (DEFAULT_PAGE_SIZE if size is None else size)


def _include_geo() -> bool:
    raw = request.args.get("includeGeo", "false")
    if raw not in ("true", "false"):
        _bad_request(f"includeGeo must be true or false, got {raw!r}")
    return raw == "true"


def _segment_filter() -> str | None:
    key = request.args.get("filter")
    if key is None:
        return None
    segment_id = current().store.segment_by_id_or_name(key)
    if segment_id is None:
        _bad_request(f"filter {key!r} names no segment of this dataset (give a segment id or name)")
    return segment_id


def _json(payload: Any, *, escaped: bool = False) -> Response:
    """UTF-8 JSON; a lone surrogate goes out as a JSON escape (`escaped`) or as its raw bytes
    (not UTF-8), as a server that encodes what it holds would send it."""
    body = json.dumps(payload, ensure_ascii=escaped, separators=(",", ":"))
    return Response(body.encode("utf-8", errors="surrogatepass"), mimetype="application/json")


def _cut_emojis(users: list[dict[str, Any]], page: int, size: int) -> bool:
    """The `invalid_text_every` fault; whether this page's are to be sent escaped."""
    every = current().faults.settings.invalid_text_every
    if not every:
        return False
    escaped = False
    for offset, user in enumerate(users):
        position = page * size + offset + 1
        if position % every == 0:
            user["displayName"] = f"{user.get('displayName') or ''} \ud83d"
            escaped = (position // every) % 2 == 1
    return escaped


@bp.get("/api/dataset/<dataset>/users.json")
def users_json(dataset: str) -> Response:
    require(request, dataset, ACCESS_API)
    _check_params(USERS_PARAMS)
    page, size = _paging()
    include_geo = _include_geo()
    rows = current().store.user_page(page, size, _segment_filter())
    users = [user_object(row, include_geo=include_geo) for row in rows]
    return _json(users, escaped=_cut_emojis(users, page, size))


@bp.get("/api/dataset/<dataset>/users.csv")
def users_csv(dataset: str) -> Response:
    require(request, dataset, ACCESS_API)
    _check_params(USERS_PARAMS - {"includeGeo"})
    page, size = _paging()
    store = current().store
    rows = store.user_page(page, size, _segment_filter())
    names = [name for name in store.attribute_names("user") if name != "emailAddress"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*CSV_FIXED_COLUMNS, *(f"attribute:{name}" for name in names)])
    writer.writerows(user_csv_row(row, names) for row in rows)
    return Response(out.getvalue(), mimetype="text/csv")


@bp.get("/api/dataset/<dataset>/accounts.json")
def accounts_json(dataset: str) -> Response:
    require(request, dataset, ACCESS_API)
    _check_params(ACCOUNTS_PARAMS)
    page, size = _paging()
    return _json([account_object(row) for row in current().store.account_page(page, size)])


@bp.get("/api/dataset/<dataset>/user/<path:user_id>")
def user_lookup(dataset: str, user_id: str) -> Response:
    require(request, dataset, ACCESS_API)
    _check_params(LOOKUP_PARAMS)
    include_geo = _include_geo()
    row = current().store.user(user_id)
    if row is None:
        abort(make_response(jsonify(
            {"error": "Not Found", "message": f"user {user_id!r} not found"}), 404))
    return _json(user_object(row, include_geo=include_geo, lookup=True))
