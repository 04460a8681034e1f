"""Session and allowance checks every API style applies before doing any work.

Each style (REST, SOAP, Bulk) renders a refusal in its own wire format; the decision of
whether to refuse is made here once, so the three cannot drift apart.
"""

from __future__ import annotations

from emulators.salesforce.state import current


class Refusal(Exception):
    """An API call refused before it ran; `code` is Salesforce's error code."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


INVALID_SESSION = ("INVALID_SESSION_ID", "Session expired or invalid", 401)
LIMIT_EXCEEDED = ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)


def admit(token: str | None, *, always_serve: bool = False) -> None:
    """Check the session, then count the call against DailyApiRequests.

    `always_serve` is for `/limits/`, which must still answer when the allowance is gone
    so that a client can find out why it is being refused.
    """
    state = current()
    if not state.sessions.is_valid(token):
        raise Refusal(*INVALID_SESSION)
    if always_serve:
        state.limits.charge_request()
    elif not state.limits.try_charge_request():
        raise Refusal(*LIMIT_EXCEEDED)
