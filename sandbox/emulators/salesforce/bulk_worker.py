"""The background thread that advances Bulk batches Queued -> InProgress -> done.

It applies each batch in chunks of 200 records as Salesforce does, recording results and
counters after every chunk so that polling shows progress, and it is the only place the
injected batch faults (delay, whole-batch failure, locked rows) take effect.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from typing import Any, Protocol

from emulators.salesforce.bulk_jobs import COMPLETED, FAILED, BulkJobs, ClaimedBatch
from emulators.salesforce.faults import Faults
from emulators.salesforce.store import InvalidBatchError

CHUNK_SIZE = 200
IDLE_POLL_SECONDS = 0.5
LOCK_FAILURE_MESSAGE = "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"


class Applier(Protocol):
    def apply(self, operation: str, sobject: str, records: list[dict[str, Any]], *,
              external_id_field: str | None = ..., lock_row_rate: float = ...,
              rng: Any = ...) -> list[dict[str, Any]]: ...


class BulkWorker:
    """One daemon thread; `wake()` after queueing a batch to skip the idle wait."""

    def __init__(self, jobs: BulkJobs, store: Applier, faults: Faults) -> None:
        self._jobs = jobs
        self._store = store
        self._faults = faults
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulk-worker", daemon=True)

    def start(self) -> None:
        self._jobs.fail_interrupted()
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._jobs.claim_next()
            if batch is None:
                self._wake.wait(IDLE_POLL_SECONDS)
                self._wake.clear()
                continue
            try:
                self._process(batch)
            except Exception as exc:  # a sandbox bug must fail the batch, not the thread
                traceback.print_exc(file=sys.stderr)
                self._jobs.finish(batch.id, FAILED,
                                  f"InternalServerError : {type(exc).__name__}: {exc}")

    def _process(self, batch: ClaimedBatch) -> None:
        settings = self._faults.settings
        if settings.batch_delay_seconds and self._stop.wait(settings.batch_delay_seconds):
            return
        if self._faults.take_failed_batch():
            self._jobs.finish(batch.id, FAILED, LOCK_FAILURE_MESSAGE)
            return
        records: list[dict[str, Any]] = json.loads(batch.payload)
        for chunk_no, start in enumerate(range(0, len(records), CHUNK_SIZE)):
            chunk = records[start:start + CHUNK_SIZE]
            try:
                rows = self._store.apply(
                    batch.operation, batch.sobject, chunk,
                    external_id_field=batch.external_id_field,
                    lock_row_rate=self._faults.settings.lock_row_rate, rng=self._faults.rng,
                )
            except InvalidBatchError as exc:
                self._jobs.finish(batch.id, FAILED, f"InvalidBatch : {exc}")
                return
            failed = sum(1 for row in rows if not row.get("success"))
            if not self._jobs.record_chunk(batch.id, chunk_no, json.dumps(rows), failed,
                                           len(rows)):
                return  # the sandbox was reset under us
        self._jobs.finish(batch.id, COMPLETED)
