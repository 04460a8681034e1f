"""The HTTP rules of the Personalization API and a plain client, shared by both plugins.

How a response is sorted into success, retryable or fatal-with-an-explanation
(`check_response`), how a body is decoded (`json_body`) and what an export page holds. The
tap's streams plug these into singer-sdk's `validate_response`; `PersonalizationClient`
applies the very same functions, with the settings of `settings`, the token of `auth` and the
retries of `retry`, to single calls such as the connection test, the event API and the
target's export reads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
import requests
from crm_sync_mapping.singer_input import replace_invalid_text
from singer_sdk.exceptions import RetriableAPIError

from tap_personalization.auth import (
    CAN_ACCESS_API,
    CAN_SEND_EVENTS,
    auth_failure_message,
    token_authenticator,
)
from tap_personalization.errors import (
    EventBusyError,
    EventRejectedError,
    PersonalizationAuthError,
    PersonalizationConfigError,
    PersonalizationRequestError,
    request_label,
)
from tap_personalization.retry import RETRY_STATUSES, with_retries
from tap_personalization.settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT,
    base_url_from_config,
    config_problems,
    tls_verify,
)

EVENT_ERRORS = {
    1: "missing encrypted user id",
    2: "invalid encrypted user id",
    3: "busy",
    4: "anonymous id correction",
    5: "invalid event",
}
EVENT_BUSY = 3


def export_path(dataset: str, export: str) -> str:
    """Path of an export (`users`, `accounts`) of a dataset."""
    return f"/api/dataset/{quote(dataset, safe='')}/{export}.json"


def check_response(
    response: requests.Response,
    *,
    dataset: str,
    capability: str = CAN_ACCESS_API,
) -> None:
    """Sort a response into success, retryable, or fatal-with-an-explanation.

    Raises:
        RetriableAPIError: 408, 429 and 5xx.
        PersonalizationAuthError: 401 and 403.
        PersonalizationRequestError: any other 4xx.
    """
    status = response.status_code
    if status < HTTPStatus.BAD_REQUEST:
        return
    request = response.request
    method = request.method or "GET"
    path = urlsplit(response.url).path
    if status in RETRY_STATUSES or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        msg = f"HTTP {status} {response.reason} on {request_label(request)}"
        raise RetriableAPIError(msg, response)
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        message = auth_failure_message(status, method, path, dataset=dataset, capability=capability)
        raise PersonalizationAuthError(message)
    if status == HTTPStatus.NOT_FOUND:
        msg = (
            f"Personalization answered HTTP 404 on {method} {path}: check base_url and that "
            f"dataset '{dataset}' exists."
        )
        raise PersonalizationRequestError(msg)
    msg = (
        f"Personalization rejected {request_label(request)} with HTTP {status} "
        f"{response.reason}: {body_excerpt(response)}"
    )
    raise PersonalizationRequestError(msg)


def body_excerpt(response: requests.Response, limit: int = 200) -> str:
    """The start of a body on one line, so an error message stays one line."""
    text = " ".join(response.text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def json_body(response: requests.Response, repaired: dict[str, int] | None = None) -> Any:
    """Decode a JSON body, keeping decimals exact; a non-JSON 2xx is a wrong host or proxy.

    A UTF-8 body is decoded by msgspec, about twice as fast as `requests` (decoding was the
    largest single cost of an export). Whatever msgspec refuses goes through `json`: a body
    with invalid text (a lone UTF-16 surrogate, bytes that are not UTF-8) is read with each
    bad code point replaced by U+FFFD, and `repaired` gets how many at each JSON path, so one
    damaged profile never stops an export. A body in another charset goes through `requests`.
    """
    utf8 = bool(_UTF8.fullmatch(response.encoding or "utf-8"))
    if utf8:
        try:
            return _JSON_DECODER.decode(response.content)
        except msgspec.DecodeError:
            pass
    try:
        if not utf8:
            return response.json(parse_float=Decimal)
        body = json.loads(response.content.decode("utf-8-sig", errors="surrogateescape"),
                          parse_float=Decimal)
    except ValueError as exc:
        msg = (
            f"{request_label(response.request)} answered HTTP {response.status_code} with a "
            f"body that is not JSON ({response.headers.get('Content-Type', 'no content type')}"
            f"): check base_url points at the Personalization API. Body: {body_excerpt(response)}"
        )
        raise PersonalizationRequestError(msg) from exc
    fixed = replace_invalid_text(body)
    if repaired is not None:
        repaired.update(fixed)
    return body


_JSON_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_UTF8 = re.compile(r"utf-?8", re.IGNORECASE)


def export_page_rows(response: requests.Response,
                     repaired: dict[str, int] | None = None) -> list[Any]:
    """The rows of one export page, which the API sends as a bare JSON array."""
    body = json_body(response, repaired)
    if not isinstance(body, list):
        msg = (
            f"{request_label(response.request)} answered a JSON {type(body).__name__} where "
            f"the export API sends an array: {body_excerpt(response)}"
        )
        raise PersonalizationRequestError(msg)
    return body


class PersonalizationClient:
    """One dataset of one Personalization account, with the tap's auth, TLS and retry rules.

    Made for the target (event API) and for one-off calls; the tap's streams use singer-sdk's
    `RESTStream` with the same functions.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        session: requests.Session | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if problems := config_problems(config):
            raise PersonalizationConfigError(" ".join(problems))
        self.base_url = base_url_from_config(config)
        self.dataset = str(config["dataset"])
        self.timeout = float(config.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT)
        self.max_tries = int(config.get("max_retries") or DEFAULT_MAX_RETRIES)
        self.verify = tls_verify(config)
        self.logger = logger or logging.getLogger(__name__)
        self.session = session or requests.Session()
        self.session.auth = token_authenticator(config)

    def __enter__(self) -> PersonalizationClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        capability: str = CAN_ACCESS_API,
        accept: Iterable[int] = (),
        check: Callable[[requests.Response], None] | None = None,
    ) -> requests.Response:
        """One logical call, retried per the shared rules.

        `accept` lists error statuses the caller handles itself (e.g. 404 on a look-up);
        `check` may raise `RetriableAPIError` for failures reported inside a 200 body.
        """
        accepted = frozenset(accept)

        def attempt() -> requests.Response:
            # `verify` is passed per call: a session-level value loses to REQUESTS_CA_BUNDLE.
            response = self.session.request(
                method,
                f"{self.base_url}{path}",
                params=params,
                json=json,
                timeout=self.timeout,
                verify=self.verify,
            )
            if response.status_code not in accepted:
                check_response(response, dataset=self.dataset, capability=capability)
                if check is not None:
                    check(response)
            return response

        return with_retries(attempt, max_tries=self.max_tries, logger=self.logger)()

    def export_page(
        self,
        export: str,
        *,
        page: int,
        page_size: int,
        params: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """One page of the `users` or `accounts` export (an empty list after the last page)."""
        query = {"page": page, "pageSize": page_size, **(params or {})}
        response = self.request("GET", export_path(self.dataset, export), params=query)
        return export_page_rows(response)

    def lookup_user(self, user_id: str) -> dict[str, Any] | None:
        """A single user, or None when the dataset does not know the id."""
        path = f"/api/dataset/{quote(self.dataset, safe='')}/user/{quote(user_id, safe='')}"
        response = self.request("GET", path, accept=(HTTPStatus.NOT_FOUND,))
        if response.status_code == HTTPStatus.NOT_FOUND:
            return None
        body = json_body(response)
        return body if isinstance(body, dict) else None

    def send_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """POST one server-side event; retries "busy" (errorCode 3) like a 503.

        Raises:
            EventRejectedError: any other non-zero errorCode (the caller rejects the record).
        """

        def busy_is_retryable(response: requests.Response) -> None:
            body = json_body(response)
            if isinstance(body, dict) and body.get("errorCode") == EVENT_BUSY:
                msg = f"{EventBusyError.reason} on {request_label(response.request)}"
                raise EventBusyError(msg, response)

        response = self.request(
            "POST",
            f"/api2/authevent/{quote(self.dataset, safe='')}",
            json=dict(event),
            capability=CAN_SEND_EVENTS,
            check=busy_is_retryable,
        )
        reply = json_body(response)
        if not isinstance(reply, dict):
            msg = f"event API answered {type(reply).__name__}, expected an object"
            raise PersonalizationRequestError(msg)
        code = reply.get("errorCode", 0)
        if code:
            user = (event.get("user") or {}).get("id") or "(identity attributes)"
            meaning = EVENT_ERRORS.get(int(code), "unknown error code")
            detail = reply.get("errorMessage") or reply.get("message") or ""
            msg = f"Event for user {user} rejected: errorCode {code} ({meaning}) {detail}".strip()
            raise EventRejectedError(msg, int(code))
        return reply

    def check_connection(self) -> int:
        """One harmless read (a one-user page); returns how many users it got (0 or 1)."""
        return len(self.export_page("users", page=0, page_size=1))
