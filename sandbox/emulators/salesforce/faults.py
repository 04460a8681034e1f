"""Fault injection: the failures a connector must survive, on demand and reproducibly.

One seeded random source drives every probabilistic fault, so a test that sets `seed`
sees the same sequence of 503s, dropped connections and locked rows on every run.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

_RATES = ("http_503_rate", "drop_rate", "lock_row_rate")


@dataclass(frozen=True)
class FaultSettings:
    http_503_rate: float = 0.0
    drop_rate: float = 0.0
    lock_row_rate: float = 0.0
    fail_batches: int = 0
    batch_delay_seconds: float = 0.0
    seed: int | None = None


def parse_settings(raw: Any) -> FaultSettings:
    """Validate a `POST /__admin/faults` body; ValueError names the offending key."""
    if not isinstance(raw, dict):
        raise ValueError("faults must be a JSON object, e.g. {\"http_503_rate\": 0.1}")
    known = set(FaultSettings.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(sorted(known))}")
    for name in _RATES:
        value = raw.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    fail_batches = raw.get("fail_batches", 0)
    if isinstance(fail_batches, bool) or not isinstance(fail_batches, int) or fail_batches < 0:
        raise ValueError(f"fail_batches must be a non-negative integer, got {fail_batches!r}")
    delay = raw.get("batch_delay_seconds", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 600:
        raise ValueError(f"batch_delay_seconds must be between 0 and 600, got {delay!r}")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return FaultSettings(
        http_503_rate=float(raw.get("http_503_rate", 0.0)),
        drop_rate=float(raw.get("drop_rate", 0.0)),
        lock_row_rate=float(raw.get("lock_row_rate", 0.0)),
        fail_batches=fail_batches,
        batch_delay_seconds=float(delay),
        seed=seed,
    )


class Faults:
    """Current fault settings plus the countdown of batches still to fail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(FaultSettings())

    def configure(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self.rng = random.Random(settings.seed)
            self._batches_to_fail = settings.fail_batches

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self.rng.random() < rate

    def should_drop(self) -> bool:
        return self._roll(self.settings.drop_rate)

    def should_503(self) -> bool:
        return self._roll(self.settings.http_503_rate)

    def take_failed_batch(self) -> bool:
        """True when the next batch must fail (consumes one of `fail_batches`)."""
        with self._lock:
            if self._batches_to_fail <= 0:
                return False
            self._batches_to_fail -= 1
            return True

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            current = self.settings
            remaining = self._batches_to_fail
        return {**current.__dict__, "fail_batches": remaining}
