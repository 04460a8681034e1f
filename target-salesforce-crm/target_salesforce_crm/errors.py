"""What can go wrong talking to Salesforce, split into retryable and fatal.

Every exception's `str()` is one line a person can act on. Codes come from Salesforce's
REST `errorCode`, SOAP `faultcode` or Bulk `exceptionCode`, so callers branch on `code`
rather than parse messages.
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit

# Codes after which the same call may succeed if repeated a little later.
TRANSIENT_CODES = frozenset({
    "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "TooManyLockFailure", "QUERY_TIMEOUT",
    "CONNECTION_ERROR", "HTTP_5XX",
})
# Codes meaning the session token is no longer accepted (REST, SOAP, Bulk spellings).
INVALID_SESSION_CODES = frozenset({"INVALID_SESSION_ID", "InvalidSessionId"})
# Codes meaning an org-wide allowance is used up.
LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "ExceededQuota"})

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0


class SalesforceError(Exception):
    """Base of every connector error about Salesforce."""


class AuthenticationError(SalesforceError):
    """No usable session: wrong or incomplete credentials, or an admin changed policy."""


class TLSTrustError(SalesforceError):
    """The server's certificate is not trusted: no retry can fix it, `ca_bundle` can."""

    def __init__(self, url: str, exc: BaseException) -> None:
        host = urlsplit(url).netloc or url
        reason = ("certificate not trusted" if "CERTIFICATE_VERIFY_FAILED" in str(exc)
                  else "TLS error")
        super().__init__(
            f"TLS verification of {host} failed ({reason}): set ca_bundle to the PEM file of "
            "the CA that signed its certificate (a corporate proxy's, or the local sandbox's "
            ".sandbox/ca.pem); verification is never turned off")


class ApiError(SalesforceError):
    """An error answer of the REST, SOAP or Bulk API."""

    def __init__(self, status: int, code: str, message: str, *, context: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.context = context
        where = f" ({context})" if context else ""
        super().__init__(f"Salesforce {code} (HTTP {status}){where}: {one_line(message)}")


class TransientError(ApiError):
    """Worth retrying later: 5xx, dropped connections, row lock contention."""


class UnansweredError(TransientError):
    """A request that changes something went out and no answer came back.

    It may or may not have taken effect, so it is not sent again blindly: the caller finds
    out first (see `BulkClient.add_batch`).
    """


class RequestLimitExceeded(ApiError):
    """An org allowance (daily API requests, bulk batches) is used up: stop the run."""

    def __init__(self, status: int, code: str, message: str, *, context: str = "") -> None:
        super().__init__(status, code, message, context=context)
        self.args = (
            f"Salesforce {code} (HTTP {status}): {one_line(message)}. The org's API allowance "
            "is used up: wait for the rolling 24-hour window to free requests or ask the "
            "Salesforce admin to raise the limit, then re-run (state is kept).",
        )


def one_line(text: str) -> str:
    """Collapse whitespace so an error stays a single log line."""
    return " ".join(str(text).split())


def classify(status: int, code: str, message: str, *, context: str = "",
             status_decides: bool = True) -> ApiError:
    """The exception class that matches a Salesforce error code and HTTP status.

    SOAP sends every fault with HTTP 500, so for faults `status_decides=False` and only
    the code says whether a retry can help.
    """
    if code in LIMIT_CODES:
        if "concurrent" in message.lower():  # ConcurrentPerOrgLongTxn: frees up in seconds
            return TransientError(status, code, message, context=context)
        return RequestLimitExceeded(status, code, message, context=context)
    if code in TRANSIENT_CODES or (status_decides and (status >= 500 or status == 429)):
        return TransientError(status, code, message, context=context)
    return ApiError(status, code, message, context=context)


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (0-based): exponential, full jitter.

    Jitter keeps parallel runs that failed together from retrying in lock-step.
    """
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** attempt))
    return random.uniform(ceiling / 2, ceiling)
