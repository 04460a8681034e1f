"""`/__admin/` endpoints: inspect and steer the sandbox. Never part of the emulated API.

No authentication, no ledger entries, no API allowance: tests and the `sandbox` CLI use
them to seed data, read outcomes and inject failures.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from emulators.salesforce.faults import parse_settings
from emulators.salesforce.ledger import DEFAULT_LIMIT
from emulators.salesforce.state import current
from emulators.salesforce.store import SoqlError

blueprint = Blueprint("admin", __name__, url_prefix="/__admin")
FIELD_ACCESS = ("edit", "read", "hidden")


class AdminError(Exception):
    """A bad admin request; the message says which key or value to fix."""


@blueprint.errorhandler(AdminError)
@blueprint.errorhandler(ValueError)
def _bad_request(exc: Exception) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), 400


@blueprint.errorhandler(SoqlError)
def _soql_error(exc: SoqlError) -> tuple[Response, int]:
    return jsonify({"error": f"{exc.code}: {exc.message}"}), 400


def _json(kind: type) -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, kind):
        raise AdminError(f"the request body must be a JSON {kind.__name__}")
    return body


@blueprint.get("/health")
def health() -> Response:
    return jsonify({"ok": True})


@blueprint.get("/status")
def status() -> Response:
    state = current()
    return jsonify({
        "counts": state.store.counts(),
        "ledger": state.ledger.summary(),
        "limits": state.limits.as_json(),
        "faults": state.faults.as_json(),
        "revoked": state.sessions.revoked_reason,
        "bulk": state.jobs.summary(),
    })


@blueprint.post("/reset")
def reset() -> Response:
    current().reset()
    return jsonify({"ok": True})


@blueprint.get("/ledger")
def ledger() -> Response:
    limit = request.args.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit():
        raise AdminError(f"limit must be a non-negative integer, got {limit!r}")
    return jsonify(current().ledger.report(int(limit)))


@blueprint.delete("/ledger")
def clear_ledger() -> Response:
    current().ledger.clear()
    return jsonify({"ok": True})


@blueprint.post("/faults")
def faults() -> Response:
    state = current()
    state.faults.configure(parse_settings(_json(dict)))
    return jsonify(state.faults.as_json())


@blueprint.post("/records/<sobject>")
def insert_records(sobject: str) -> Response:
    records = _json(list)
    if not all(isinstance(record, dict) for record in records):
        raise AdminError("every record must be a JSON object")
    return jsonify(current().store.insert_raw(sobject, records))


@blueprint.get("/records/<sobject>")
def read_records(sobject: str) -> Response:
    fields = request.args.get("fields")
    names = [name.strip() for name in fields.split(",") if name.strip()] if fields else None
    return jsonify(current().store.records(sobject, request.args.get("where"), names))


@blueprint.post("/field-access")
def field_access() -> Response:
    body = _json(dict)
    missing = [key for key in ("object", "field", "access") if not body.get(key)]
    if missing:
        raise AdminError(f"field-access needs {', '.join(missing)}")
    if body["access"] not in FIELD_ACCESS:
        raise AdminError(f"access must be one of {', '.join(FIELD_ACCESS)}")
    state = current()
    state.store.set_field_access(body["object"], body["field"], body["access"])
    state.relationship_types.clear()
    return jsonify({"ok": True})


@blueprint.post("/sessions/expire")
def expire_sessions() -> Response:
    return jsonify({"expired": current().sessions.expire_all()})


@blueprint.post("/revoke")
def revoke() -> Response:
    body = _json(dict)
    if "reason" not in body:
        raise AdminError('revoke needs "reason" (a description such as "inactive user", '
                         "or null to lift the revocation)")
    reason = body["reason"]
    if reason is not None and (not isinstance(reason, str) or not reason):
        raise AdminError("reason must be a non-empty string or null")
    current().sessions.revoke(reason)
    return jsonify({"revoked": reason})


@blueprint.post("/limits")
def limits() -> Response:
    state = current()
    state.limits.set_remaining(_json(dict))
    return jsonify(state.limits.as_json())
