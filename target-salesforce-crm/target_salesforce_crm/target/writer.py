"""Bulk writes for a whole run: one job per object and operation, only full batches.

Every (object, operation, external id) gets ONE Bulk API 1.0 job for the run, created at
its first batch, kept open across drains (Salesforce processes the batches of an open
job) and closed once at the end. Items wait in a queue until they fill a batch of
`bulk_batch_size` records or 10 MB; only `settle` (before a STATE message and at the end)
sends a partial batch. Items for the same CRM record (update: the Id; upsert: the external
id) are merged while they wait, later input winning field by field, so no batch holds a
record twice ("Duplicate Id specified"); an item whose record is in a batch still being
processed waits for that batch, so the later input is also written later.

Sending never waits for Salesforce: finished batches are collected with one look at the
job's batch list (`collect`, at the start of a drain, at most every `check_every`
seconds), and the writer waits only when more than `max_unfinished` batches are
unanswered (memory stays bounded) or when settling. Each batch's result is compared row by
row with what was sent (results come back in request order; failed rows carry `id: null`,
so the position is the only link to the input). Rows that failed for a transient reason
(`UNABLE_TO_LOCK_ROW`, a batch Failed on lock contention or a timeout, a batch that could
not be delivered) go back into the queue for a later batch of the same job after a
back-off, at most `max_record_retries` times; everything else ends as a reject with
Salesforce's code. Outcomes go to `on_outcomes` batch by batch; when `settle` returns,
every item handed to `submit` has exactly one.

Parent-record locks: batches are cut by `batching.cut_batches`, which (with
`group_by_parent`) keeps one parent's children (a Contact's Account) in one batch; in a
Parallel job an item whose parent is in a batch still being processed waits for it, so
two running batches of the run never contend for a parent. Rows that fail
`UNABLE_TO_LOCK_ROW` all the same (other writers, a random lock) go again in a Serial job
of the same object, after their parent's batches are answered.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from target_salesforce_crm.errors import SalesforceError, TransientError
from target_salesforce_crm.target.batching import cut_batches
from target_salesforce_crm.target.journal import BulkJournal, JournalRow
from target_salesforce_crm.target.outcomes import SourceRef

# `unchanged`: skipped by change detection, never handed to a writer.
WriteStatus = Literal["updated", "created", "rejected", "unchanged"]
Operation = Literal["update", "upsert"]
ConcurrencyMode = Literal["Parallel", "Serial"]
LOCK_CODE = "UNABLE_TO_LOCK_ROW"

MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 10_000_000
# Salesforce accepts at most this many batches in one Bulk API 1.0 job.
MAX_BATCHES_PER_JOB = 10_000
# Batches sent and not yet answered before sending waits for the oldest: each holds up to
# 10,000 items in memory, and Salesforce works through a few batches at a time anyway.
MAX_UNFINISHED_BATCHES = 3
# Per-record codes worth another attempt: contention that clears by itself.
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"}
)
_TRANSIENT_BATCH_WORDS = ("lock", "timeout", "timed out")
MAX_BACKOFF_SECONDS = 60.0


class BulkApi(Protocol):
    """What the writer needs from `bulk.BulkClient`."""

    def create_job(self, operation: str, sobject: str, *,
                   external_id_field: str | None = None,
                   concurrency_mode: str = "Parallel") -> str: ...

    def add_batch(self, job_id: str, records: list[dict[str, Any]]) -> str: ...

    def close_job(self, job_id: str) -> Any: ...

    def abort_job(self, job_id: str) -> Any: ...

    def check(self, job_id: str, batch_ids: list[str]) -> tuple[list[Any], list[str]]: ...

    def wait(self, job_id: str, batch_ids: list[str], *, leave: int = 0) -> Iterator[Any]: ...


@dataclass(slots=True)
class WriteItem:
    """One CRM record to write, and every input record that asked for it."""

    sources: list[SourceRef]
    payload: dict[str, Any]
    crm_id: str | None = None
    attempts: int = 0
    last_error: tuple[str, str, list[str]] | None = None
    # The CRM record's CreatedDate from the look-up: part of its change-detection identity.
    created_date: str | None = None
    # A retry leaves no earlier than this (`time.monotonic()`); fresh items at once.
    not_before: float = 0.0
    # Bytes the payload takes in a batch body (measured when queued).
    size: int = 0
    # The parent record Salesforce locks with it (a Contact's AccountId), from the look-up.
    parent_id: str | None = None
    # Failed on a lock: goes again in the object's Serial job.
    serial: bool = False


@dataclass(slots=True)
class WriteOutcome:
    item: WriteItem
    status: WriteStatus
    crm_id: str | None
    code: str | None = None
    message: str = ""
    fields: list[str] = field(default_factory=list)


@dataclass
class WriteCounts:
    """What the writer did for one object, for the report."""

    jobs: int = 0
    batches: int = 0
    retried: int = 0
    merged: int = 0
    # Of `retried`: rows sent again in a Serial job after UNABLE_TO_LOCK_ROW.
    lock_retried: int = 0


OutcomeSink = Callable[[str, list[WriteOutcome]], None]


def json_ready(value: Any) -> Any:
    """Bulk JSON wants plain JSON values; the mapping may hand over dates and decimals."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def merge_items(items: Sequence[WriteItem], key: Callable[[WriteItem], str | None]) -> tuple[
        list[WriteItem], int]:
    """The same CRM record twice in one batch is refused ("Duplicate Id specified"): merge.

    Later input wins field by field; the merged item answers for all its sources.
    """
    merged: dict[str, WriteItem] = {}
    loose: list[WriteItem] = []
    count = 0
    for item in items:
        identity = key(item)
        if identity is None:
            loose.append(item)
            continue
        existing = merged.get(identity)
        if existing is None:
            merged[identity] = WriteItem(list(item.sources), dict(item.payload), item.crm_id,
                                         created_date=item.created_date,
                                         parent_id=item.parent_id)
            continue
        existing.sources.extend(item.sources)
        existing.payload.update(item.payload)
        count += 1
    return [*merged.values(), *loose], count


