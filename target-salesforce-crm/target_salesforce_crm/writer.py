"""Bulk writes with a result check per row and bounded retries of transient failures.

A drain's writes for one object and operation share one Bulk API 1.0 job: batches of at
most `bulk_batch_size` records and 10 MB, the result of every batch compared row by row
with what was sent (results come back in request order; failed rows carry `id: null`, so
the position is the only link to the input). Rows that failed for a transient reason
(`UNABLE_TO_LOCK_ROW`, a batch Failed on lock contention or a timeout, a batch that could
not be delivered) go into a later batch of the same job after a back-off, at most
`max_record_retries` times; everything else ends as a reject with Salesforce's code. When
`write` returns, every item has exactly one outcome.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from target_salesforce_crm.errors import SalesforceError, TransientError
from target_salesforce_crm.outcomes import SourceRef

# `unchanged`: skipped by change detection, never handed to a writer.
WriteStatus = Literal["updated", "created", "rejected", "unchanged"]

MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 10_000_000
# Per-record codes worth another attempt: contention that clears by itself.
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"}
)
_TRANSIENT_BATCH_WORDS = ("lock", "timeout", "timed out")
MAX_BACKOFF_SECONDS = 60.0


class BulkApi(Protocol):
    """What the writer needs from `bulk.BulkClient`."""

    def create_job(self, operation: str, sobject: str, *,
                   external_id_field: str | None = None) -> str: ...

    def add_batch(self, job_id: str, records: list[dict[str, Any]]) -> str: ...

    def close_job(self, job_id: str) -> Any: ...

    def abort_job(self, job_id: str) -> Any: ...

    def wait(self, job_id: str, batch_ids: list[str]) -> Iterator[Any]: ...


@dataclass
class WriteItem:
    """One CRM record to write, and every input record that asked for it."""

    sources: list[SourceRef]
    payload: dict[str, Any]
    crm_id: str | None = None
    attempts: int = 0
    last_error: tuple[str, str, list[str]] | None = None
    # The CRM record's CreatedDate from the look-up: part of its change-detection identity.
    created_date: str | None = None


@dataclass
class WriteOutcome:
    item: WriteItem
    status: WriteStatus
    crm_id: str | None
    code: str | None = None
    message: str = ""
    fields: list[str] = field(default_factory=list)


@dataclass
class WriteSummary:
    outcomes: list[WriteOutcome] = field(default_factory=list)
    jobs: int = 0
    batches: int = 0
    retried: int = 0
    merged: int = 0


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
    """The same CRM record twice in one job is refused ("Duplicate Id specified"): merge.

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
                                         created_date=item.created_date)
            continue
        existing.sources.extend(item.sources)
        existing.payload.update(item.payload)
        count += 1
    return [*merged.values(), *loose], count


def _payload_size(payload: Mapping[str, Any]) -> int:
    """Bytes the record takes in the batch body, serialised as `bulk.add_batch` does it."""
    return len(json.dumps(payload, separators=(",", ":"), default=str).encode()) + 1


