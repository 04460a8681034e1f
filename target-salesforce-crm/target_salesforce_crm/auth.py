"""OAuth 2.0 sessions for the Salesforce APIs, from whichever credentials are configured.

Tokens come from a configurable `auth_url` (My Domain, sandboxes, the local emulator) instead
of simple-salesforce's hard-coded login hosts. Refusals become `AuthenticationError`s that
name the settings involved and what an admin typically changed, never a secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from target_salesforce_crm.errors import (
    AuthenticationError,
    TLSTrustError,
    backoff_delay,
    one_line,
)
from target_salesforce_crm.settings import (
    DEFAULT_AUTH_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT,
)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180
DEFAULT_PLUGIN_HINT = "target-salesforce-crm (or tap-salesforce-crm)"

# The complete settings groups, in the words of the "nothing configured" error.
_GROUPS_HELP = (
    "client_id + client_secret (client credentials, My Domain auth_url), "
    "client_id + username + private_key or private_key_path (JWT bearer), "
    "client_id + refresh_token (refresh token), "
    "client_id + client_secret + username + password (username-password), "
    "or session_id + instance_url (existing session)"
)
_ADMIN_CHANGES = (
    "a Salesforce admin may have changed the connected app's policies (permitted users, "
    "pre-authorization, IP relaxation), login IP ranges, or the integration user's "
    "profile/permission sets, or deactivated/locked the user"
)


@dataclass
class Session:
    """An access token and the org instance it is valid for."""

    access_token: str
    instance_url: str
    issued_at: float


@dataclass(frozen=True)
class _Flow:
    """One OAuth grant: its name for messages, the settings it uses, and its form body."""

    name: str
    settings: tuple[str, ...]
    form: Callable[[], dict[str, str]]
    basic_auth: tuple[str, str] | None = None


def _text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    return "" if value is None else str(value).strip()


class SalesforceAuthenticator:
    """Obtains and caches a session; renews it when Salesforce says it is no longer valid."""

    def __init__(self, config: Mapping[str, Any], flow: _Flow | None, *,
                 plugin_name: str | None = None, http: requests.Session | None = None,
                 logger: logging.Logger | None = None) -> None:
        self._config = config
        self._flow = flow
        self._plugin = plugin_name or DEFAULT_PLUGIN_HINT
        self._http = http or requests.Session()
        self._logger = logger or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._session: Session | None = None
        self.token_requests = 0
        session_id = _text(config, "session_id")
        if session_id:
            self._session = Session(session_id, _text(config, "instance_url").rstrip("/"), 0.0)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, plugin_name: str | None = None,
                    http: requests.Session | None = None,
                    logger: logging.Logger | None = None) -> SalesforceAuthenticator:
        """Pick the flow from the complete settings group; explain what is missing if none is.

        A flow-specific secret (private key, refresh token, password) shows which flow the
        user chose, so it wins over the plain client credentials it shares settings with.
        A configured session_id is used first and, when a flow is also set, renewed by it.
        """
        check_credential_urls(config)
        flow = _select_flow(config)
        if flow is None:
            has_session = bool(_text(config, "session_id"))
            has_instance = bool(_text(config, "instance_url"))
            if has_session and not has_instance:
                raise AuthenticationError(
                    "Salesforce settings: session_id is set but instance_url is missing; "
                    "set instance_url (e.g. https://yourorg.my.salesforce.com)")
            if not has_session:
                raise AuthenticationError(
                    "Salesforce settings: no complete credentials group; set one of "
                    f"{_GROUPS_HELP}")
        return cls(config, flow, plugin_name=plugin_name, http=http, logger=logger)

    @property
    def flow_name(self) -> str:
        return self._flow.name if self._flow else "existing session"

    def session(self) -> Session:
        """The cached session, requesting a token only the first time."""
        with self._lock:
            if self._session is None:
                self._session = self._request_token()
            return self._session

    def renew(self) -> Session:
        """A fresh token, after Salesforce refused the current one (INVALID_SESSION_ID)."""
        with self._lock:
            if self._flow is None:
                raise AuthenticationError(
                    "Salesforce rejected the configured session_id (INVALID_SESSION_ID: "
                    "expired or logged out) and it cannot be renewed; set a new session_id "
                    "or configure an OAuth flow (e.g. client_id + private_key), then re-run "
                    f"`meltano invoke {self._plugin}:test`")
            self._session = self._request_token()
            return self._session

    def _request_token(self) -> Session:
        assert self._flow is not None
        flow = self._flow
        auth_url = (_text(self._config, "auth_url") or DEFAULT_AUTH_URL).rstrip("/")
        url = f"{auth_url}/services/oauth2/token"
        configured = self._config.get("max_retries")
        retries = DEFAULT_MAX_RETRIES if configured is None else max(0, int(configured))
        timeout = float(self._config.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT)
        verify: str | bool = _text(self._config, "ca_bundle") or True
        attempt = 0
        while True:
            self.token_requests += 1
            try:
                answer = self._http.post(url, data=flow.form(), auth=flow.basic_auth,
                                         headers={"Accept": "application/json"},
                                         timeout=timeout, verify=verify)
            except requests.exceptions.SSLError as exc:
                raise TLSTrustError(url, exc) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= retries:
                    raise AuthenticationError(
                        f"Salesforce token endpoint {url} unreachable after {attempt + 1} "
                        f"attempts ({type(exc).__name__}); check auth_url and ca_bundle and "
                        "the network") from exc
                self._wait(attempt, type(exc).__name__)
            else:
                if answer.status_code < 500:
                    return self._session_from(answer, url)
                if attempt >= retries:
                    raise AuthenticationError(
                        f"Salesforce token endpoint {url} answered HTTP {answer.status_code} "
                        f"{attempt + 1} times; Salesforce may be unavailable, re-run later "
                        "(max_retries setting)")
                self._wait(attempt, f"HTTP {answer.status_code}")
            attempt += 1

    def _wait(self, attempt: int, reason: str) -> None:
        delay = backoff_delay(attempt)
        self._logger.warning("Salesforce token request failed (%s); retrying in %.1fs",
                             reason, delay)
        sleep(delay)

    def _session_from(self, answer: requests.Response, url: str) -> Session:
        assert self._flow is not None
        body = _json(answer)
        if answer.status_code == 200 and body.get("access_token") and body.get("instance_url"):
            instance = str(body["instance_url"])
            if not instance.lower().startswith("https://"):
                raise AuthenticationError(
                    f"the token endpoint {url} answered instance_url {one_line(instance)}, which "
                    "is not https://; the access token is not sent there (check auth_url: it "
                    "must be the org's own login host)")
            issued = body.get("issued_at")
            issued_at = int(issued) / 1000 if str(issued or "").isdigit() else time.time()
            self._logger.info("Salesforce session obtained with the %s flow for %s",
                              self._flow.name, body["instance_url"])
            return Session(str(body["access_token"]), str(body["instance_url"]).rstrip("/"),
                           issued_at)
        error = one_line(str(body.get("error") or f"HTTP {answer.status_code}"))
        description = one_line(str(body.get("error_description") or answer.text[:200]))
        raise AuthenticationError(self._refusal_message(error, description, url))

    def _refusal_message(self, error: str, description: str, url: str) -> str:
        assert self._flow is not None
        flow = self._flow
        settings = ", ".join(flow.settings)
        if error.startswith("invalid_client"):
            hint = ("check client_id/client_secret against the connected app's consumer key "
                    "and secret (and that the app is enabled for this flow)")
        elif error == "unsupported_grant_type":
            hint = (f"the org does not allow the {flow.name} flow at auth_url; enable it on "
                    "the connected app or configure another flow")
        elif "domain" in description.lower():
            hint = "this flow needs the org's My Domain URL as auth_url"
        elif "audience" in description.lower():
            hint = "for the JWT flow auth_url must be the login host the org expects"
        else:
            hint = f"check {settings}; {_ADMIN_CHANGES}"
        return (f"Salesforce refused the {flow.name} token request ({error}: {description}) "
                f"at {url}: {hint}; fix the settings and re-run "
                f"`meltano invoke {self._plugin}:test`")


def check_credential_urls(config: Mapping[str, Any]) -> None:
    """Every URL that receives a credential must be https://: refused before any call.

    The token endpoint gets the client secret (Basic auth), a password or a signed
    assertion; the instance gets the access token. Both plugins call this at start-up.
    """
    for setting, why in (("auth_url", "the OAuth flows send the connected app's secret, a "
                                      "password or a signed assertion to it"),
                         ("instance_url", "the session_id is sent to it")):
        url = _text(config, setting)
        if url and not url.lower().startswith("https://"):
            raise AuthenticationError(
                f"Salesforce settings: {setting} must start with https:// (got "
                f"{one_line(url)}): {why}; certificate verification is never disabled (set "
                "ca_bundle to trust a private CA)")


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def sleep(seconds: float) -> None:
    """Indirection so tests can skip the waiting."""
    time.sleep(seconds)


def _select_flow(config: Mapping[str, Any]) -> _Flow | None:
    """The flow of the first group whose deciding setting is present; None for session-only."""

    def get(key: str) -> str:
        return _text(config, key)

    client_id, secret, username = get("client_id"), get("client_secret"), get("username")

    def require(flow_name: str, needed: dict[str, str]) -> None:
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise AuthenticationError(
                f"Salesforce settings: the {flow_name} flow needs {', '.join(needed)}; "
                f"missing {', '.join(missing)}")

    if get("private_key") or get("private_key_path"):
        require("JWT bearer", {"client_id": client_id, "username": username})
        key = _private_key(config)
        auth_url = (get("auth_url") or DEFAULT_AUTH_URL).rstrip("/")

        def jwt_form() -> dict[str, str]:
            claims = {"iss": client_id, "sub": username, "aud": auth_url,
                      "exp": int(time.time()) + JWT_LIFETIME_SECONDS}
            return {"grant_type": JWT_GRANT,
                    "assertion": jwt.encode(claims, key, algorithm="RS256")}

        key_setting = "private_key" if get("private_key") else "private_key_path"
        return _Flow("JWT bearer", ("client_id", "username", key_setting), jwt_form)
    if get("refresh_token"):
        require("refresh token", {"client_id": client_id})

        def refresh_form() -> dict[str, str]:
            form = {"grant_type": "refresh_token", "client_id": client_id,
                    "refresh_token": get("refresh_token")}
            if secret:
                form["client_secret"] = secret
            return form

        used = ("client_id", "client_secret", "refresh_token") if secret else (
            "client_id", "refresh_token")
        return _Flow("refresh token", used, refresh_form)
    if get("password"):
        require("username-password", {"client_id": client_id, "client_secret": secret,
                                      "username": username})

        def password_form() -> dict[str, str]:
            return {"grant_type": "password", "client_id": client_id, "client_secret": secret,
                    "username": username, "password": get("password") + get("security_token")}

        used = ("client_id", "client_secret", "username", "password") + (
            ("security_token",) if get("security_token") else ())
        return _Flow("username-password", used, password_form)
    if client_id or secret:
        if not get("session_id"):
            require("client credentials", {"client_id": client_id, "client_secret": secret})
        if client_id and secret:
            return _Flow("client credentials", ("client_id", "client_secret", "auth_url"),
                         lambda: {"grant_type": "client_credentials"},
                         basic_auth=(client_id, secret))
    return None


def _private_key(config: Mapping[str, Any]) -> str:
    """The PEM text, from private_key or the file at private_key_path, checked early."""
    text = _text(config, "private_key")
    setting = "private_key"
    if not text:
        setting = "private_key_path"
        path = Path(_text(config, "private_key_path")).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise AuthenticationError(
                f"Salesforce settings: private_key_path {str(path)!r} cannot be read "
                f"({exc.strerror}); point it to the PEM private key of the connected app's "
                "certificate") from exc
    text = text.replace("\\n", "\n")  # PEM pasted into an environment variable
    try:
        serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise AuthenticationError(
            f"Salesforce settings: {setting} is not an unencrypted PEM private key (expected "
            "a '-----BEGIN PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----' block)"
        ) from exc
    return text
