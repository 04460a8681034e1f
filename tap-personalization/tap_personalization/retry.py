"""Which Personalization failures are retried, how long to wait, and how giving up reads.

The streams plug these rules into singer-sdk's hooks (`backoff_wait_generator`,
`backoff_max_tries`, `request_decorator`), `PersonalizationClient` wraps its single calls with
the same `with_retries`, and the target's SFTP delivery waits with `wait_before_retry`: one
policy for every call, ending with the same one-line messages.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

import backoff
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_personalization.errors import (
    EventBusyError,
    PersonalizationTLSError,
    PersonalizationUnavailableError,
    request_label,
)

#: First exponential wait; doubles per attempt up to the cap, half of it randomised (jitter).
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
#: A Retry-After beyond this is treated as this: a stuck run is worse than one more 429.
RETRY_AFTER_CAP_SECONDS = 900.0

#: Statuses retried besides 5xx (`api.check_response` sorts responses with it).
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

_T = TypeVar("_T")


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
    if isinstance(exc, EventBusyError):  # HTTP 200: the failure is in the body
        return EventBusyError.reason
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
