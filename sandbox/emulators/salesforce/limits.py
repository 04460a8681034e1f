"""Org limits: the daily API request allowance and the Bulk batch allowance.

Every API call except OAuth consumes one request, as in Salesforce; the running count is
what `Sforce-Limit-Info` and `/limits/` report, so a connector can pace itself against it.
Bulk API 2.0 ingest draws on the same 15,000 batches (one per 10,000 records it processes)
and on its own 150,000,000 records a day, which `/limits/` does not list (nor does a real
org); the admin endpoint can still lower what remains of it (`BulkV2IngestRecords`).
"""

from __future__ import annotations

import threading
from typing import Any

from emulators import defaults

BULK_BATCH_MAX = 15_000
BULK_V2_INGEST_RECORDS_MAX = 150_000_000
ADMIN_ONLY = "BulkV2IngestRecords"

# Static allowances reported beside the two counted ones, as a real org lists many.
_STATIC_LIMITS: dict[str, dict[str, int]] = {
    "DailyAsyncApexExecutions": {"Max": 250_000, "Remaining": 250_000},
    "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
    "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000},
    "DataStorageMB": {"Max": 1_024, "Remaining": 1_024},
    "FileStorageMB": {"Max": 1_024, "Remaining": 1_024},
}


class ApiLimits:
    """Thread-safe counters of API requests and Bulk batches used today."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.api_max = defaults.SF_DAILY_API_REQUESTS
        self._api_used = 0
        self._batches_used = 0
        self._ingest_records_used = 0

    def try_charge_request(self) -> bool:
        """Count one API request; False (nothing counted) when the allowance is used up."""
        with self._lock:
            if self._api_used >= self.api_max:
                return False
            self._api_used += 1
            return True

    def charge_request(self) -> None:
        """Count a request that is served even when the allowance is used up (`/limits/`)."""
        with self._lock:
            self._api_used += 1

    def try_charge_batch(self) -> bool:
        with self._lock:
            if self._batches_used >= BULK_BATCH_MAX:
                return False
            self._batches_used += 1
            return True

    def try_charge_ingest_batch(self, records: int) -> str | None:
        """Count one Bulk 2.0 internal batch of `records`; the allowance used up, or None."""
        with self._lock:
            if self._batches_used >= BULK_BATCH_MAX:
                return "DailyBulkApiBatches"
            if self._ingest_records_used + records > BULK_V2_INGEST_RECORDS_MAX:
                return ADMIN_ONLY
            self._batches_used += 1
            self._ingest_records_used += records
            return None

    def usage_header(self) -> str:
        """Value of `Sforce-Limit-Info`."""
        with self._lock:
            return f"api-usage={self._api_used}/{self.api_max}"

    def soap_usage(self) -> tuple[int, int]:
        with self._lock:
            return self._api_used, self.api_max

    def set_remaining(self, settings: dict[str, Any]) -> None:
        """Apply `{"DailyApiRequests": {"Remaining": n}, "DailyBulkApiBatches": {...}}`."""
        unknown = set(settings) - {"DailyApiRequests", "DailyBulkApiBatches", ADMIN_ONLY}
        if unknown:
            raise ValueError(f"unknown limit {sorted(unknown)[0]!r}: use DailyApiRequests, "
                             f"DailyBulkApiBatches or {ADMIN_ONLY}")
        with self._lock:
            for name, entry in settings.items():
                remaining = entry.get("Remaining") if isinstance(entry, dict) else None
                if not isinstance(remaining, int) or remaining < 0:
                    raise ValueError(f"{name}.Remaining must be a non-negative integer")
                if name == "DailyApiRequests":
                    self.api_max = max(self.api_max, remaining)
                    self._api_used = self.api_max - remaining
                elif name == ADMIN_ONLY:
                    self._ingest_records_used = max(0, BULK_V2_INGEST_RECORDS_MAX - remaining)
                else:
                    self._batches_used = max(0, BULK_BATCH_MAX - remaining)

    def as_json(self) -> dict[str, dict[str, int]]:
        with self._lock:
            counted = {
                "DailyApiRequests": {"Max": self.api_max,
                                     "Remaining": max(0, self.api_max - self._api_used)},
                "DailyBulkApiBatches": {"Max": BULK_BATCH_MAX,
                                        "Remaining": max(0, BULK_BATCH_MAX - self._batches_used)},
            }
        return dict(sorted({**_STATIC_LIMITS, **counted}.items()))

    def reset(self) -> None:
        with self._lock:
            self.api_max = defaults.SF_DAILY_API_REQUESTS
            self._api_used = 0
            self._batches_used = 0
            self._ingest_records_used = 0
