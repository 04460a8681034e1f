"""The HTTP rules of the Personalization API, shared by the tap's streams and the target.

One source of truth for where the API lives (base URL from settings), what to trust (the
system CAs or `ca_bundle`, never nothing), how to authenticate (see `auth`), which failures
are retried and how long to wait, and how a failure is explained in one line. The streams
plug these rules into singer-sdk's hooks (`validate_response`, `backoff_wait_generator`,
`backoff_max_tries`, `request_decorator`); `PersonalizationClient` applies the very same
functions to single calls such as the event API.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from functools import cached_property
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import backoff
import msgspec
import requests
from singer_sdk.authenticators import BasicAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import BaseAPIPaginator, PageNumberPaginator
from singer_sdk.singerlib import RecordMessage, SelectionMask
from singer_sdk.streams import RESTStream

from tap_personalization.auth import (
    CAN_ACCESS_API,
    CAN_SEND_EVENTS,
    auth_failure_message,
    token_authenticator,
)
from tap_personalization.prefetch import Prefetch

DEFAULT_PAGE_SIZE = 1000
DEFAULT_REQUEST_TIMEOUT = 120
DEFAULT_MAX_RETRIES = 8
#: First exponential wait; doubles per attempt up to the cap, half of it randomised (jitter).
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
#: A Retry-After beyond this is treated as this: a stuck run is worse than one more 429.
RETRY_AFTER_CAP_SECONDS = 900.0

RETRY_STATUSES = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS})

#: Failures worth another attempt: rate limits, server errors and broken connections.
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    RetriableAPIError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    ConnectionResetError,
)

EVENT_ERRORS = {
    1: "missing encrypted user id",
    2: "invalid encrypted user id",
    3: "busy",
    4: "anonymous id correction",
    5: "invalid event",
}
EVENT_BUSY = 3

_T = TypeVar("_T")


class PersonalizationError(Exception):
    """A failure whose message is a complete, actionable sentence (the CLI prints only it)."""


class PersonalizationConfigError(PersonalizationError):
    """Settings that cannot work, found before any call is made."""


class PersonalizationAuthError(PersonalizationError, FatalAPIError):
    """The API token was refused (401/403): retrying cannot help."""


class PersonalizationRequestError(PersonalizationError, FatalAPIError):
    """The API rejected the request or answered something that is not the documented shape."""


class PersonalizationUnavailableError(PersonalizationError):
    """Every attempt failed with a retryable error (rate limit, 5xx, connection)."""


class PersonalizationTLSError(PersonalizationError):
    """The server certificate is not trusted; fixed by `ca_bundle`, never by turning checks off."""


class EventRejectedError(PersonalizationError):
    """The event API answered a non-zero `errorCode` other than "busy"."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- settings ------------------------------------------------------------------------------


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every setting problem at once, each naming its setting, so one fix-up round suffices."""
    problems: list[str] = []
    try:
        base_url_from_config(config)
    except PersonalizationConfigError as exc:
        problems.append(str(exc))
    for name in ("dataset", "api_key_id", "api_key_secret"):
        if not config.get(name):
            problems.append(f"Setting {name} is required.")
    ca_bundle = config.get("ca_bundle")
    if ca_bundle and not Path(ca_bundle).is_file():
        problems.append(f"Setting ca_bundle: file {ca_bundle} does not exist.")
    seen: set[str] = set()
    for index, segment in enumerate(config.get("segments") or []):
        segment_id = str(segment.get("id") or "").strip()
        if not segment_id:
            problems.append(f"Setting segments[{index}] has no id.")
        elif segment_id in seen:
            problems.append(f"Setting segments lists segment id {segment_id} twice.")
        seen.add(segment_id)
    return problems


def base_url_from_config(config: Mapping[str, Any]) -> str:
    """`base_url`, or `https://{account}.{instance}.evergage.com` (no instance on old us-1)."""
    if base_url := config.get("base_url"):
        url = str(base_url).rstrip("/")
    elif account := config.get("account"):
        instance = config.get("instance")
        host = f"{account}.{instance}.evergage.com" if instance else f"{account}.evergage.com"
        url = f"https://{host}"
    else:
        msg = (
            "Set base_url (https://{account}.{instance}.evergage.com) or account "
            "(plus instance, unless it is an older us-1 account without one)."
        )
        raise PersonalizationConfigError(msg)
    if not url.startswith("https://"):
        msg = f"Setting base_url must start with https:// (got {url}): the API token is sent."
        raise PersonalizationConfigError(msg)
    return url


def tls_verify(config: Mapping[str, Any]) -> str | bool:
    """The `requests` `verify` value: the configured CA bundle, else the system CAs."""
    return str(config["ca_bundle"]) if config.get("ca_bundle") else True


def export_path(dataset: str, export: str) -> str:
    """Path of an export (`users`, `accounts`) of a dataset."""
    return f"/api/dataset/{quote(dataset, safe='')}/{export}.json"


# --- responses -------------------------------------------------------------------------------


def request_label(request: requests.PreparedRequest | None) -> str:
    """`METHOD /path?query` of a request, for messages (the token is in a header, not here)."""
    if request is None:
        return "request"
    return f"{request.method} {request.path_url}"


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


def json_body(response: requests.Response) -> Any:
    """Decode a JSON body, keeping decimals exact; a non-JSON 2xx is a wrong host or proxy.

    A UTF-8 body is decoded by msgspec, about twice as fast as `requests` (decoding was the
    largest single cost of an export). Whatever msgspec refuses (a BOM, invalid bytes,
    malformed JSON) goes through `requests` as before, so results and error messages are the
    same either way; so does a body in another charset.
    """
    if _UTF8.fullmatch(response.encoding or "utf-8"):
        try:
            return _JSON_DECODER.decode(response.content)
        except msgspec.DecodeError:
            pass
    try:
        return response.json(parse_float=Decimal)
    except ValueError as exc:
        msg = (
            f"{request_label(response.request)} answered HTTP {response.status_code} with a "
            f"body that is not JSON ({response.headers.get('Content-Type', 'no content type')}"
            f"): check base_url points at the Personalization API. Body: {body_excerpt(response)}"
        )
        raise PersonalizationRequestError(msg) from exc


_JSON_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_UTF8 = re.compile(r"utf-?8", re.IGNORECASE)


def export_page_rows(response: requests.Response) -> list[Any]:
    """The rows of one export page, which the API sends as a bare JSON array."""
    body = json_body(response)
    if not isinstance(body, list):
        msg = (
            f"{request_label(response.request)} answered a JSON {type(body).__name__} where "
            f"the export API sends an array: {body_excerpt(response)}"
        )
        raise PersonalizationRequestError(msg)
    return body


# --- retries ----------------------------------------------------------------------------------


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (`Retry-After` as seconds or HTTP date), if any."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def wait_before_retry(
    failure: BaseException | None,
    attempt: int,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
) -> float:
    """Retry-After when the server sent one, else exponential backoff with equal jitter.

    Equal jitter (half fixed, half random) spreads parallel clients apart without ever
    collapsing the wait to zero.
    """
    hinted = retry_after_seconds(getattr(failure, "response", None))
    if hinted is not None:
        return hinted
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_waits(
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
) -> Generator[float, BaseException | None, None]:
    """A `backoff` wait generator that is sent each failure, so it can read Retry-After."""
    attempt = 0
    failure = yield 0.0  # primed by backoff with send(None)
    while True:
        attempt += 1
        failure = yield wait_before_retry(failure, attempt, base=base, cap=cap)


def is_permanent(exc: BaseException) -> bool:
    """Failures that look like connection errors but will not heal by waiting."""
    return isinstance(exc, requests.exceptions.SSLError)


def describe_failure(exc: BaseException | None) -> str:
    """What went wrong in a few words: the HTTP status, or the root network reason."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer within request_timeout"
    text = str(exc)
    if found := re.search(r"\[Errno -?\d+\] ([^'\"\)]+)", text):
        return found.group(1).strip()
    return type(exc).__name__ if exc is not None else "unknown failure"


