"""REST API under `/services/data/vNN.N/`: query, describe, sObject rows, limits.

Errors are a JSON array of `{"message", "errorCode"}` with Salesforce's statuses, which is
what simple-salesforce and the connector map to their exception types.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from emulators.salesforce.access import Refusal, admit
from emulators.salesforce.cursors import (
    MAX_BATCH,
    QueryRefused,
    check_length,
    clamp_batch_size,
)
from emulators.salesforce.records import dumps, rest_record
from emulators.salesforce.soql_text import quote
from emulators.salesforce.state import current
from emulators.salesforce.store import SoqlError
from emulators.salesforce.versions import SUPPORTED, parse_version

blueprint = Blueprint("rest", __name__, url_prefix="/services/data")

NOT_FOUND_MESSAGE = "The requested resource does not exist"
_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


class RestError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 fields: list[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields


def reply(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def error_reply(status: int, code: str, message: str, fields: list[str] | None = None
                 ) -> Response:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return reply([item], status)


@blueprint.errorhandler(RestError)
def _rest_error(exc: RestError) -> Response:
    return error_reply(exc.status, exc.code, exc.message, exc.fields)


@blueprint.errorhandler(Refusal)
def _refused(exc: Refusal) -> Response:
    return error_reply(exc.status, exc.code, exc.message)


@blueprint.errorhandler(QueryRefused)
@blueprint.errorhandler(SoqlError)
def _query_refused(exc: QueryRefused | SoqlError) -> Response:
    status = 404 if exc.code == "NOT_FOUND" else 400
    message = NOT_FOUND_MESSAGE if exc.code == "NOT_FOUND" else exc.message
    return error_reply(status, exc.code, message)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") and token.strip() else None


def enter(version: str, *, always_serve: bool = False) -> str:
    """Validate the version, the session and the allowance; returns the bare version.

    Public because Bulk API 2.0 (`bulk2_query`) lives under the same REST base and
    refuses calls exactly as REST does.
    """
    bare = parse_version(version, prefix="v")
    if bare is None:
        raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
    admit(_bearer(), always_serve=always_serve)
    return bare


@blueprint.get("/", strict_slashes=False)
def versions() -> Response:
    return reply([{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v}
                  for v in SUPPORTED])


@blueprint.get("/<version>", strict_slashes=False)
def resources(version: str) -> Response:
    bare = enter(version)
    base = f"/services/data/v{bare}"
    return reply({name: f"{base}/{name}" for name in ("limits", "query", "queryAll",
                                                      "sobjects")})


@blueprint.get("/<version>/limits", strict_slashes=False)
def limits(version: str) -> Response:
    enter(version, always_serve=True)
    return reply(current().limits.as_json())


def _batch_size_option() -> int | None:
    """`Sforce-Query-Options: batchSize=N`."""
    for part in re.split(r"[;,]", request.headers.get("Sforce-Query-Options", "")):
        key, _, value = part.partition("=")
        if key.strip() == "batchSize" and value.strip().isdigit():
            return int(value.strip())
    return None


def _query_reply(page: Any, bare: str, endpoint: str) -> Response:
    types = current().relationship_types
    body: dict[str, Any] = {"totalSize": page.total_size, "done": page.done}
    if page.next_locator:
        body["nextRecordsUrl"] = f"/services/data/v{bare}/{endpoint}/{page.next_locator}"
    body["records"] = [rest_record(row, page.sobject, bare, types) for row in page.records]
    return reply(body)


def _first_page(version: str, endpoint: str) -> Response:
    bare = enter(version)
    soql = request.args.get("q")
    if not soql:
        raise RestError(400, "MALFORMED_QUERY", "A query string has to be specified")
    check_length(soql)
    state = current()
    cursor = state.store.query(soql, include_deleted=endpoint == "queryAll")
    page = state.cursors.first_page(cursor, clamp_batch_size(_batch_size_option(), MAX_BATCH))
    return _query_reply(page, bare, endpoint)


def _next_page(version: str, locator: str, endpoint: str) -> Response:
    bare = enter(version)
    requested = _batch_size_option()
    page = current().cursors.next_page(
        locator, None if requested is None else clamp_batch_size(requested, MAX_BATCH))
    return _query_reply(page, bare, endpoint)


@blueprint.get("/<version>/query", strict_slashes=False)
def query(version: str) -> Response:
    return _first_page(version, "query")


@blueprint.get("/<version>/queryAll", strict_slashes=False)
def query_all(version: str) -> Response:
    return _first_page(version, "queryAll")


@blueprint.get("/<version>/query/<locator>")
def query_more(version: str, locator: str) -> Response:
    return _next_page(version, locator, "query")


@blueprint.get("/<version>/queryAll/<locator>")
def query_all_more(version: str, locator: str) -> Response:
    return _next_page(version, locator, "queryAll")


@blueprint.get("/<version>/sobjects", strict_slashes=False)
def describe_global(version: str) -> Response:
    enter(version)
    return reply(current().store.describe_global())


@blueprint.get("/<version>/sobjects/<sobject>/describe", strict_slashes=False)
def describe(version: str, sobject: str) -> Response:
    enter(version)
    return reply(current().store.describe(sobject))


@blueprint.get("/<version>/sobjects/<sobject>", strict_slashes=False)
def basic_info(version: str, sobject: str) -> Response:
    bare = enter(version)
    full = current().store.describe(sobject)
    keys = ("name", "label", "keyPrefix", "createable", "updateable", "deletable",
            "queryable", "custom")
    summary = {key: full[key] for key in keys if key in full}
    summary["urls"] = {"sobject": f"/services/data/v{bare}/sobjects/{sobject}",
                       "describe": f"/services/data/v{bare}/sobjects/{sobject}/describe"}
    return reply({"objectDescribe": summary, "recentItems": []})


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise RestError(400, "JSON_PARSER_ERROR",
                        "The request body must be a JSON object of field values")
    body.pop("attributes", None)
    return body


def _apply_one(operation: str, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
    """Run one record through the store's DML; an error row becomes a REST error."""
    state = current()
    state.store.describe(sobject)  # unknown object -> NOT_FOUND
    result = state.store.apply(operation, sobject, [record])[0]
    if not result.get("success"):
        errors = result.get("errors") or [{}]
        first = errors[0]
        code = first.get("statusCode", "UNKNOWN_EXCEPTION")
        if code in ("INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED") and operation != "insert":
            raise RestError(404, code if code == "ENTITY_IS_DELETED" else "NOT_FOUND",
                            "entity is deleted" if code == "ENTITY_IS_DELETED"
                            else NOT_FOUND_MESSAGE)
        raise RestError(400, code, first.get("message", ""), first.get("fields", []))
    return result


