"""Fault injection for the Personalization API: the failures a client must survive.

`{"rate_429": 0-1, "retry_after": seconds, "rate_5xx": 0-1, "fail_next": n, "seed": int}`
as in docs/architecture.md, plus two Event API faults the docs imply: `busy_next` (the next
n events answer `errorCode` 3 "busy") and `busy_rate` (that share of events does), and
`invalid_text_every` (every n-th user of an export has half an emoji, a lone UTF-16
surrogate, at the end of its displayName: served alternately as a `\ud83d` escape and as
the raw bytes a server encoding what it holds would send, which are not UTF-8). The 429
carries `Retry-After: <retry_after>` (default 1); 5xx answers are 503. Faults apply to API
calls only (exports, lookups, events), never to admin calls or feed processing. One seeded
random source drives every probabilistic fault, so a seeded test sees the same sequence.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from emulators.fault_settings import parse_faults


@dataclass(frozen=True)
class FaultSettings:
    rate_429: float = 0.0
    retry_after: int = 1
    rate_5xx: float = 0.0
    fail_next: int = 0
    busy_rate: float = 0.0
    busy_next: int = 0
    invalid_text_every: int = 0
    seed: int | None = None


def parse_settings(raw: Any) -> FaultSettings:
    """Validate a `POST /__admin/faults` body; ValueError names the offending key."""
    return parse_faults(
        raw, FaultSettings, example='{"rate_429": 0.2}',
        rates=("rate_429", "rate_5xx", "busy_rate"),
        counts=("fail_next", "busy_next", "retry_after", "invalid_text_every"),
    )


class Faults:
    """Current settings plus the countdowns of calls still to fail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(FaultSettings())

    def configure(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)
            self._fail_next = settings.fail_next
            self._busy_next = settings.busy_next

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def http_fault(self) -> int | None:
        """503, 429 or None for the API call about to be served."""
        with self._lock:
            if self._fail_next > 0:
                self._fail_next -= 1
                return 503
            if self._roll(self.settings.rate_429):
                return 429
            if self._roll(self.settings.rate_5xx):
                return 503
        return None

    def event_busy(self) -> bool:
        with self._lock:
            if self._busy_next > 0:
                self._busy_next -= 1
                return True
            return self._roll(self.settings.busy_rate)

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self.settings), "fail_next": self._fail_next,
                    "busy_next": self._busy_next}