def _failed_request(exc: BaseException) -> requests.PreparedRequest | None:
    response = getattr(exc, "response", None)
    if response is not None:
        return response.request
    request = getattr(exc, "request", None)
    return request if isinstance(request, requests.PreparedRequest) else None


def log_retry(logger: logging.Logger, details: Mapping[str, Any]) -> None:
    """One warning per retry: what failed, how long we wait, which attempt it was."""
    exc = details.get("exception")
    request = _failed_request(exc) if exc is not None else None
    logger.warning(
        "Retrying %s in %.1f s after attempt %d: %s",
        request_label(request),
        details.get("wait") or 0.0,
        details.get("tries") or 0,
        describe_failure(exc),
    )


def gave_up_message(exc: BaseException, tries: int) -> str:
    """Why the run stops after the last retry, and what the operator can change."""
    request = _failed_request(exc)
    what = request_label(request)
    reason = describe_failure(exc)
    if getattr(exc, "response", None) is not None:
        return (
            f"Personalization kept failing on {what} ({reason} after {tries} attempts): "
            "the service is overloaded or down; run again later or raise max_retries."
        )
    host = ""
    if request is not None and request.url:
        parts = urlsplit(request.url)
        host = f" at {parts.scheme}://{parts.netloc}"
    return (
        f"Could not reach Personalization{host} for {what} ({reason} after {tries} attempts): "
        "check base_url and the network, or raise request_timeout / max_retries."
    )


