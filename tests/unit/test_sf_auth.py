"""OAuth flows of the Salesforce connector: request bodies, flow choice, refusal messages."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from target_salesforce_crm import auth
from target_salesforce_crm.auth import SalesforceAuthenticator
from target_salesforce_crm.errors import AuthenticationError, TLSTrustError

AUTH_URL = "https://login.example.test"
TOKEN_URL = f"{AUTH_URL}/services/oauth2/token"
INSTANCE = "https://org.my.example.test"
SECRETS = {"client_secret": "S3cr3t-client", "password": "Pa55-word",
           "security_token": "T0ken-sec", "refresh_token": "R3fresh-tok"}

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _granted(token: str | None = None) -> dict[str, Any]:
    return {"access_token": token or "00Dxx!ARtoken", "instance_url": INSTANCE,
            "token_type": "Bearer", "issued_at": "1700000000000",
            "id": f"{AUTH_URL}/id/00D/005", "signature": "x"}


def _form(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.text).items()}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(auth, "sleep", slept.append)
    return slept


def test_client_credentials_uses_basic_auth(requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, json=_granted())
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "cid", "client_secret": SECRETS["client_secret"]})
    session = authenticator.session()
    assert (session.access_token, session.instance_url) == ("00Dxx!ARtoken", INSTANCE)
    assert session.issued_at == 1_700_000_000.0
    sent = requests_mock.request_history[0]
    assert _form(sent) == {"grant_type": "client_credentials"}
    expected = base64.b64encode(f"cid:{SECRETS['client_secret']}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert authenticator.flow_name == "client credentials"


def test_session_is_cached_and_renew_asks_again(requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, [{"json": _granted("first")}, {"json": _granted("second")}])
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "cid", "client_secret": "s"})
    assert authenticator.session().access_token == "first"
    assert authenticator.session().access_token == "first"
    assert requests_mock.call_count == 1
    assert authenticator.renew().access_token == "second"
    assert authenticator.session().access_token == "second"
    assert authenticator.token_requests == 2


@pytest.mark.parametrize("from_path", [False, True])
def test_jwt_bearer_assertion_claims(requests_mock: Any, tmp_path: Path,
                                     from_path: bool) -> None:
    requests_mock.post(TOKEN_URL, json=_granted())
    config: dict[str, Any] = {"auth_url": AUTH_URL + "/", "client_id": "cid",
                              "username": "integration@example.com",
                              "client_secret": "also-set-but-jwt-wins"}
    if from_path:
        key_file = tmp_path / "key.pem"
        key_file.write_text(PRIVATE_PEM)
        config["private_key_path"] = str(key_file)
    else:
        config["private_key"] = PRIVATE_PEM.replace("\n", "\\n")  # as pasted in an env var
    authenticator = SalesforceAuthenticator.from_config(config)
    before = time.time()
    authenticator.session()
    form = _form(requests_mock.request_history[0])
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert set(form) == {"grant_type", "assertion"}
    assert jwt.get_unverified_header(form["assertion"])["alg"] == "RS256"
    claims = jwt.decode(form["assertion"], PUBLIC_PEM, algorithms=["RS256"], audience=AUTH_URL)
    assert claims["iss"] == "cid"
    assert claims["sub"] == "integration@example.com"
    assert claims["aud"] == AUTH_URL
    assert before + 175 <= claims["exp"] <= time.time() + 181
    assert authenticator.flow_name == "JWT bearer"


def test_refresh_token_flow_body(requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, json=_granted())
    SalesforceAuthenticator.from_config({
        "auth_url": AUTH_URL, "client_id": "cid", "client_secret": "s",
        "refresh_token": SECRETS["refresh_token"], "username": "u", "password": "p",
    }).session()
    assert _form(requests_mock.request_history[0]) == {
        "grant_type": "refresh_token", "client_id": "cid", "client_secret": "s",
        "refresh_token": SECRETS["refresh_token"]}


def test_password_flow_appends_security_token(requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, json=_granted())
    authenticator = SalesforceAuthenticator.from_config({
        "auth_url": AUTH_URL, "client_id": "cid", "client_secret": "s", "username": "u@x.io",
        "password": SECRETS["password"], "security_token": SECRETS["security_token"],
    })
    assert authenticator.flow_name == "username-password"
    authenticator.session()
    assert _form(requests_mock.request_history[0]) == {
        "grant_type": "password", "client_id": "cid", "client_secret": "s",
        "username": "u@x.io", "password": SECRETS["password"] + SECRETS["security_token"]}


def test_default_auth_url_is_login_salesforce(requests_mock: Any) -> None:
    requests_mock.post("https://login.salesforce.com/services/oauth2/token", json=_granted())
    SalesforceAuthenticator.from_config({"client_id": "c", "client_secret": "s"}).session()
    assert requests_mock.call_count == 1


def test_existing_session_needs_no_call_and_cannot_renew(requests_mock: Any) -> None:
    authenticator = SalesforceAuthenticator.from_config(
        {"session_id": "00Dabc!AR", "instance_url": INSTANCE + "/"})
    session = authenticator.session()
    assert (session.access_token, session.instance_url) == ("00Dabc!AR", INSTANCE)
    assert requests_mock.call_count == 0
    with pytest.raises(AuthenticationError, match="session_id") as caught:
        authenticator.renew()
    assert "00Dabc!AR" not in str(caught.value)


def test_existing_session_renews_with_configured_flow(requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, json=_granted("fresh"))
    authenticator = SalesforceAuthenticator.from_config(
        {"session_id": "old", "instance_url": INSTANCE, "auth_url": AUTH_URL,
         "client_id": "c", "client_secret": "s"})
    assert authenticator.session().access_token == "old"
    assert requests_mock.call_count == 0
    assert authenticator.renew().access_token == "fresh"


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({}, "no complete credentials group; set one of client_id \\+ client_secret"),
        ({"username": "u"}, "no complete credentials group"),
        ({"client_id": "c"}, "client credentials flow needs client_id, client_secret; "
                             "missing client_secret"),
        ({"client_id": "c", "private_key": PRIVATE_PEM}, "JWT bearer flow .* missing username"),
        ({"client_id": "c", "username": "u", "password": "p"},
         "username-password flow .* missing client_secret"),
        ({"refresh_token": "r"}, "refresh token flow needs client_id; missing client_id"),
        ({"session_id": "x"}, "session_id is set but instance_url is missing"),
        ({"client_id": "c", "username": "u", "private_key": "not a key"},
         "private_key is not an unencrypted PEM private key"),
        ({"client_id": "c", "username": "u", "private_key_path": "/nonexistent/key.pem"},
         "private_key_path '/nonexistent/key.pem' cannot be read"),
    ],
)
def test_incomplete_settings_are_named(config: dict[str, Any], pattern: str) -> None:
    with pytest.raises(AuthenticationError, match=pattern) as caught:
        SalesforceAuthenticator.from_config(config)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "error", "description", "names"),
    [
        ({"client_id": "cid", "client_secret": SECRETS["client_secret"], "username": "u",
          "password": SECRETS["password"], "security_token": SECRETS["security_token"]},
         "invalid_grant", "inactive user",
         ["username-password", "client_id, client_secret, username, password, security_token",
          "deactivated"]),
        ({"client_id": "cid", "refresh_token": SECRETS["refresh_token"]},
         "invalid_grant", "expired access/refresh token",
         ["refresh token", "client_id, refresh_token", "connected app"]),
        ({"client_id": "cid", "client_secret": SECRETS["client_secret"]},
         "invalid_client", "invalid client credentials",
         ["client credentials", "client_id/client_secret"]),
    ],
)
def test_refusal_is_actionable_and_secret_free(
        requests_mock: Any, caplog: pytest.LogCaptureFixture, config: dict[str, Any],
        error: str, description: str, names: list[str]) -> None:
    requests_mock.post(TOKEN_URL, status_code=400,
                       json={"error": error, "error_description": description})
    caplog.set_level(logging.DEBUG)
    authenticator = SalesforceAuthenticator.from_config(
        {**config, "auth_url": AUTH_URL}, plugin_name="target-salesforce-crm")
    with pytest.raises(AuthenticationError) as caught:
        authenticator.session()
    message = str(caught.value)
    assert f"({error}: {description})" in message
    assert "`meltano invoke target-salesforce-crm:test`" in message
    for name in names:
        assert name in message
    assert "\n" not in message
    for secret in SECRETS.values():
        assert secret not in message
        assert secret not in caplog.text
    assert requests_mock.call_count == 1  # a refusal is not retried


def test_token_endpoint_retries_5xx_and_connection_errors(
        requests_mock: Any, no_sleep: list[float]) -> None:
    requests_mock.post(TOKEN_URL, [{"exc": requests.ConnectionError("reset")},
                                   {"status_code": 503, "text": "down"},
                                   {"json": _granted()}])
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "c", "client_secret": "s"})
    assert authenticator.session().access_token == "00Dxx!ARtoken"
    assert requests_mock.call_count == 3
    assert len(no_sleep) == 2
    assert authenticator.token_requests == 3


def test_token_endpoint_unreachable_gives_up(requests_mock: Any, no_sleep: list[float]) -> None:
    requests_mock.post(TOKEN_URL, exc=requests.ConnectionError("refused"))
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "c", "client_secret": "s", "max_retries": 2})
    with pytest.raises(AuthenticationError, match=r"unreachable after 3 attempts.*auth_url"):
        authenticator.session()
    assert requests_mock.call_count == 3
    assert len(no_sleep) == 2


def test_token_endpoint_persistent_5xx_says_so(requests_mock: Any, no_sleep: list[float]) -> None:
    requests_mock.post(TOKEN_URL, status_code=503, text="Service Unavailable")
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "c", "client_secret": "s", "max_retries": 1})
    with pytest.raises(AuthenticationError, match=r"answered HTTP 503 2 times"):
        authenticator.session()
    assert requests_mock.call_count == 2
    assert len(no_sleep) == 1


@pytest.mark.parametrize(("settings", "named"), [
    ({"auth_url": "http://login.example.test", "client_id": "id", **SECRETS}, "auth_url"),
    ({"auth_url": "HTTP://login.example.test", "client_id": "id",
      "client_secret": "S3cr3t-client"}, "auth_url"),
    ({"session_id": "00Dxx!session", "instance_url": "http://org.example.test"}, "instance_url"),
])
def test_a_credential_is_never_sent_over_plain_http(
        requests_mock: Any, settings: dict[str, Any], named: str) -> None:
    token = requests_mock.post("http://login.example.test/services/oauth2/token",
                               json=_granted())
    with pytest.raises(AuthenticationError) as refused:
        SalesforceAuthenticator.from_config(settings).session()
    message = str(refused.value)
    assert message.startswith(f"Salesforce settings: {named} must start with https://")
    assert "\n" not in message
    assert not any(secret in message for secret in [*SECRETS.values(), "00Dxx!session"])
    assert token.call_count == 0


def test_a_token_reply_naming_an_http_instance_is_refused(requests_mock: Any) -> None:
    requests_mock.post(TOKEN_URL, json={**_granted(), "instance_url": "http://org.example.test"})
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "id", "client_secret": "S3cr3t-client"})

    with pytest.raises(AuthenticationError) as refused:
        authenticator.session()
    assert ("answered instance_url http://org.example.test, which is not https://; the access "
            "token is not sent there") in str(refused.value)
    assert requests_mock.call_count == 1  # the token request only: nothing sent to the instance


def test_an_untrusted_certificate_is_named_at_once_not_retried(
        requests_mock: Any, no_sleep: list[float]) -> None:
    requests_mock.post(TOKEN_URL, exc=requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"))
    authenticator = SalesforceAuthenticator.from_config(
        {"auth_url": AUTH_URL, "client_id": "c", "client_secret": "S3cr3t-client",
         "max_retries": 5})
    with pytest.raises(TLSTrustError) as refused:
        authenticator.session()
    assert str(refused.value).startswith(
        "TLS verification of login.example.test failed (certificate not trusted): set ca_bundle")
    assert (requests_mock.call_count, no_sleep) == (1, [])
