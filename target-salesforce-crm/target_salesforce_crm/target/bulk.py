"""Bulk API 1.0 (JSON) job lifecycle, driven here rather than by simple-salesforce.

simple-salesforce's bulk handler cannot renew a session, polls every 5 s without a way to
tune it and drops a trailing one-record batch; this driver goes through
`SalesforceClient.request` (retries, re-authentication, call counting) and polls the
job-level batch list with a backoff that starts short and grows.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import SalesforceError, UnansweredError

MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 10_000_000
OPERATIONS = frozenset({"insert", "update", "upsert", "delete", "hardDelete"})
FINISHED_STATES = frozenset({"Completed", "Failed", "NotProcessed"})
CONCURRENCY_MODES = ("Parallel", "Serial")
POLL_GROWTH = 1.5
# Sends of one batch whose answers never come before the writer is told it failed.
UNANSWERED_ATTEMPTS = 3
JSON_HEADERS = {"Content-Type": "application/json; charset=UTF-8",
                "Accept": "application/json"}


def sleep(seconds: float) -> None:
    """Indirection so tests can skip the waiting."""
    time.sleep(seconds)


class BatchTooLarge(SalesforceError, ValueError):
    """A batch over Salesforce's record or byte limit, caught before sending it."""


class BulkTimeout(SalesforceError):
    """Batches still unfinished after `poll_timeout` seconds."""


@dataclass
class BatchResult:
    """A finished batch: Completed with one result row per request record, else no rows."""

    batch_id: str
    state: str
    state_message: str | None
    rows: list[dict[str, Any]]


