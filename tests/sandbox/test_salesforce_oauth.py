"""OAuth token endpoint of the Salesforce sandbox: every flow, good and bad, over TLS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from emulators import defaults

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_KEYS = {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


def token_request(sandbox: Any, data: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(f"{sandbox.url}/services/oauth2/token", data=data,
                         verify=sandbox.ca_bundle, timeout=30, **kwargs)


def limits_call(sandbox: Any, token: str) -> requests.Response:
    return requests.get(f"{sandbox.url}/services/data/v59.0/limits/",
                        headers={"Authorization": f"Bearer {token}"},
                        verify=sandbox.ca_bundle, timeout=30)


def demo_key(sandbox: Any) -> bytes:
    return (Path(sandbox.data_dir) / "salesforce" / "jwt-private-key.pem").read_bytes()


def assertion(key: bytes, **overrides: Any) -> str:
    claims: dict[str, Any] = {"iss": defaults.SF_CLIENT_ID, "sub": defaults.SF_USERNAME,
                              "aud": "https://login.salesforce.com",
                              "exp": int(time.time()) + 170}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key,
                      algorithm="RS256")


def client_credentials(sandbox: Any) -> str:
    answer = token_request(sandbox, {"grant_type": "client_credentials"},
                           auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_client_credentials_basic_returns_documented_body(salesforce_sandbox: Any) -> None:
    answer = token_request(salesforce_sandbox, {"grant_type": "client_credentials"},
                           auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET))

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == TOKEN_KEYS
    assert re.fullmatch(r"00D[0-9A-Za-z]{12}!AR[0-9A-Za-z.]{20,}", body["access_token"])
    assert body["instance_url"] == salesforce_sandbox.url
    assert body["id"] == (f"{salesforce_sandbox.url}/id/{defaults.SF_ORG_ID}/"
                          f"{defaults.SF_USER_ID}")
    assert body["token_type"] == "Bearer"
    expected = hmac.new(defaults.SF_CLIENT_SECRET.encode(),
                        (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(body["signature"]) == expected
    assert limits_call(salesforce_sandbox, body["access_token"]).status_code == 200


def test_client_credentials_in_body(salesforce_sandbox: Any) -> None:
    answer = token_request(salesforce_sandbox, {
        "grant_type": "client_credentials", "client_id": defaults.SF_CLIENT_ID,
        "client_secret": defaults.SF_CLIENT_SECRET})
    assert answer.status_code == 200
    assert limits_call(salesforce_sandbox, answer.json()["access_token"]).status_code == 200


@pytest.mark.parametrize("auth", [
    (defaults.SF_CLIENT_ID, "wrong-secret"), ("wrong-client", defaults.SF_CLIENT_SECRET)])
def test_client_credentials_wrong_client(salesforce_sandbox: Any, auth: tuple[str, str]
                                         ) -> None:
    answer = token_request(salesforce_sandbox, {"grant_type": "client_credentials"}, auth=auth)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_client",
                             "error_description": "invalid client credentials"}


@pytest.mark.parametrize("audience", [
    "https://login.salesforce.com", "https://test.salesforce.com", "OWN_URL"])
def test_jwt_bearer_with_demo_key(salesforce_sandbox: Any, audience: str) -> None:
    aud = salesforce_sandbox.url if audience == "OWN_URL" else audience
    answer = token_request(salesforce_sandbox, {
        "grant_type": JWT_GRANT, "assertion": assertion(demo_key(salesforce_sandbox), aud=aud)})

    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == TOKEN_KEYS
    assert limits_call(salesforce_sandbox, answer.json()["access_token"]).status_code == 200


def test_jwt_signed_with_another_key_is_refused(salesforce_sandbox: Any) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    answer = token_request(salesforce_sandbox, {"grant_type": JWT_GRANT,
                                                "assertion": assertion(stranger)})
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


@pytest.mark.parametrize(("claims", "error", "description"), [
    ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
    ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ({"aud": "https://evil.example.com"}, "invalid_grant", "audience is invalid"),
    ({"exp_offset": -10}, "invalid_grant", "expired authorization code"),
    ({"exp_offset": 600}, "invalid_grant", "invalid assertion"),
    ({"exp": None}, "invalid_grant", "invalid assertion"),
])
def test_jwt_bad_claims(salesforce_sandbox: Any, claims: dict[str, Any], error: str,
                        description: str) -> None:
    claims = dict(claims)
    if "exp_offset" in claims:
        claims["exp"] = int(time.time()) + claims.pop("exp_offset")
    answer = token_request(salesforce_sandbox, {
        "grant_type": JWT_GRANT, "assertion": assertion(demo_key(salesforce_sandbox), **claims)})
    assert answer.status_code == 400
    assert answer.json() == {"error": error, "error_description": description}


def test_garbage_assertion(salesforce_sandbox: Any) -> None:
    answer = token_request(salesforce_sandbox, {"grant_type": JWT_GRANT,
                                                "assertion": "not-a-jwt"})
    assert answer.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_refresh_token_flow_has_no_refresh_token_in_reply(salesforce_sandbox: Any) -> None:
    answer = token_request(salesforce_sandbox, {
        "grant_type": "refresh_token", "client_id": defaults.SF_CLIENT_ID,
        "client_secret": defaults.SF_CLIENT_SECRET, "refresh_token": defaults.SF_REFRESH_TOKEN})
    assert answer.status_code == 200
    assert set(answer.json()) == TOKEN_KEYS
    assert "refresh_token" not in answer.json()

    bad = token_request(salesforce_sandbox, {
        "grant_type": "refresh_token", "client_id": defaults.SF_CLIENT_ID,
        "client_secret": defaults.SF_CLIENT_SECRET, "refresh_token": "5Aep861stale"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_grant",
                          "error_description": "expired access/refresh token"}


@pytest.mark.parametrize("password", [defaults.SF_PASSWORD,
                                      defaults.SF_PASSWORD + "sandboxSecurityToken"])
def test_password_flow(salesforce_sandbox: Any, password: str) -> None:
    answer = token_request(salesforce_sandbox, {
        "grant_type": "password", "client_id": defaults.SF_CLIENT_ID,
        "client_secret": defaults.SF_CLIENT_SECRET, "username": defaults.SF_USERNAME,
        "password": password})
    assert answer.status_code == 200
    assert limits_call(salesforce_sandbox, answer.json()["access_token"]).status_code == 200


def test_password_flow_refusals(salesforce_sandbox: Any) -> None:
    base = {"grant_type": "password", "client_id": defaults.SF_CLIENT_ID,
            "client_secret": defaults.SF_CLIENT_SECRET, "username": defaults.SF_USERNAME}
    wrong_password = token_request(salesforce_sandbox, {**base, "password": "nope"})
    wrong_client = token_request(salesforce_sandbox, {**base, "password": defaults.SF_PASSWORD,
                                                      "client_secret": "nope"})
    assert wrong_password.json() == {"error": "invalid_grant",
                                     "error_description": "authentication failure"}
    assert wrong_client.status_code == 400
    assert wrong_client.json()["error"] == "invalid_client"


def test_unsupported_grant_type(salesforce_sandbox: Any) -> None:
    answer = token_request(salesforce_sandbox, {"grant_type": "authorization_code"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "unsupported_grant_type",
                             "error_description": "grant type not supported"}


def test_token_calls_are_ledgered_but_not_charged(salesforce_sandbox: Any) -> None:
    token = client_credentials(salesforce_sandbox)
    token_request(salesforce_sandbox, {"grant_type": "password"})
    answer = limits_call(salesforce_sandbox, token)

    assert answer.headers["Sforce-Limit-Info"] == f"api-usage=1/{defaults.SF_DAILY_API_REQUESTS}"
    assert answer.json()["DailyApiRequests"]["Remaining"] == defaults.SF_DAILY_API_REQUESTS - 1
    ledger = salesforce_sandbox.ledger()
    assert ledger["by_kind"] == {"oauth": 2, "limits": 1}
    assert [call["status"] for call in ledger["calls"]] == [200, 400, 200]


def test_expired_sessions_get_invalid_session_id_everywhere(salesforce_sandbox: Any) -> None:
    token = client_credentials(salesforce_sandbox)
    assert limits_call(salesforce_sandbox, token).status_code == 200

    assert salesforce_sandbox.admin("POST", "sessions/expire")["expired"] >= 1

    rest = limits_call(salesforce_sandbox, token)
    assert rest.status_code == 401
    assert rest.json() == [{"message": "Session expired or invalid",
                            "errorCode": "INVALID_SESSION_ID"}]
    bulk = requests.post(f"{salesforce_sandbox.url}/services/async/59.0/job",
                         json={"operation": "insert", "object": "Contact",
                               "contentType": "JSON"},
                         headers={"X-SFDC-Session": token}, verify=salesforce_sandbox.ca_bundle,
                         timeout=30)
    assert bulk.status_code == 400
    assert bulk.json() == {"exceptionCode": "InvalidSessionId",
                           "exceptionMessage": "Invalid session id"}
    assert limits_call(salesforce_sandbox, client_credentials(salesforce_sandbox)).ok


def test_revocation_refuses_tokens_until_lifted(salesforce_sandbox: Any) -> None:
    token = client_credentials(salesforce_sandbox)
    salesforce_sandbox.admin("POST", "revoke", json={"reason": "inactive user"})

    assert limits_call(salesforce_sandbox, token).status_code == 401
    refused = token_request(salesforce_sandbox, {"grant_type": "client_credentials"},
                            auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET))
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": "inactive user"}
    jwt_refused = token_request(salesforce_sandbox, {
        "grant_type": JWT_GRANT, "assertion": assertion(demo_key(salesforce_sandbox))})
    assert jwt_refused.json()["error_description"] == "inactive user"

    salesforce_sandbox.admin("POST", "revoke", json={"reason": None})
    assert limits_call(salesforce_sandbox, client_credentials(salesforce_sandbox)).ok

    salesforce_sandbox.admin("POST", "revoke", json={"reason": "ip restricted"})
    salesforce_sandbox.reset()
    assert limits_call(salesforce_sandbox, client_credentials(salesforce_sandbox)).ok