def identity_key(operation: str, external_id_field: str | None) -> Callable[
        [WriteItem], str | None]:
    """Which CRM record an item writes: its Id (update) or its external id (upsert)."""
    if operation == "update":
        return lambda item: item.crm_id
    if external_id_field is None:
        raise ValueError("an upsert needs its external id field")
    return lambda item: _text(item.payload.get(external_id_field))


def _payload_size(payload: Mapping[str, Any]) -> int:
    """Bytes the record takes in the batch body, serialised as `bulk.add_batch` does it."""
    return len(json.dumps(payload, separators=(",", ":"), default=str).encode()) + 1


def _merged(first: WriteItem, then: WriteItem) -> WriteItem:
    """One item for both: `then` is the later input, its values win."""
    payload = {**first.payload, **then.payload}
    return WriteItem(
        first.sources + then.sources, payload, first.crm_id or then.crm_id,
        attempts=max(first.attempts, then.attempts),
        last_error=first.last_error or then.last_error,
        created_date=first.created_date or then.created_date,
        not_before=max(first.not_before, then.not_before), size=_payload_size(payload),
        parent_id=first.parent_id or then.parent_id, serial=first.serial or then.serial,
    )


@dataclass
class _Sent:
    """A batch Salesforce has and has not answered yet."""

    seq: int
    items: list[WriteItem]


@dataclass
class _Job:
    """One object and operation of the run: its open job, its queue, its batches in flight."""

    sobject: str
    operation: Operation
    external_id_field: str | None
    identity: Callable[[WriteItem], str | None]
    open_id: str | None = None
    open_batches: int = 0
    # The Serial job for rows that failed on a lock (Parallel runs only).
    serial_id: str | None = None
    serial_batches: int = 0
    queued: dict[str, WriteItem] = field(default_factory=dict)
    loose: list[WriteItem] = field(default_factory=list)
    # job id -> batch id -> batch (a job that reached MAX_BATCHES_PER_JOB is closed while
    # its batches are still answered)
    in_flight: dict[str, dict[str, _Sent]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    # parent id -> unanswered batches holding children of it
    busy_parents: Counter[str] = field(default_factory=Counter)
    next_check: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.sobject} {self.operation}"

    def waiting(self) -> list[WriteItem]:
        return [*self.queued.values(), *self.loose]

    def unfinished(self) -> int:
        return sum(len(batches) for batches in self.in_flight.values())

    def oldest(self) -> tuple[int, str] | None:
        """Sequence number and job id of this object's oldest unanswered batch."""
        firsts = [(next(iter(batches.values())).seq, job_id)
                  for job_id, batches in self.in_flight.items() if batches]
        return min(firsts) if firsts else None