class BulkClient:
    """Create a job, add batches, close it, check or wait for results; abort on trouble."""

    def __init__(self, client: SalesforceClient, *, poll_initial: float = 0.5,
                 poll_max: float = 10.0, poll_timeout: float = 3600) -> None:
        self.client = client
        # job id -> the batch ids this client added: how a batch whose reply was lost is
        # told apart from the others in the job's batch list.
        self._added: dict[str, set[str]] = {}
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.poll_timeout = poll_timeout

    def _path(self, *parts: str) -> str:
        return "/".join((self.client.bulk_path, "job", *parts))

    def _call(self, method: str, path: str, body: Any = None, *,
              data: bytes | None = None, replayable: bool = True) -> Any:
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
        answer = self.client.request(method, path, kind="bulk", headers=JSON_HEADERS, data=data,
                                     replayable=replayable)
        return answer.json()

    def create_job(self, operation: str, sobject: str, *,
                   external_id_field: str | None = None,
                   concurrency_mode: str = "Parallel") -> str:
        """Open a JSON job, Parallel or Serial (one batch at a time); upsert needs the
        external id field."""
        if operation not in OPERATIONS:
            raise ValueError(f"Bulk operation {operation!r} is not one of {sorted(OPERATIONS)}")
        if operation == "upsert" and not external_id_field:
            raise ValueError(f"Bulk upsert of {sobject} needs external_id_field")
        if concurrency_mode not in CONCURRENCY_MODES:
            raise ValueError(f"concurrency_mode {concurrency_mode!r} is not one of "
                             f"{', '.join(CONCURRENCY_MODES)}")
        job: dict[str, Any] = {"operation": operation, "object": sobject,
                               "contentType": "JSON", "concurrencyMode": concurrency_mode}
        if operation == "upsert":
            job["externalIdFieldName"] = external_id_field
        for attempt in range(1, UNANSWERED_ATTEMPTS + 1):
            asked = dt.datetime.now(dt.UTC)
            try:
                job_id = str(self._call("POST", self._path(), job, replayable=False)["id"])
                break
            except UnansweredError as exc:
                # Salesforce may have opened it: an Open job left behind would never close.
                found = [job_id for job_id in self.open_jobs(sobject, operation, since=asked)
                         if job_id not in self._added]
                if len(found) > 1:
                    raise SalesforceError(
                        f"Bulk {operation} of {sobject}: after an unanswered job creation "
                        f"{len(found)} new Open jobs appeared ({', '.join(found)}); is another "
                        "process writing the same object?") from exc
                if found:
                    job_id = found[0]
                    self.client.logger.warning(
                        "Bulk %s of %s: the answer to the job creation was lost; Salesforce "
                        "opened it as job %s, which is used", operation, sobject, job_id)
                    break
                if attempt == UNANSWERED_ATTEMPTS:
                    raise
        self._added.setdefault(job_id, set())
        return job_id

    def open_jobs(self, sobject: str, operation: str, *, since: dt.datetime) -> list[str]:
        """Open Bulk 1.0 jobs of this object and operation created since `since` (less a
        minute for clock skew): "Get All Jobs", 1,000 a page."""
        earliest = since - dt.timedelta(minutes=1)
        path: str | None = f"{self.client.rest_path}/jobs/ingest?jobType=Classic"
        found: list[str] = []
        while path:
            page = self.client.request("GET", path, kind="bulk").json()
            for info in page.get("records") or []:
                created = _instant(str(info.get("createdDate") or ""))
                if (info.get("state") == "Open" and info.get("object") == sobject
                        and info.get("operation") == operation
                        and (created is None or created >= earliest)):
                    found.append(str(info.get("id")))
            path = None if page.get("done", True) else page.get("nextRecordsUrl")
        return found

    def add_batch(self, job_id: str, records: list[dict[str, Any]]) -> str:
        """Queue one batch; limits are checked here so no call is wasted on a refusal."""
        if not records:
            raise BatchTooLarge(f"Bulk job {job_id}: a batch needs at least one record")
        if len(records) > MAX_BATCH_RECORDS:
            raise BatchTooLarge(
                f"Bulk job {job_id}: batch of {len(records)} records exceeds Salesforce's "
                f"{MAX_BATCH_RECORDS}-record limit; split it (bulk_batch_size)")
        data = json.dumps(records, separators=(",", ":"), default=str).encode()
        if len(data) > MAX_BATCH_BYTES:
            raise BatchTooLarge(
                f"Bulk job {job_id}: batch of {len(records)} records is {len(data)} bytes, "
                f"over Salesforce's {MAX_BATCH_BYTES}-byte limit; use smaller batches")
        added = self._added.setdefault(job_id, set())
        for attempt in range(1, UNANSWERED_ATTEMPTS + 1):
            try:
                batch_id = str(self._call("POST", self._path(job_id, "batch"), data=data,
                                          replayable=False)["id"])
                break
            except UnansweredError as exc:
                # Salesforce may have the batch: look before sending it a second time.
                found = sorted(set(self.batch_ids(job_id)) - added)
                if len(found) > 1:
                    raise SalesforceError(
                        f"Bulk job {job_id}: after an unanswered batch POST the job holds "
                        f"{len(found)} batches this run did not add ({', '.join(found)}); "
                        "is another process writing to it?") from exc
                if found:
                    batch_id = found[0]
                    self.client.logger.warning(
                        "Bulk job %s: the answer to a batch of %d records was lost; Salesforce "
                        "has it as batch %s, so it is not sent again", job_id, len(records),
                        batch_id)
                    break
                if attempt == UNANSWERED_ATTEMPTS:
                    raise
                self.client.logger.warning(
                    "Bulk job %s: a batch of %d records went unanswered and is not in the job; "
                    "sending it again", job_id, len(records))
        added.add(batch_id)
        return batch_id

    def batch_ids(self, job_id: str) -> list[str]:
        """Every batch of a job, in Salesforce's order (one GET of its batch list)."""
        listing = self._call("GET", self._path(job_id, "batch"))
        return [str(info.get("id")) for info in _batch_infos(listing)]

    def close_job(self, job_id: str) -> None:
        """No more batches: Salesforce finishes the queued ones."""
        self._call("POST", self._path(job_id), {"state": "Closed"})

    def abort_job(self, job_id: str) -> None:
        """Stop the job: unprocessed batches end NotProcessed."""
        self._call("POST", self._path(job_id), {"state": "Aborted"})

    def check(self, job_id: str, batch_ids: list[str]) -> tuple[list[BatchResult], list[str]]:
        """One look at the job: the batches of `batch_ids` that finished, and the others.

        A single GET of the job's batch list (not one per batch), plus the result of each
        Completed batch; never sleeps, so ingestion goes on while Salesforce works.
        """
        listing = self._call("GET", self._path(job_id, "batch"))
        infos = {str(info.get("id")): info for info in _batch_infos(listing)}
        finished: list[BatchResult] = []
        unfinished: list[str] = []
        for batch_id in dict.fromkeys(batch_ids):
            info = infos.get(batch_id)
            if info is None:
                raise SalesforceError(
                    f"Bulk job {job_id}: batch {batch_id} is not in the job's batch list")
            state = str(info.get("state"))
            if state not in FINISHED_STATES:
                unfinished.append(batch_id)
                continue
            finished.append(self._finished(job_id, batch_id, state, info.get("stateMessage")))
        return finished, unfinished

    def wait(self, job_id: str, batch_ids: list[str], *, leave: int = 0) -> Iterator[BatchResult]:
        """Yield batches as they finish until at most `leave` of them are unfinished.

        Polls with `check`; the interval starts at `poll_initial` and grows to `poll_max`,
        so the number of polls follows the server's processing time. A Failed or
        NotProcessed batch yields no rows, only its state message.
        """
        pending = list(dict.fromkeys(batch_ids))
        interval = self.poll_initial
        waited = 0.0
        while len(pending) > leave:
            finished, pending = self.check(job_id, pending)
            yield from finished
            if len(pending) <= leave:
                return
            if waited + interval > self.poll_timeout:
                raise BulkTimeout(
                    f"Bulk job {job_id}: {len(pending)} batch(es) still unfinished after "
                    f"{waited:.0f}s ({', '.join(pending[:5])}); check Setup > Bulk Data Load "
                    "Jobs in Salesforce, or raise the poll timeout")
            sleep(interval)
            waited += interval
            interval = min(self.poll_max, interval * POLL_GROWTH)

    def _finished(self, job_id: str, batch_id: str, state: str,
                  message: Any) -> BatchResult:
        rows: list[dict[str, Any]] = []
        if state == "Completed":
            rows = self._call("GET", self._path(job_id, "batch", batch_id, "result"))
            if not isinstance(rows, list):
                raise SalesforceError(
                    f"Bulk job {job_id} batch {batch_id}: result is not a JSON array")
        return BatchResult(batch_id, state, None if message in (None, "") else str(message),
                           rows)


def _instant(text: str) -> dt.datetime | None:
    """A Salesforce timestamp (`2026-12-06T21:00:00.000+0000`), None when unreadable."""
    value = text.replace("Z", "+00:00")
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _batch_infos(listing: Any) -> list[dict[str, Any]]:
    """`{"batchInfo": [...]}`; tolerate a bare list or a single object."""
    infos = listing.get("batchInfo", []) if isinstance(listing, dict) else listing
    if isinstance(infos, dict):
        infos = [infos]
    return [info for info in infos or [] if isinstance(info, dict)]
