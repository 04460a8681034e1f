"""One authenticated connection to a Salesforce org: REST, SOAP query, describe, limits.

`request` is the single choke point every call (Bulk included) goes through, so TLS
verification, timeouts, retries, re-authentication, error classification and call counting
are decided in one place.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
import simple_salesforce

from target_salesforce_crm import soap
from target_salesforce_crm.auth import SalesforceAuthenticator, Session
from target_salesforce_crm.errors import (
    INVALID_SESSION_CODES,
    ApiError,
    AuthenticationError,
    SalesforceError,
    TLSTrustError,
    TransientError,
    UnansweredError,
    backoff_delay,
    classify,
    one_line,
)
from target_salesforce_crm.settings import (
    DEFAULT_API_VERSION,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT,
)

API_KINDS = ("auth", "describe", "query", "limits", "bulk", "other")
# Request line plus headers must fit 16,384 bytes; keep room for the headers we send.
MAX_GET_URL_BYTES = 15_000
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_SOBJECT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NOT_DESCRIBABLE = frozenset({"aggregateresult"})


def sleep(seconds: float) -> None:
    """Indirection so tests can skip the waiting."""
    time.sleep(seconds)


def strip_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """A REST record without the `attributes` metadata, nested records included."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            if isinstance(value.get("records"), list):  # a subquery's QueryResult
                value = {**value, "records": [strip_attributes(r) for r in value["records"]]}
            else:
                value = strip_attributes(value)
        out[key] = value
    return out


class VerifyingSession(requests.Session):
    """A requests session whose `verify` is not overridden by REQUESTS_CA_BUNDLE.

    requests lets that environment variable replace `Session.verify` for calls that do not
    pass `verify` themselves (simple-salesforce's), which would silently drop ca_bundle.
    """

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert)
        if verify is None or verify is True:
            settings["verify"] = self.verify
        return settings


