"""Fault injection for the Personalization API: the failures a client must survive.

`{"rate_429": 0-1, "retry_after": seconds, "rate_5xx": 0-1, "fail_next": n, "seed": int}`
as in docs/architecture.md, plus two Event API faults the docs imply: `busy_next` (the next
n events answer `errorCode` 3 "busy") and `busy_rate` (that share of events does). The 429
carries `Retry-After: <retry_after>` (default 1); 5xx answers are 503. Faults apply to API
calls only (exports, lookups, events), never to admin calls or feed processing. One seeded
random source drives every probabilistic fault, so a seeded test sees the same sequence.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

_RATES = ("rate_429", "rate_5xx", "busy_rate")
_COUNTS = ("fail_next", "busy_next")


@dataclass(frozen=True)
class FaultSettings:
    rate_429: float = 0.0
    retry_after: int = 1
    rate_5xx: float = 0.0
    fail_next: int = 0
    busy_rate: float = 0.0
    busy_next: int = 0
    seed: int | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_settings(raw: Any) -> FaultSettings:
    """Validate a `POST /__admin/faults` body; ValueError names the offending key."""
    if not isinstance(raw, dict):
        raise ValueError('faults must be a JSON object, e.g. {"rate_429": 0.2}')
    known = set(FaultSettings.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(sorted(known))}")
    for name in _RATES:
        value = raw.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    for name in (*_COUNTS, "retry_after"):
        value = raw.get(name, 0)
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    seed = raw.get("seed")
    if seed is not None and not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return FaultSettings(
        rate_429=float(raw.get("rate_429", 0.0)), retry_after=raw.get("retry_after", 1),
        rate_5xx=float(raw.get("rate_5xx", 0.0)), fail_next=raw.get("fail_next", 0),
        busy_rate=float(raw.get("busy_rate", 0.0)), busy_next=raw.get("busy_next", 0),
        seed=seed,
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
