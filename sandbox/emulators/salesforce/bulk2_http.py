"""What Bulk API 2.0's query and ingest endpoints check alike in a request.

Both live under `/services/data/vXX.X/jobs/...`, answer REST's error shape and take JSON job
definitions whose enumerated properties Salesforce refuses with `INVALIDJOB`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import request

from emulators.salesforce.rest import NOT_FOUND_MESSAGE, RestError, enter


def enter_version(version: str, first: int) -> str:
    """REST's session and allowance checks, then an API version from `first` on."""
    bare = enter(version)
    if int(bare.split(".", 1)[0]) < first:
        raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
    return bare


def json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise RestError(400, "JSON_PARSER_ERROR",
                        "The request body must be a JSON object (Content-Type: "
                        "application/json)")
    return body


def choice(body: dict[str, Any], name: str, allowed: Sequence[str], default: str | None) -> str:
    value = body.get(name, default)
    if value not in allowed:
        raise RestError(400, "INVALIDJOB", f"Invalid {name} {value!r}: use one of "
                                           f"{', '.join(allowed)}")
    return str(value)