class SalesforceClient:
    """REST/SOAP/Bulk access with one session, shared by the target and the tap."""

    def __init__(self, config: Mapping[str, Any], *, logger: logging.Logger | None = None,
                 authenticator: SalesforceAuthenticator | None = None,
                 plugin_name: str | None = None) -> None:
        self.logger = logger or logging.getLogger(__name__)
        self.api_version = str(config.get("api_version") or DEFAULT_API_VERSION).lstrip("vV")
        self.timeout = float(config.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT)
        retries = config.get("max_retries")
        self.max_retries = DEFAULT_MAX_RETRIES if retries is None else max(0, int(retries))
        self.verify: str | bool = _ca_bundle(config)
        self.http = VerifyingSession()
        self.http.verify = self.verify
        self.plugin_name = plugin_name
        self.authenticator = authenticator or SalesforceAuthenticator.from_config(
            config, plugin_name=plugin_name, http=self.http, logger=self.logger)
        self.api_calls: collections.Counter[str] = collections.Counter()
        self.api_usage: tuple[int, int] | None = None
        self._describes: dict[str, dict[str, Any]] = {}
        self._renew_lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------
    @property
    def rest_path(self) -> str:
        return f"/services/data/v{self.api_version}"

    @property
    def bulk_path(self) -> str:
        return f"/services/async/{self.api_version}"

    @property
    def soap_path(self) -> str:
        return f"/services/Soap/u/{self.api_version}"

    # -- session -------------------------------------------------------------------------
    def session(self) -> Session:
        """The current session; the first call obtains a token (counted as `auth`)."""
        return self._counting_auth(self.authenticator.session)

    def _counting_auth(self, call: Callable[[], Session]) -> Session:
        before = self.authenticator.token_requests
        try:
            return call()
        finally:
            self.api_calls["auth"] += self.authenticator.token_requests - before

    def _renew(self, stale: Session) -> None:
        """Renew once, unless another thread already replaced the stale token."""
        with self._renew_lock:
            if self.session().access_token == stale.access_token:
                self.logger.info("Salesforce session expired or was invalidated; "
                                 "re-authenticating")
                self._counting_auth(self.authenticator.renew)

    # -- the choke point -----------------------------------------------------------------
    def request(self, method: str, path: str, *, kind: str,
                body_for_session: Callable[[str], bytes] | None = None,
                replayable: bool = True, **kwargs: Any) -> requests.Response:
        """Send one API call with retries and at most one re-authentication.

        `path` is relative to the instance (`/services/...`) or absolute. Bulk paths get
        the `X-SFDC-Session` header; SOAP calls pass `body_for_session`, which builds the
        envelope around the token so a renewed session is used on the retry. A call that is
        not `replayable` (it creates something) whose answer never came raises
        `UnansweredError` instead of going again: it may have taken effect.
        """
        style = _style(path)
        if style == "soap" and body_for_session is None:
            raise ValueError("SOAP calls need body_for_session to place the session header")
        extra_headers = dict(kwargs.pop("headers", None) or {})
        where = f"{method} {path.split('?', 1)[0]}"
        renewed = False
        attempt = 0
        while True:
            session = self.session()
            headers = {**extra_headers, **_auth_header(style, session.access_token)}
            if body_for_session is not None:
                kwargs["data"] = body_for_session(session.access_token)
            url = _url(session.instance_url, path)
            self.api_calls[kind] += 1
            try:
                answer = self.http.request(method, url, headers=headers, timeout=self.timeout,
                                           verify=self.verify, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise TLSTrustError(url, exc) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not replayable and not _never_sent(exc):
                    raise UnansweredError(
                        0, "NO_ANSWER", f"{type(exc).__name__}: {exc}", context=where) from None
                error: ApiError = TransientError(
                    0, "CONNECTION_ERROR", f"{type(exc).__name__}: {exc}", context=where)
            else:
                self._read_usage(answer, style)
                if answer.status_code < 400:
                    return answer
                error = _error_of(answer, style, where)
            if error.code in INVALID_SESSION_CODES:
                if renewed:
                    raise AuthenticationError(self._rejected_fresh_session(where)) from error
                renewed = True
                self._renew(session)
                continue
            if isinstance(error, TransientError) and attempt < self.max_retries:
                self._wait(attempt, error, answer=None if error.status == 0 else answer)
                attempt += 1
                continue
            if isinstance(error, TransientError) and self.max_retries:
                error.args = (f"{error} (gave up after {attempt + 1} attempts; "
                              "max_retries setting)",)
            raise error

    def _wait(self, attempt: int, error: ApiError, *, answer: requests.Response | None) -> None:
        delay = backoff_delay(attempt)
        retry_after = answer.headers.get("Retry-After", "") if answer is not None else ""
        if retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 60.0))
        self.logger.warning("Salesforce %s failed (%s %s); retry %d/%d in %.1fs",
                            error.context, error.status or "connection", error.code,
                            attempt + 1, self.max_retries, delay)
        sleep(delay)

    def _rejected_fresh_session(self, where: str) -> str:
        plugin = self.plugin_name or "target-salesforce-crm (or tap-salesforce-crm)"
        return (f"Salesforce rejected a freshly issued session (INVALID_SESSION_ID) on {where}: "
                "an admin may have changed the connected app's session or IP policy, "
                "revoked its access, or removed 'API Enabled' from the integration user; "
                f"check the credentials settings and re-run `meltano invoke {plugin}:test`")

    def _read_usage(self, answer: requests.Response, style: str) -> None:
        match = _LIMIT_INFO.search(answer.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_usage = (int(match.group(1)), int(match.group(2)))
        elif style == "soap" and answer.content:
            usage = soap.parse_limit_info(answer.content)
            if usage is not None:
                self.api_usage = usage

    # -- REST ----------------------------------------------------------------------------
    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe, fetched once per client (fields visible to the user)."""
        key = sobject.lower()
        if key not in self._describes:
            if not _SOBJECT_NAME.match(sobject):
                raise ValueError(f"not an sObject API name: {sobject!r}")
            answer = self.request("GET", f"{self.rest_path}/sobjects/{sobject}/describe",
                                  kind="describe")
            self._describes[key] = answer.json()
        return self._describes[key]

    def limits(self) -> dict[str, Any]:
        """The org's limits (DailyApiRequests, DailyBulkApiBatches, ...)."""
        body: dict[str, Any] = self.request("GET", f"{self.rest_path}/limits/",
                                            kind="limits").json()
        return body

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Rows of a SOQL query over REST, page by page, without `attributes`."""
        endpoint = "queryAll" if include_deleted else "query"
        path = f"{self.rest_path}/{endpoint}/?{urlencode({'q': soql})}"
        if len(path.encode()) > MAX_GET_URL_BYTES:
            raise ValueError(
                f"SOQL too long for a REST GET ({len(path.encode())} bytes URL-encoded, limit "
                f"about {MAX_GET_URL_BYTES}): use soap_query or smaller IN chunks")
        while True:
            page = self.request("GET", path, kind="query").json()
            for record in page.get("records", []):
                yield strip_attributes(record)
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            path = next_url

    # -- SOAP ----------------------------------------------------------------------------
    def soap_query(self, soql: str, *, include_deleted: bool = False,
                   batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Rows of a SOQL query over the SOAP partner API, typed like `query()` rows.

        The statement travels in the request body, so up to 100,000 characters fit in one
        call; pages follow with queryMore.
        """
        page = self._soap_page(lambda token: soap.query_envelope(
            token, soql, include_deleted=include_deleted, batch_size=batch_size))
        while True:
            for record in page.records:
                yield soap.to_rest_record(record, self._field_types)
            if page.done or not page.locator:
                return
            locator = page.locator
            page = self._soap_page(lambda token, loc=locator: soap.query_more_envelope(
                token, loc, batch_size=batch_size))

    def _soap_page(self, envelope: Callable[[str], bytes]) -> soap.QueryPage:
        answer = self.request("POST", self.soap_path, kind="query", headers=soap.HEADERS,
                              body_for_session=envelope)
        try:
            return soap.parse_query_response(answer.content)
        except soap.SoapParseError as exc:
            raise SalesforceError(f"Salesforce SOAP query reply unreadable: {exc}") from exc

    def _field_types(self, sobject: str) -> dict[str, str]:
        if sobject.lower() in _NOT_DESCRIBABLE:
            return {}
        return {str(item["name"]).lower(): str(item.get("type", "string"))
                for item in self.describe(sobject).get("fields", [])}

    # -- ad-hoc use ----------------------------------------------------------------------
    def simple_salesforce(self) -> simple_salesforce.Salesforce:
        """A simple-salesforce connection on this client's session, for notebooks and tests.

        It does not renew the session on expiry; this client does.
        """
        session = self.session()
        http = VerifyingSession()
        http.verify = self.verify
        return simple_salesforce.Salesforce(
            instance_url=session.instance_url, session_id=session.access_token,
            version=self.api_version, session=http)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _never_sent(exc: requests.RequestException) -> bool:
    """The connection was not even opened, so the request cannot have taken effect."""
    return isinstance(exc, requests.exceptions.ConnectTimeout) or "NewConnectionError" in repr(
        exc)


def _ca_bundle(config: Mapping[str, Any]) -> str | bool:
    """The CA bundle path to verify against, or True for the system store; never False."""
    value = str(config.get("ca_bundle") or "").strip()
    if not value:
        return True
    path = Path(value).expanduser()
    if not path.is_file():
        raise SalesforceError(f"Salesforce settings: ca_bundle {value!r} is not a readable "
                              "file; point it to a PEM file of CA certificates")
    return str(path)


def _url(instance_url: str, path: str) -> str:
    """Absolute URL on the session's instance; a token is never sent to another host."""
    if path.startswith("/"):
        return instance_url + path
    if path.startswith(instance_url + "/"):
        return path
    raise ValueError(f"refusing to send the Salesforce session to {path.split('?', 1)[0]!r}: "
                     f"not a path on {instance_url}")


def _style(path: str) -> str:
    if "/services/async/" in path:
        return "bulk"
    if "/services/Soap/" in path:
        return "soap"
    return "rest"


def _auth_header(style: str, token: str) -> dict[str, str]:
    if style == "bulk":
        return {"X-SFDC-Session": token}
    if style == "soap":
        return {}
    return {"Authorization": f"Bearer {token}"}


def _error_of(answer: requests.Response, style: str, where: str) -> ApiError:
    """Classify an error answer of any API style into an `ApiError` subclass."""
    status = answer.status_code
    code, message = f"HTTP_{status}", one_line(answer.text[:300]) or answer.reason or ""
    if style == "soap":
        fault = soap.parse_fault(answer.content)
        if fault is not None:
            return classify(status, *fault, context=where, status_decides=False)
    else:
        body: Any
        try:
            body = answer.json()
        except ValueError:
            body = None
        if isinstance(body, list) and body and isinstance(body[0], dict):
            body = body[0]
        if isinstance(body, dict):
            code = str(body.get("errorCode") or body.get("exceptionCode")
                       or body.get("error") or code)
            message = str(body.get("message") or body.get("exceptionMessage")
                          or body.get("error_description") or message)
        elif style == "bulk":
            found = re.search(r"<exceptionCode>([^<]+)</exceptionCode>", answer.text)
            if found:
                code = found.group(1)
    if status in (414, 431):
        message += (" (the URL and headers must fit 16,384 bytes: use soap_query or smaller "
                    "IN chunks)")
    return classify(status, code, message, context=where)