@blueprint.post("/<version>/sobjects/<sobject>", strict_slashes=False)
def create(version: str, sobject: str) -> Response:
    enter(version)
    body = _json_object()
    if "Id" in body:
        raise RestError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                        "Unable to create/update fields: Id. Please check the security "
                        "settings of this field and verify that it is read/write for your "
                        "profile or permission set.", ["Id"])
    result = _apply_one("insert", sobject, body)
    return reply({"id": result["id"], "success": True, "errors": []}, 201)


def _checked_id(record_id: str) -> str:
    if not _ID.match(record_id):
        raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
    return record_id


@blueprint.get("/<version>/sobjects/<sobject>/<record_id>")
def read(version: str, sobject: str, record_id: str) -> Response:
    bare = enter(version)
    state = current()
    describe = state.store.describe(sobject)
    known = {field["name"].lower(): field["name"] for field in describe["fields"]}
    names = list(known.values())
    wanted = request.args.get("fields")
    if wanted:
        names = [name.strip() for name in wanted.split(",") if name.strip()]
        unknown = [name for name in names if name.lower() not in known]
        if unknown:
            raise RestError(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject "
                                                  f"of type {sobject}")
    # Object and field names were checked against describe; the id is a quoted literal.
    soql = " ".join(["SELECT", ", ".join(names), "FROM", describe["name"], "WHERE Id =",
                     quote(_checked_id(record_id))])
    rows = state.store.query(soql).fetch(1)
    if not rows:
        raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
    return reply(rest_record(rows[0], sobject, bare, state.relationship_types))


@blueprint.patch("/<version>/sobjects/<sobject>/<record_id>")
def update(version: str, sobject: str, record_id: str) -> Response:
    enter(version)
    body = _json_object()
    body.pop("Id", None)
    _apply_one("update", sobject, {"Id": _checked_id(record_id), **body})
    return Response(status=204)


@blueprint.delete("/<version>/sobjects/<sobject>/<record_id>")
def delete(version: str, sobject: str, record_id: str) -> Response:
    enter(version)
    _apply_one("delete", sobject, {"Id": _checked_id(record_id)})
    return Response(status=204)


@blueprint.route("/<version>/<path:rest>", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
def unknown(version: str, rest: str) -> Response:
    enter(version)
    raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