def tls_failure_message(exc: BaseException) -> str:
    """TLS trust failures are fixed with `ca_bundle`; say so instead of a urllib3 trace."""
    request = _failed_request(exc)
    host = urlsplit(request.url).netloc if request is not None and request.url else "the host"
    reason = "certificate not trusted" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else "TLS error"
    return (
        f"TLS verification of {host} failed ({reason}): set ca_bundle to the PEM CA bundle "
        "that signed the server certificate (for the local sandbox: .sandbox/ca.pem); "
        "verification is never turned off."
    )


def with_retries(
    attempt: Callable[..., _T],
    *,
    max_tries: int | Callable[[], int],
    logger: logging.Logger,
    wait_gen: Callable[..., Generator[float, Any, None]] = retry_waits,
    on_backoff: Callable[[Any], None] | None = None,
) -> Callable[..., _T]:
    """Run `attempt` until it succeeds, a permanent error occurs, or the tries are used up.

    Both the streams (through `request_decorator`) and `PersonalizationClient` wrap their single
    HTTP attempt with this, so both follow the same rules and end with the same messages.
    """
    retried = backoff.on_exception(
        wait_gen,
        RETRYABLE_EXCEPTIONS,
        max_tries=max_tries,
        giveup=is_permanent,
        on_backoff=on_backoff or functools.partial(log_retry, logger),
        jitter=None,
        logger=None,
    )(attempt)

    @functools.wraps(attempt)
    def call(*args: Any, **kwargs: Any) -> _T:
        try:
            return retried(*args, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise PersonalizationTLSError(tls_failure_message(exc)) from exc
        except RETRYABLE_EXCEPTIONS as exc:
            tries = max_tries() if callable(max_tries) else max_tries
            raise PersonalizationUnavailableError(gave_up_message(exc, tries)) from exc

    return call


# --- a plain client for single calls (connection test, event API, look-ups) --------------------


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
                msg = f"event API busy (errorCode 3) on {request_label(response.request)}"
                raise RetriableAPIError(msg, response)

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


# --- the base stream ---------------------------------------------------------------------------


class PersonalizationStream(RESTStream[int]):
    """Base of the export streams: Basic auth, CA bundle, page numbers from 0, shared retries."""

    #: `users` or `accounts`: which export this stream pages through.
    export: str = "users"
    #: Records leave `schemas.py` already typed as the schema says (dates, numbers, maps), so
    #: the SDK's recursive re-conforming of every nested value is wasted work (benchmarked).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `Session.send` (what the SDK calls) takes `verify` from the session.
        self.requests_session.verify = tls_verify(self.config)
        self._checked_mask: SelectionMask | None = None
        self._records_as_built = False

    @property
    def url_base(self) -> str:
        return base_url_from_config(self.config)

    @property
    def dataset(self) -> str:
        return str(self.config["dataset"])

    @property
    def path(self) -> str:
        return export_path(self.dataset, self.export)

    def get_url(self, context: Mapping[str, Any] | None) -> str:
        return f"{self.url_base}{self.path}"

    @cached_property
    def authenticator(self) -> BasicAuthenticator:
        return token_authenticator(self.config)

    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT)

    @property
    def page_size(self) -> int:
        return int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)

    def get_new_paginator(self) -> BaseAPIPaginator[int]:
        # Pages count from 0; the SDK stops at the first empty page, as the API documents.
        return PageNumberPaginator(0)

    def get_url_params(
        self,
        context: Mapping[str, Any] | None,
        next_page_token: int | None,
    ) -> dict[str, Any]:
        return {"page": next_page_token or 0, "pageSize": self.page_size}

    def validate_response(self, response: requests.Response) -> None:
        check_response(response, dataset=self.dataset, capability=CAN_ACCESS_API)

    def request_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        """Every record of the export, with the next page already on its way.

        Page n+1 is asked for as soon as page n came back with rows, in a background thread,
        while page n's records are written: the server's time overlaps the tap's. Exactly
        one request is in flight at a time and at most one page is held ahead, so memory
        stays flat. The export ends at the first page without rows, as the API documents;
        nothing is requested after it.
        """
        paginator = self.get_new_paginator()
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            request = self._prepare_request(context=context, page=paginator)
            ahead = self._start(request, context)
            try:
                while True:
                    response = self._response(ahead, request, context)
                    request_counter.increment()
                    self.update_sync_costs(request, response, context)
                    rows = self.page_rows(response)
                    if not rows:
                        self.logger.info(
                            "%s: export ended at its empty page %s",
                            self.name,
                            paginator.current_value,
                        )
                        return
                    paginator.advance(response)
                    request = self._prepare_request(context=context, page=paginator)
                    ahead = self._start(request, context)
                    yield from self.parse_rows(rows, response)
            finally:
                ahead.wait()

    def _start(
        self, request: requests.PreparedRequest, context: Mapping[str, Any] | None
    ) -> Prefetch[requests.Response]:
        """The first attempt at a page, in the background (retries happen in `_response`)."""
        return Prefetch(
            functools.partial(self._request, request, context), name=f"{self.name}-next-page"
        )

    def _response(
        self,
        ahead: Prefetch[requests.Response],
        request: requests.PreparedRequest,
        context: Mapping[str, Any] | None,
    ) -> requests.Response:
        """The page's response under the usual retry rules, the background attempt counting
        as the first try: its failure is logged, waited on and retried like any other, here
        in the consuming thread."""
        started = [ahead]

        def attempt(
            prepared: requests.PreparedRequest, context: Mapping[str, Any] | None
        ) -> requests.Response:
            if started:
                return started.pop().result()
            return self._request(prepared, context)

        return self.request_decorator(attempt)(request, context)

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        return self.parse_rows(self.page_rows(response), response)

    def page_rows(self, response: requests.Response) -> list[dict[str, Any]]:
        """The rows of one page, each an object; an empty list ends the export."""
        rows = export_page_rows(response)
        for row in rows:
            if not isinstance(row, dict):
                msg = (
                    f"{request_label(response.request)} sent a {type(row).__name__} row where "
                    f"an object was expected: {str(row)[:100]}"
                )
                raise PersonalizationRequestError(msg)
        return rows

    def parse_rows(
        self, rows: list[dict[str, Any]], response: requests.Response
    ) -> Iterable[dict[str, Any]]:
        """The records of a page's rows; rows as served unless a stream shapes them."""
        return rows

    def _generate_record_messages(self, record: dict[str, Any]) -> Iterator[RecordMessage]:
        """The SDK's RECORD messages, without two per-record passes that change nothing here.

        singer-sdk walks every record (nested maps included) to pop deselected properties,
        then conforms its top-level values to the schema. With every property selected and
        the stream's own schema in the catalog (the usual case), neither pass can change a
        record this tap built (`schemas` types every value, NaN scores included), yet the two
        took a third of an export's CPU (benchmarked). Any other selection or schema goes
        through the SDK unchanged. This overrides a private SDK method: the unit tests compare
        its messages with the SDK's own, so an SDK change that matters fails them.
        """
        if not self._records_pass_as_built():
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(UTC),
                )

    def _records_pass_as_built(self) -> bool:
        """Whether deselection and conformance would leave records as built (see above);
        decided again whenever the selection changes (the SDK then makes a new mask)."""
        mask = self.mask
        if mask is not self._checked_mask:
            self._checked_mask = mask
            self._records_as_built = all(mask.values()) and self.effective_schema == self.schema
        return self._records_as_built

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        return retry_waits()

    def backoff_max_tries(self) -> int:
        return int(self.config.get("max_retries") or DEFAULT_MAX_RETRIES)

    def backoff_handler(self, details: Any) -> None:
        log_retry(self.logger, details)

    def request_decorator(self, func: Callable[..., _T]) -> Callable[..., _T]:
        # Jitter lives inside `retry_waits` (none on a Retry-After), so `backoff_jitter` is unused.
        return with_retries(
            func,
            max_tries=self.backoff_max_tries,
            logger=self.logger,
            wait_gen=self.backoff_wait_generator,
            on_backoff=self.backoff_handler,
        )
