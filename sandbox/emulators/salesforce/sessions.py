"""Issued access tokens, their expiry, and the admin's revocation switch.

Revocation models an admin changing connected-app, user or IP policy: every token dies at
once and every token request is refused with the given reason until it is lifted, which is
the situation the connector must turn into a "reconfigure the integration" error.
"""

from __future__ import annotations

import secrets
import string
import threading
import time

from emulators import defaults

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "."


class Sessions:
    """Thread-safe token registry; expired tokens are pruned as new ones are issued."""

    def __init__(self, lifetime_seconds: int = defaults.SF_SESSION_SECONDS) -> None:
        self._lock = threading.Lock()
        self._lifetime = lifetime_seconds
        self._issued: dict[str, float] = {}
        self._revoked_reason: str | None = None

    def issue(self) -> str:
        """A new token shaped like Salesforce's: `<org id 15>!AR<opaque>`."""
        opaque = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(96))
        token = f"{defaults.SF_ORG_ID[:15]}!AR{opaque}"
        now = time.monotonic()
        with self._lock:
            self._issued = {t: at for t, at in self._issued.items()
                            if now - at < self._lifetime}
            self._issued[token] = now
        return token

    def is_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            issued = self._issued.get(token)
        return issued is not None and time.monotonic() - issued < self._lifetime

    def expire_all(self) -> int:
        """Invalidate every issued token; returns how many were live."""
        with self._lock:
            count = len(self._issued)
            self._issued.clear()
        return count

    @property
    def revoked_reason(self) -> str | None:
        with self._lock:
            return self._revoked_reason

    def revoke(self, reason: str | None) -> None:
        """Set (or with None lift) the refusal reason; setting it also kills all tokens."""
        with self._lock:
            self._revoked_reason = reason
            if reason is not None:
                self._issued.clear()
