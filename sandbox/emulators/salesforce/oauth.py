"""OAuth 2.0 token endpoint: client credentials, JWT bearer, refresh token, password.

Error codes and descriptions are Salesforce's own, because the connector turns them into
actionable messages and must be tested against the real wording.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
from flask import Blueprint, Response, jsonify, request

from emulators import defaults
from emulators.salesforce.state import current

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PUBLIC_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_MAX_LIFETIME_SECONDS = 180
JWT_CLOCK_LEEWAY_SECONDS = 2
# Appended to the password in the username-password flow when the org demands it.

blueprint = Blueprint("oauth", __name__)


class OAuthError(Exception):
    """A refused token request: `error` and `error_description` as Salesforce sends them."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@blueprint.errorhandler(OAuthError)
def _refused(exc: OAuthError) -> tuple[Response, int]:
    answer = jsonify({"error": exc.error, "error_description": exc.description})
    answer.headers["Cache-Control"] = "no-store"
    return answer, 400


@blueprint.post("/services/oauth2/token")
def token() -> Response:
    form = request.form
    grant = form.get("grant_type", "")
    if grant == "client_credentials":
        _check_client(*_client_credentials())
    elif grant == JWT_GRANT:
        _check_assertion(form.get("assertion", ""))
    elif grant == "refresh_token":
        _check_refresh(form)
    elif grant == "password":
        _check_client(form.get("client_id", ""), form.get("client_secret", ""))
        _check_user(form.get("username", ""), form.get("password", ""))
    else:
        raise OAuthError("unsupported_grant_type", "grant type not supported")
    reason = current().sessions.revoked_reason
    if reason is not None:
        raise OAuthError("invalid_grant", reason)
    answer = jsonify(_grant_body(current().sessions.issue()))
    answer.headers["Cache-Control"] = "no-store"
    return answer


def _grant_body(access_token: str) -> dict[str, Any]:
    own_url = request.host_url.rstrip("/")
    identity = f"{own_url}/id/{defaults.SF_ORG_ID}/{defaults.SF_USER_ID}"
    issued_at = str(int(time.time() * 1000))
    digest = hmac.new(defaults.SF_CLIENT_SECRET.encode(), (identity + issued_at).encode(),
                      hashlib.sha256).digest()
    return {
        "access_token": access_token,
        "instance_url": own_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": base64.b64encode(digest).decode(),
    }


def _client_credentials() -> tuple[str, str]:
    """Client id and secret from HTTP Basic, else from the form body."""
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        return basic.username or "", basic.password or ""
    return request.form.get("client_id", ""), request.form.get("client_secret", "")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _check_client(client_id: str, client_secret: str) -> None:
    if not (_same(client_id, defaults.SF_CLIENT_ID)
            and _same(client_secret, defaults.SF_CLIENT_SECRET)):
        raise OAuthError("invalid_client", "invalid client credentials")


def _check_user(username: str, password: str) -> None:
    good_password = (_same(password, defaults.SF_PASSWORD)
                     or _same(password, defaults.SF_PASSWORD + defaults.SF_SECURITY_TOKEN))
    if not (_same(username, defaults.SF_USERNAME) and good_password):
        raise OAuthError("invalid_grant", "authentication failure")


def _check_refresh(form: Any) -> None:
    if not _same(form.get("client_id", ""), defaults.SF_CLIENT_ID):
        raise OAuthError("invalid_client_id", "client identifier invalid")
    secret = form.get("client_secret")
    if secret is not None and not _same(secret, defaults.SF_CLIENT_SECRET):
        raise OAuthError("invalid_client", "invalid client credentials")
    if not _same(form.get("refresh_token", ""), defaults.SF_REFRESH_TOKEN):
        raise OAuthError("invalid_grant", "expired access/refresh token")


def _check_assertion(assertion: str) -> None:
    """Verify an RS256 JWT against the trusted certificate, claim by claim."""
    try:
        header = jwt.get_unverified_header(assertion)
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "invalid assertion")
        claims = jwt.decode(
            assertion, current().jwt_key, algorithms=["RS256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iss": False,
                     "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    if claims.get("iss") != defaults.SF_CLIENT_ID:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    accepted = {*PUBLIC_AUDIENCES, request.host_url.rstrip("/")}
    if not any(isinstance(aud, str) and aud.rstrip("/") in accepted for aud in audiences):
        raise OAuthError("invalid_grant", "audience is invalid")
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise OAuthError("invalid_grant", "invalid assertion")
    now = time.time()
    if expires <= now:
        raise OAuthError("invalid_grant", "expired authorization code")
    if expires > now + JWT_MAX_LIFETIME_SECONDS + JWT_CLOCK_LEEWAY_SECONDS:
        raise OAuthError("invalid_grant", "invalid assertion")
    if claims.get("sub") != defaults.SF_USERNAME:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
