"""The errors of the Personalization client: each message is a complete, actionable sentence.

Both plugins raise these (the streams, `PersonalizationClient`, the target's delivery and
report), and their CLIs print only the message (`plain_errors`). `request_label` names a
request in them: its method and path, never the token (which is in a header).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import requests
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError


class PersonalizationError(Exception):
    """A failure whose message is a complete, actionable sentence (the CLI prints only it)."""


class PersonalizationConfigError(PersonalizationError):
    """Settings that cannot work, found before any call is made."""


class PersonalizationAuthError(PersonalizationError, FatalAPIError):
    """The API token was refused (401/403): retrying cannot help."""


class PersonalizationRequestError(PersonalizationError, FatalAPIError):
    """The API rejected the request or answered something that is not the documented shape."""


class EventBusyError(RetriableAPIError):
    """The Event API answered HTTP 200 with errorCode 3 ("busy"): retried like a 503."""

    reason = "event API busy (errorCode 3)"


class PersonalizationUnavailableError(PersonalizationError):
    """Every attempt failed with a retryable error (rate limit, 5xx, connection)."""


class PersonalizationTLSError(PersonalizationError):
    """The server certificate is not trusted; fixed by `ca_bundle`, never by turning checks off."""


class EventRejectedError(PersonalizationError):
    """The event API answered a non-zero `errorCode` other than "busy"."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def request_label(request: requests.PreparedRequest | None) -> str:
    """`METHOD /path?query` of a request, for messages (the token is in a header, not here)."""
    if request is None:
        return "request"
    return f"{request.method} {request.path_url}"


@contextlib.contextmanager
def plain_errors(logger: logging.Logger) -> Iterator[None]:
    """End the process with the one-line explanation instead of a stack trace."""
    try:
        yield
    except PersonalizationError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except ConfigValidationError as exc:  # e.g. `--test`, where singer-sdk lets it through
        for problem in exc.errors:
            logger.error("%s", problem)
        logger.error("%s", exc)
        sys.exit(1)
