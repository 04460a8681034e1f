"""Fault injection: the failures a connector must survive, on demand and reproducibly.

One seeded random source drives every probabilistic fault, so a test that sets `seed`
sees the same sequence of 503s, dropped connections and locked rows on every run.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any

from emulators.fault_settings import parse_faults


@dataclass(frozen=True)
class FaultSettings:
    http_503_rate: float = 0.0
    drop_rate: float = 0.0
    lock_row_rate: float = 0.0
    fail_batches: int = 0
    batch_delay_seconds: float = 0.0
    # How long a batch waits for a parent record another batch holds before its rows fail
    # UNABLE_TO_LOCK_ROW (a real org waits about 10 s; short here so tests stay fast).
    lock_wait_seconds: float = 0.5
    # Server time per record while a batch holds its parent locks (triggers, flows in a
    # real org): batches processed at once overlap it, as Salesforce's do.
    record_processing_ms: float = 0.0
    # The next `drop_replies` API calls whose "METHOD /path" matches `drop_reply_match`
    # are carried out, then their connection is closed without the answer (a reply lost
    # on the way back: the client cannot tell whether its request took effect).
    drop_replies: int = 0
    drop_reply_match: str = ""
    seed: int | None = None


def parse_settings(raw: Any) -> FaultSettings:
    """Validate a `POST /__admin/faults` body; ValueError names the offending key."""
    return parse_faults(
        raw, FaultSettings, example='{"http_503_rate": 0.1}',
        rates=("http_503_rate", "drop_rate", "lock_row_rate"),
        counts=("fail_batches", "drop_replies"),
        ranges={"batch_delay_seconds": (0, 600), "lock_wait_seconds": (0, 10),
                "record_processing_ms": (0, 1000)},
        patterns=("drop_reply_match",),
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
            self._replies_to_drop = settings.drop_replies

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self.rng.random() < rate

    def should_drop(self) -> bool:
        return self._roll(self.settings.drop_rate)

    def should_503(self) -> bool:
        return self._roll(self.settings.http_503_rate)

    def take_dropped_reply(self, method: str, path: str) -> bool:
        """True when this call's answer must be lost (consumes one of `drop_replies`)."""
        with self._lock:
            if self._replies_to_drop <= 0 or not re.search(
                    self.settings.drop_reply_match, f"{method} {path}"):
                return False
            self._replies_to_drop -= 1
            return True

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
            replies = self._replies_to_drop
        return {**current.__dict__, "fail_batches": remaining, "drop_replies": replies}
