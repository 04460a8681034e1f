"""The worker pool that advances Bulk batches Queued -> InProgress -> done.

Like Salesforce, a few batches are processed at once (`WORKERS` threads): any batch of a
Parallel job, but only one batch of all Serial jobs at a time. Each batch is applied in
chunks of 200 records, recording results and counters after every chunk so that polling
shows progress. A chunk first locks the parents of its records (`bulk_locks`) and keeps
them until its batch ends; a record whose parent another running batch still holds after
`lock_wait_seconds` fails `UNABLE_TO_LOCK_ROW`. This is also the only place the injected
batch faults (delay, whole-batch failure, random locked rows) take effect.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any, Protocol

from emulators.salesforce.bulk_jobs import COMPLETED, FAILED, BulkJobs, ClaimedBatch
from emulators.salesforce.bulk_locks import ParentLocks, RecordReader, parents_of
from emulators.salesforce.faults import Faults
from emulators.salesforce.store import InvalidBatchError

CHUNK_SIZE = 200
IDLE_POLL_SECONDS = 0.5
# Batches processed at the same time (Salesforce: a few per org, more under no load).
WORKERS = 3
LOCK_FAILURE_MESSAGE = "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"


class Applier(RecordReader, Protocol):
    def apply(self, operation: str, sobject: str, records: list[dict[str, Any]], *,
              external_id_field: str | None = ..., lock_row_rate: float = ...,
              rng: Any = ..., locked: Sequence[bool] | None = ...) -> list[dict[str, Any]]: ...


class BulkWorker:
    """`WORKERS` daemon threads; `wake()` after queueing a batch to skip the idle wait."""

    def __init__(self, jobs: BulkJobs, store: Applier, faults: Faults, *,
                 workers: int = WORKERS) -> None:
        self._jobs = jobs
        self._store = store
        self._faults = faults
        self.locks = ParentLocks()
        self._changed = threading.Condition()
        self._generation = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"bulk-worker-{n}",
                                          daemon=True) for n in range(max(workers, 1))]

    def start(self) -> None:
        self._jobs.fail_interrupted()
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                seen = self._generation
            batch = self._jobs.claim_next()
            if batch is None:
                with self._changed:
                    if self._generation == seen and not self._stop.is_set():
                        self._changed.wait(IDLE_POLL_SECONDS)
                continue
            self.wake()  # another idle worker may take the next batch
            try:
                self._process(batch)
            except Exception as exc:  # a sandbox bug must fail the batch, not the thread
                traceback.print_exc(file=sys.stderr)
                self._jobs.finish(batch.id, FAILED,
                                  f"InternalServerError : {type(exc).__name__}: {exc}")
            finally:
                self.locks.release(batch.id)
                self.wake()  # a Serial job's next batch may go now

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
            settings = self._faults.settings
            try:
                locked = self._lock_parents(batch, chunk, settings.lock_wait_seconds)
                rows = self._store.apply(
                    batch.operation, batch.sobject, chunk,
                    external_id_field=batch.external_id_field,
                    lock_row_rate=settings.lock_row_rate, rng=self._faults.rng, locked=locked,
                )
            except InvalidBatchError as exc:
                self._jobs.finish(batch.id, FAILED, f"InvalidBatch : {exc}")
                return
            failed = sum(1 for row in rows if not row.get("success"))
            if not self._jobs.record_chunk(batch.id, chunk_no, json.dumps(rows), failed,
                                           len(rows)):
                return  # the sandbox was reset under us
            if settings.record_processing_ms and self._stop.wait(
                    settings.record_processing_ms * len(chunk) / 1000):
                return
        self._jobs.finish(batch.id, COMPLETED)

    def _lock_parents(self, batch: ClaimedBatch, chunk: list[dict[str, Any]],
                      wait: float) -> list[bool]:
        """Lock the chunk's parents for the batch; True for records whose parent is taken."""
        parents = parents_of(self._store, batch.sobject, batch.operation,
                             batch.external_id_field, chunk)
        wanted = set().union(*parents)
        if not wanted:
            return [False] * len(chunk)
        refused = self.locks.acquire(batch.id, wanted, wait)
        return [bool(record_parents & refused) for record_parents in parents]