class BulkWriter:
    """Drives the run's Bulk jobs; outcomes reach `on_outcomes` as batches finish."""

    def __init__(
        self,
        bulk: BulkApi,
        *,
        on_outcomes: OutcomeSink,
        batch_size: int = MAX_BATCH_RECORDS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_batches_per_job: int = MAX_BATCHES_PER_JOB,
        max_unfinished: int = MAX_UNFINISHED_BATCHES,
        max_record_retries: int = 3,
        retry_backoff: float = 2.0,
        check_every: float = 10.0,
        concurrency_mode: ConcurrencyMode = "Parallel",
        group_by_parent: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
        journal: BulkJournal | None = None,
    ) -> None:
        self.bulk = bulk
        self.journal = journal
        self.on_outcomes = on_outcomes
        self.batch_size = min(batch_size, MAX_BATCH_RECORDS)
        self.max_batch_bytes = min(max_batch_bytes, MAX_BATCH_BYTES)
        self.max_batches_per_job = min(max_batches_per_job, MAX_BATCHES_PER_JOB)
        self.max_unfinished = max(max_unfinished, 1)
        self.max_record_retries = max_record_retries
        self.retry_backoff = retry_backoff
        self.check_every = check_every
        self.concurrency_mode = concurrency_mode
        self.group_by_parent = group_by_parent
        # Items held in the queue (waiting for a parent, a retry) before sending waits.
        self.max_waiting = (self.max_unfinished + 1) * self.batch_size
        self.sleep = sleep
        self.clock = clock
        self.logger = logger or logging.getLogger(__name__)
        self.counts: dict[str, WriteCounts] = {}
        self._jobs: dict[tuple[str, str, str | None], _Job] = {}
        self._seq = 0

    # -- the sink's side ------------------------------------------------------------------

    def submit(self, sobject: str, operation: Operation, items: Sequence[WriteItem], *,
               external_id_field: str | None = None) -> None:
        """Queue `items` (merged with what waits for the same records); send full batches."""
        job = self._job(sobject, operation, external_id_field)
        for item in items:
            item.payload = {name: json_ready(value) for name, value in item.payload.items()}
            item.size = _payload_size(item.payload)
            self._queue(job, item)
        self._send(job, partial=False)
        self._bound_waiting(job)

    def is_pending(self, sobject: str, operation: Operation, identity: str,
                   external_id_field: str | None = None) -> bool:
        """Whether a write to this record is queued or unanswered (its outcome is open)."""
        job = self._jobs.get((sobject, operation, external_id_field))
        return job is not None and (identity in job.queued or identity in job.busy)

    def collect(self) -> None:
        """Fold the batches that finished meanwhile: one look per job, never a wait."""
        now = self.clock()
        for job in self._jobs.values():
            if not job.in_flight or now < job.next_check:
                continue
            job.next_check = now + self.check_every
            for job_id, batches in list(job.in_flight.items()):
                finished, _unfinished = self.bulk.check(job_id, list(batches))
                for result in finished:
                    self._finished(job, job_id, result)

    def settle(self) -> None:
        """Send what waits (partial batches too), wait for every answer, retry; then return.

        Afterwards every item handed to `submit` has its outcome; the jobs stay open.
        """
        while True:
            waiting = [item for job in self._jobs.values() for item in job.waiting()]
            if waiting:
                now = self.clock()
                delay = max(item.not_before for item in waiting) - now
                if delay > 0:
                    self.logger.info(
                        "Sending %d records again in %.1fs, after a transient failure",
                        sum(1 for item in waiting if item.not_before > now), delay)
                    self.sleep(delay)
                for job in self._jobs.values():
                    self._send(job, partial=True)
            if not any(job.in_flight for job in self._jobs.values()):
                if not any(job.waiting() for job in self._jobs.values()):
                    return
                continue
            for job in self._jobs.values():
                for job_id in list(job.in_flight):
                    self._wait(job, job_id, leave=0)

    def close(self) -> None:
        """The end of the run: settle, then close every job (once)."""
        self.settle()
        for job in self._jobs.values():
            for job_id in (job.open_id, job.serial_id):
                if job_id is not None:
                    self._close_job(job_id)
            job.open_id = job.serial_id = None

    def abort(self) -> None:
        """The run failed: stop every job still open or answering; drop what waits."""
        for job in self._jobs.values():
            opened = [job_id for job_id in (job.open_id, job.serial_id) if job_id]
            ids = dict.fromkeys([*job.in_flight, *opened])
            for job_id in ids:
                try:
                    self.bulk.abort_job(job_id)
                    if self.journal is not None:
                        self.journal.job_state(job_id, "Aborted")
                except SalesforceError as exc:
                    self.logger.warning("%s: could not abort job %s: %s", job.label, job_id,
                                        exc)
        self._jobs.clear()

    # -- queue ----------------------------------------------------------------------------

    def _job(self, sobject: str, operation: Operation, external_id_field: str | None) -> _Job:
        key = (sobject, operation, external_id_field if operation == "upsert" else None)
        job = self._jobs.get(key)
        if job is None:
            job = _Job(sobject, operation, key[2], identity_key(operation, key[2]))
            self._jobs[key] = job
            self.counts.setdefault(sobject, WriteCounts())
        return job

    def _queue(self, job: _Job, item: WriteItem, *, retry: bool = False) -> None:
        """Add to the queue; an item for a record already waiting is merged into it.

        A retried item is older input than one that waits for the same record, so the
        waiting item's values win.
        """
        identity = job.identity(item)
        if identity is None:
            job.loose.append(item)
            return
        existing = job.queued.get(identity)
        if existing is None:
            job.queued[identity] = item
            return
        job.queued[identity] = _merged(item, existing) if retry else _merged(existing, item)
        self.counts[job.sobject].merged += 1

    def _serial(self, item: WriteItem) -> bool:
        """Whether the item goes in the object's Serial job rather than the main one."""
        return item.serial and self.concurrency_mode == "Parallel"

    def _ready(self, job: _Job, item: WriteItem, now: float) -> bool:
        if item.not_before > now or job.identity(item) in job.busy:
            return False
        # A Parallel job's batches run at once: wait while the parent is being written.
        holds_back = self.concurrency_mode == "Parallel" and (
            self.group_by_parent or item.serial)
        return not (holds_back and item.parent_id and job.busy_parents[item.parent_id])

    def _current(self, job: _Job, item: WriteItem) -> bool:
        """Still the queue's item for its record (not merged with a retry meanwhile)."""
        identity = job.identity(item)
        if identity is None:
            return any(loose is item for loose in job.loose)
        return job.queued.get(identity) is item

    def _send(self, job: _Job, *, partial: bool) -> None:
        """Send the queue's ready items as full batches (and the rest too when `partial`)."""
        now = self.clock()
        lanes: dict[bool, list[WriteItem]] = {False: [], True: []}
        for item in job.waiting():
            if self._current(job, item) and self._ready(job, item, now):
                lanes[self._serial(item)].append(item)
        for serial, items in lanes.items():
            batches = cut_batches(items, batch_size=self.batch_size,
                                  max_bytes=self.max_batch_bytes, grouped=self.group_by_parent)
            for number, planned in enumerate(batches):
                if (number == len(batches) - 1 and not partial
                        and len(planned) < self.batch_size):
                    break  # the last one waits to be filled
                # sending may have waited for room and folded retries: check again
                now = self.clock()
                batch = [i for i in planned if self._current(job, i) and self._ready(job, i, now)]
                if batch:
                    self._send_batch(job, batch, serial=serial)

    def _bound_waiting(self, job: _Job) -> None:
        """Too many items held back (parents being written): wait for batches to answer."""
        while len(job.queued) + len(job.loose) > self.max_waiting and job.in_flight:
            _seq, job_id = job.oldest() or (0, "")
            self._wait(job, job_id, leave=len(job.in_flight[job_id]) - 1)
            self._send(job, partial=False)

    def _open_job(self, job: _Job, *, serial: bool = False) -> str:
        if serial:
            if job.serial_id is not None and job.serial_batches >= self.max_batches_per_job:
                self._close_job(job.serial_id)
                job.serial_id = None
            if job.serial_id is None:
                job.serial_id = self._create_job(job, "Serial")
                job.serial_batches = 0
            return job.serial_id
        if job.open_id is not None and job.open_batches >= self.max_batches_per_job:
            self._close_job(job.open_id)
            job.open_id = None
        if job.open_id is None:
            job.open_id = self._create_job(job, self.concurrency_mode)
            job.open_batches = 0
        return job.open_id

    def _create_job(self, job: _Job, mode: str) -> str:
        self.counts[job.sobject].jobs += 1
        job_id = self.bulk.create_job(job.operation, job.sobject,
                                      external_id_field=job.external_id_field,
                                      concurrency_mode=mode)
        if self.journal is not None:
            self.journal.job_opened(job_id, job.sobject, job.operation, job.external_id_field)
        return job_id

    def _close_job(self, job_id: str) -> None:
        self.bulk.close_job(job_id)
        if self.journal is not None:
            self.journal.job_state(job_id, "Closed")

    def _send_batch(self, job: _Job, batch: list[WriteItem], *, serial: bool = False) -> None:
        for item in batch:
            identity = job.identity(item)
            if identity is not None:
                del job.queued[identity]
        if job.loose:
            leaving = {id(item) for item in batch}
            job.loose = [item for item in job.loose if id(item) not in leaving]
        job_id = self._open_job(job, serial=serial)
        token = None if self.journal is None else self.journal.sending(job_id, [
            JournalRow(item.crm_id, item.created_date, item.payload) for item in batch])
        try:
            batch_id = self.bulk.add_batch(job_id, [item.payload for item in batch])
        except TransientError as exc:
            if self.journal is not None and token is not None:
                self.journal.not_sent(token)
            self.logger.warning("%s: a batch of %d could not be delivered: %s",
                                job.label, len(batch), exc)
            for item in batch:
                item.last_error = ("BATCH_NOT_DELIVERED", str(exc), [])
            self._retry(job, batch)
            return
        if self.journal is not None and token is not None:
            self.journal.sent(token, batch_id)
        if serial:
            job.serial_batches += 1
        else:
            job.open_batches += 1
        self.counts[job.sobject].batches += 1
        self._seq += 1
        if not job.in_flight:
            job.next_check = self.clock() + self.check_every
        job.in_flight.setdefault(job_id, {})[batch_id] = _Sent(self._seq, batch)
        job.busy.update(identity for item in batch if (identity := job.identity(item)))
        job.busy_parents.update({item.parent_id for item in batch if item.parent_id})
        self._bound()

    def _bound(self) -> None:
        """More batches unanswered than allowed: wait until enough of the oldest are."""
        while True:
            unfinished = self._unfinished()
            excess = unfinished - self.max_unfinished
            if excess <= 0:
                return
            _seq, job_id, job = min(
                (*oldest, job) for job in self._jobs.values()
                if (oldest := job.oldest()) is not None
            )
            self._wait(job, job_id, leave=max(len(job.in_flight[job_id]) - excess, 0))
            if self._unfinished() >= unfinished:
                return  # nothing came back: the poller gave up, its error says why

    def _unfinished(self) -> int:
        return sum(job.unfinished() for job in self._jobs.values())

    # -- answers --------------------------------------------------------------------------

    def _wait(self, job: _Job, job_id: str, *, leave: int) -> None:
        batches = job.in_flight.get(job_id, {})
        for result in self.bulk.wait(job_id, list(batches), leave=leave):
            self._finished(job, job_id, result)
        if leave == 0 and job.in_flight.get(job_id):
            # A batch the poller never reported: send its records again.
            for batch_id in list(job.in_flight[job_id]):
                sent = self._forget(job, job_id, batch_id)
                for item in sent.items:
                    item.last_error = ("BATCH_NOT_REPORTED", "no result for this batch", [])
                self._retry(job, sent.items)
                self._answered(batch_id)

    def _forget(self, job: _Job, job_id: str, batch_id: str) -> _Sent:
        batches = job.in_flight[job_id]
        sent = batches.pop(batch_id)
        if not batches:
            del job.in_flight[job_id]
        job.busy.difference_update(job.identity(item) for item in sent.items)
        for parent in {item.parent_id for item in sent.items if item.parent_id}:
            job.busy_parents[parent] -= 1
            if job.busy_parents[parent] <= 0:
                del job.busy_parents[parent]
        return sent

    def _finished(self, job: _Job, job_id: str, result: Any) -> None:
        sent = self._forget(job, job_id, str(result.batch_id))
        outcomes, retry = batch_outcomes(result, sent.items, job.label, self.logger)
        if outcomes:
            self.on_outcomes(job.sobject, outcomes)
        if retry:
            self._retry(job, retry)
        self._answered(str(result.batch_id))

    def _answered(self, batch_id: str) -> None:
        """Its outcomes are folded (fingerprints committed): the journal can let it go."""
        if self.journal is not None:
            self.journal.answered(batch_id)

    def _retry(self, job: _Job, items: list[WriteItem]) -> None:
        """Back into the queue after a back-off, or a reject once retries are used up."""
        now = self.clock()
        given_up: list[WriteOutcome] = []
        again = 0
        for item in items:
            item.attempts += 1
            if item.attempts > self.max_record_retries:
                code, message, fields = item.last_error or ("UNKNOWN", "", [])
                given_up.append(WriteOutcome(
                    item, "rejected", item.crm_id, code,
                    f"{message} (gave up after {self.max_record_retries} retries)", fields,
                ))
                continue
            delay = min(self.retry_backoff * 2 ** (item.attempts - 1), MAX_BACKOFF_SECONDS)
            item.not_before = now + delay
            if item.last_error and item.last_error[0] == LOCK_CODE:
                item.serial = True
                self.counts[job.sobject].lock_retried += 1
            self._queue(job, item, retry=True)
            again += 1
        if again:
            self.counts[job.sobject].retried += again
            self.logger.info("%s: %d records go again after a transient failure",
                             job.label, again)
        if given_up:
            self.on_outcomes(job.sobject, given_up)