class BulkWriter:
    """Drives Bulk jobs for one run; stateless between `write` calls."""

    def __init__(
        self,
        bulk: BulkApi,
        *,
        batch_size: int = MAX_BATCH_RECORDS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_record_retries: int = 3,
        retry_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.bulk = bulk
        self.batch_size = min(batch_size, MAX_BATCH_RECORDS)
        self.max_batch_bytes = min(max_batch_bytes, MAX_BATCH_BYTES)
        self.max_record_retries = max_record_retries
        self.retry_backoff = retry_backoff
        self.sleep = sleep
        self.logger = logger or logging.getLogger(__name__)

    def write(
        self,
        sobject: str,
        operation: Literal["update", "upsert"],
        items: Sequence[WriteItem],
        *,
        external_id_field: str | None = None,
    ) -> WriteSummary:
        """Send `items`; every item comes back with exactly one outcome."""
        summary = WriteSummary()
        if operation == "update":
            pending, summary.merged = merge_items(items, lambda item: item.crm_id)
        else:
            assert external_id_field is not None
            pending, summary.merged = merge_items(
                items, lambda item: _text(item.payload.get(external_id_field))
            )
        if not pending:
            return summary
        for item in pending:
            item.payload = {name: json_ready(value) for name, value in item.payload.items()}
        job_id = self.bulk.create_job(operation, sobject, external_id_field=external_id_field)
        summary.jobs += 1
        label = f"{sobject} {operation}"
        try:
            round_no = 0
            while pending:
                if round_no:
                    delay = min(self.retry_backoff * 2 ** (round_no - 1), MAX_BACKOFF_SECONDS)
                    self.logger.info(
                        "%s: retrying %d records after a transient failure in %.1fs (round %d)",
                        label, len(pending), delay, round_no,
                    )
                    self.sleep(delay)
                    summary.retried += len(pending)
                retry = self._round(job_id, pending, summary, label)
                pending = []
                for item in retry:
                    item.attempts += 1
                    if item.attempts > self.max_record_retries:
                        code, message, fields = item.last_error or ("UNKNOWN", "", [])
                        summary.outcomes.append(WriteOutcome(
                            item, "rejected", item.crm_id, code,
                            f"{message} (gave up after {self.max_record_retries} retries)",
                            fields,
                        ))
                    else:
                        pending.append(item)
                round_no += 1
        except BaseException:
            self._abort(job_id, label)
            raise
        self.bulk.close_job(job_id)
        return summary

    def _batches(self, items: Sequence[WriteItem]) -> Iterator[list[WriteItem]]:
        batch: list[WriteItem] = []
        size = 2
        for item in items:
            item_size = _payload_size(item.payload)
            if batch and (len(batch) >= self.batch_size or size + item_size > self.max_batch_bytes):
                yield batch
                batch, size = [], 2
            batch.append(item)
            size += item_size
        if batch:
            yield batch

    def _round(
        self, job_id: str, items: Sequence[WriteItem], summary: WriteSummary, label: str
    ) -> list[WriteItem]:
        """Send `items` once; record final outcomes, return the ones to try again."""
        sent: dict[str, list[WriteItem]] = {}
        retry: list[WriteItem] = []
        for batch in self._batches(items):
            try:
                batch_id = self.bulk.add_batch(job_id, [item.payload for item in batch])
            except TransientError as exc:
                self.logger.warning("%s: a batch of %d could not be delivered: %s",
                                    label, len(batch), exc)
                for item in batch:
                    item.last_error = ("BATCH_NOT_DELIVERED", str(exc), [])
                retry.extend(batch)
                continue
            summary.batches += 1
            sent[batch_id] = batch
        if not sent:
            return retry
        for result in self.bulk.wait(job_id, list(sent)):
            batch = sent.pop(result.batch_id)
            retry.extend(self._check(result, batch, summary, label))
        for batch in sent.values():  # a batch the poller never reported: try again
            for item in batch:
                item.last_error = ("BATCH_NOT_REPORTED", "no result for this batch", [])
            retry.extend(batch)
        return retry

    def _check(
        self, result: Any, batch: list[WriteItem], summary: WriteSummary, label: str
    ) -> list[WriteItem]:
        state = str(result.state)
        if state != "Completed":
            message = str(result.state_message or state)
            transient = state == "NotProcessed" or any(
                word in message.lower() for word in _TRANSIENT_BATCH_WORDS
            )
            code = message.split(":", 1)[0].strip() or state
            self.logger.warning("%s: batch %s %s: %s", label, result.batch_id, state, message)
            if transient:
                for item in batch:
                    item.last_error = (code, message, [])
                return batch
            summary.outcomes.extend(
                WriteOutcome(item, "rejected", item.crm_id, code, f"batch {state}: {message}")
                for item in batch
            )
            return []
        rows = list(result.rows or [])
        retry: list[WriteItem] = []
        ok = failed = 0
        for position, item in enumerate(batch):
            if position >= len(rows):
                item.last_error = ("NO_RESULT_ROW", "the batch result has no row for it", [])
                retry.append(item)
                continue
            row = rows[position]
            if row.get("success"):
                ok += 1
                status: WriteStatus = "created" if row.get("created") else "updated"
                summary.outcomes.append(WriteOutcome(item, status, row.get("id") or item.crm_id))
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
            summary.outcomes.append(
                WriteOutcome(item, "rejected", item.crm_id, code, message, fields)
            )
        self.logger.info(
            "%s: batch %s checked: %d written, %d rejected, %d to retry",
            label, result.batch_id, ok, failed, len(retry),
        )
        return retry

    def _abort(self, job_id: str, label: str) -> None:
        try:
            self.bulk.abort_job(job_id)
        except SalesforceError as exc:
            self.logger.warning("%s: could not abort job %s: %s", label, job_id, exc)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class DryRunWriter:
    """Stands in for `BulkWriter` in a dry run: the same merging, no Bulk job, no call.

    Each merged item comes back `updated` (or `created` for an upsert), which is what a
    real run does when Salesforce accepts every row, so the report shows the run to come.
    """

    def write(
        self,
        sobject: str,
        operation: Literal["update", "upsert"],
        items: Sequence[WriteItem],
        *,
        external_id_field: str | None = None,
    ) -> WriteSummary:
        summary = WriteSummary()
        if operation == "update":
            pending, summary.merged = merge_items(items, lambda item: item.crm_id)
            status: WriteStatus = "updated"
        else:
            assert external_id_field is not None
            pending, summary.merged = merge_items(
                items, lambda item: _text(item.payload.get(external_id_field))
            )
            status = "created"
        summary.outcomes.extend(WriteOutcome(item, status, item.crm_id) for item in pending)
        return summary
