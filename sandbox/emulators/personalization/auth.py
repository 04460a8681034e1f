"""API tokens of the emulated account: HTTP Basic, with the flags and dataset limits
Personalization tokens carry, so permission errors can be tested.

Order of checks (the docs are silent; chosen so each answer is unambiguous): bad or missing
credentials → 401 with `WWW-Authenticate: Basic`; unknown dataset → 404; token limited to
other datasets → 403; token without the flag the endpoint needs ("Can access API" for
exports and lookups, "Can send events" for the Event API) → 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import NoReturn

from flask import Request, abort, jsonify, make_response

from emulators import defaults

DATASETS = frozenset({defaults.PZN_DATASET})

ACCESS_API = "Can access API"
SEND_EVENTS = "Can send events"


@dataclass(frozen=True)
class ApiToken:
    key_id: str
    secret: str
    flags: frozenset[str]
    datasets: frozenset[str] | None = None  # None: every dataset


TOKENS = (
    ApiToken(defaults.PZN_API_KEY_ID, defaults.PZN_API_KEY_SECRET,
             frozenset({ACCESS_API, SEND_EVENTS})),
    # Export only: "Can access API" without "Can send events".
    ApiToken("sandbox-export-key-id", "sandbox-export-key-secret", frozenset({ACCESS_API})),
    # Events only: "Can send events" without "Can access API".
    ApiToken("sandbox-events-key-id", "sandbox-events-key-secret", frozenset({SEND_EVENTS})),
    # Both flags, but limited to another dataset.
    ApiToken("sandbox-other-dataset-key-id", "sandbox-other-dataset-key-secret",
             frozenset({ACCESS_API, SEND_EVENTS}), frozenset({"other"})),
)


def _token(request: Request) -> ApiToken | None:
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None:
        return None
    password = (auth.password or "").encode("utf-8")
    for token in TOKENS:
        if hmac.compare_digest(auth.username.encode("utf-8"), token.key_id.encode("utf-8")) \
                and hmac.compare_digest(password, token.secret.encode("utf-8")):
            return token
    return None


def _refuse(status: int, message: str, *, challenge: bool = False) -> NoReturn:
    answer = make_response(jsonify({"error": _REASONS[status], "message": message}), status)
    if challenge:
        answer.headers["WWW-Authenticate"] = 'Basic realm="Personalization API"'
    abort(answer)


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


def require(request: Request, dataset: str, flag: str) -> ApiToken:
    """The request's token, or abort with 401/404/403 as described above."""
    token = _token(request)
    if token is None:
        _refuse(401, "invalid or missing API key: send HTTP Basic with the API Key ID as user "
                     "and the API Secret Key as password", challenge=True)
    if dataset not in DATASETS:
        _refuse(404, f"dataset {dataset!r} does not exist")
    if token.datasets is not None and dataset not in token.datasets:
        _refuse(403, f"this API token is not allowed to use dataset {dataset!r}")
    if flag not in token.flags:
        _refuse(403, f"this API token lacks the permission {flag!r}")
    return token