def batch_outcomes(
    result: Any, batch: list[WriteItem], label: str, logger: logging.Logger,
) -> tuple[list[WriteOutcome], list[WriteItem]]:
    """Final outcomes of a finished batch, and the items to send again.

    Rows come back in request order: the position is the only link between a failed row
    (`id: null`) and the record sent.
    """
    state = str(result.state)
    if state != "Completed":
        message = str(result.state_message or state)
        transient = state == "NotProcessed" or any(
            word in message.lower() for word in _TRANSIENT_BATCH_WORDS
        )
        code = message.split(":", 1)[0].strip() or state
        logger.warning("%s: batch %s %s: %s", label, result.batch_id, state, message)
        if transient:
            for item in batch:
                item.last_error = (code, message, [])
            return [], batch
        return [
            WriteOutcome(item, "rejected", item.crm_id, code, f"batch {state}: {message}")
            for item in batch
        ], []
    rows = list(result.rows or [])
    outcomes: list[WriteOutcome] = []
    retry: list[WriteItem] = []
    ok = failed = 0
    for position, item in enumerate(batch):
        row = rows[position] if position < len(rows) else None
        if row is None:  # no row, or one a failed Bulk 2.0 job left unprocessed
            item.last_error = ("NO_RESULT_ROW", str(result.state_message or
                               "the batch result has no row for it"), [])
            retry.append(item)
            continue
        if row.get("success"):
            ok += 1
            status: WriteStatus = "created" if row.get("created") else "updated"
            outcomes.append(WriteOutcome(item, status, row.get("id") or item.crm_id))
            continue
        errors = row.get("errors") or [{}]
        first = errors[0]
        code = str(first.get("statusCode") or "UNKNOWN_ERROR")
        message = "; ".join(str(e.get("message", "")) for e in errors)
        fields = [str(f) for e in errors for f in (e.get("fields") or [])]
        if code in TRANSIENT_CODES:
            item.last_error = (code, message, fields)
            retry.append(item)
            continue
        failed += 1
        outcomes.append(WriteOutcome(item, "rejected", item.crm_id, code, message, fields))
    logger.info(
        "%s: batch %s checked: %d written, %d rejected, %d to retry",
        label, result.batch_id, ok, failed, len(retry),
    )
    return outcomes, retry


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class DryRunWriter:
    """Stands in for `BulkWriter` in a dry run: the same merging, no Bulk job, no call.

    Each merged item comes back `updated` (or `created` for an upsert) at once, which is
    what a real run does when Salesforce accepts every row, so the report shows the run to
    come.
    """

    def __init__(self, *, on_outcomes: OutcomeSink) -> None:
        self.on_outcomes = on_outcomes
        self.counts: dict[str, WriteCounts] = {}

    def submit(self, sobject: str, operation: Operation, items: Sequence[WriteItem], *,
               external_id_field: str | None = None) -> None:
        counts = self.counts.setdefault(sobject, WriteCounts())
        pending, merged = merge_items(items, identity_key(operation, external_id_field))
        counts.merged += merged
        status: WriteStatus = "updated" if operation == "update" else "created"
        self.on_outcomes(sobject, [WriteOutcome(item, status, item.crm_id) for item in pending])

    def is_pending(self, sobject: str, operation: Operation, identity: str,
                   external_id_field: str | None = None) -> bool:
        """Nothing waits in a dry run."""
        return False

    def collect(self) -> None:
        """Nothing is sent, so nothing comes back."""

    def settle(self) -> None:
        """Outcomes were given at `submit`."""

    def close(self) -> None:
        """No job to close."""

    def abort(self) -> None:
        """No job to abort."""
