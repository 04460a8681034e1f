"""Bulk API 2.0 ingest behind the writer's `BulkApi` protocol (`bulk_api: "2.0"`).

A 2.0 job answers only once it is finished as a whole, so the writer's batches, whose
results let every STATE settle while the run goes on, each become one ingest job: create,
upload the CSV, `UploadComplete` (three calls where Bulk 1.0 adds a batch in one). The
writer's "job" is only a local handle grouping them; it costs no call to open or close.

Results come back as CSV, `successfulResults` and `failedResults`, in no promised order.
Each row echoes the columns as uploaded, so it is matched back to the record it answers by
the column that names the CRM record: `Id` for update and delete, the external id for
upsert, and the whole row for insert (identical rows are interchangeable). The rows are
then handed on in request order, shaped as Bulk 1.0's results, so the writer's outcome,
retry and reject rules apply unchanged. A results set is fetched only when the job's
counters say it holds rows; `unprocessedrecords` is never fetched, since a record answered
by neither set is unprocessed, and goes back to the writer as a missing row (retried).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.errors import ApiError, SalesforceError, TransientError
from target_salesforce_crm.target.bulk import OPERATIONS, BatchResult, BatchTooLarge, BulkClient

MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # per job, before Salesforce's base64 encoding
NULL = "#N/A"  # sets a field to null; an empty cell would leave it unchanged
FINISHED = frozenset({"JobComplete", "Failed", "Aborted"})
RESULT_SETS = ("successfulResults", "failedResults")
JSON_HEADERS = {"Content-Type": "application/json; charset=UTF-8",
                "Accept": "application/json"}
CSV_HEADERS = {"Content-Type": "text/csv; charset=UTF-8", "Accept": "application/json"}


@dataclass
class _Handle:
    operation: str
    sobject: str
    external_id_field: str | None
    uploads: list[str]  # ingest jobs of this handle not yet reported finished


@dataclass
class _Upload:
    handle: str
    keys: list[str]  # per record in request order: what identifies its result row
    key_columns: tuple[str, ...]


def cell(value: Any) -> str:
    """A JSON-ready value as Bulk 2.0 CSV text; null (and "", as Bulk JSON reads it) → #N/A."""
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return format(value, "f") if "e" in text else text
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    return str(value)


def flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """A reference by external id (`{"Account": {"Ext__c": "A1"}}`) is `Account.Ext__c`."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, dict):
            out.update({f"{name}.{inner}": item for inner, item in value.items()})
        else:
            out[name] = value
    return out


def to_csv(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]], bytes]:
    """Columns (the union, first seen first), each record's cells, and the upload body.

    A column a record lacks is an empty cell, which leaves that field unchanged: what the
    missing key means in a Bulk JSON record.
    """
    rows = [flat(record) for record in records]
    columns = list(dict.fromkeys(name for row in rows for name in row))
    cells = [[cell(row[name]) if name in row else "" for name in columns] for row in rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(cells)
    return columns, cells, buffer.getvalue().encode()


def key_columns(operation: str, external_id_field: str | None,
                columns: Sequence[str]) -> tuple[str, ...]:
    """The columns whose echo identifies a result row: the record's Id, its external id,
    or (insert) all of them."""
    by_name = {name.lower(): name for name in columns}
    wanted = {"update": "id", "delete": "id", "hardDelete": "id",
              "upsert": (external_id_field or "").lower()}.get(operation)
    if wanted and wanted in by_name:
        return (by_name[wanted],)
    return tuple(columns)


def _key(values: Iterable[str]) -> str:
    return "\x1f".join(values)


def parse_error(text: str) -> dict[str, Any]:
    """`sf__Error` (`CODE:message:Field1,Field2 --`) as a Bulk 1.0 error entry."""
    code, _, rest = text.partition(":")
    rest = rest.strip()
    rest = rest.removesuffix("--").rstrip()
    message, colon, fields = rest.rpartition(":")
    if not colon or " " in fields.strip(","):
        message, fields = rest, ""
    return {"statusCode": code.strip() or "UNKNOWN_ERROR", "message": message.strip(),
            "fields": [name for name in fields.split(",") if name]}


class Bulk2Client(BulkClient):
    """Bulk API 2.0 ingest with Bulk 1.0's surface; polling (`wait`) is inherited."""

    def __init__(self, client: Any, **polling: float) -> None:
        super().__init__(client, **polling)
        self._handles: dict[str, _Handle] = {}
        self._uploads: dict[str, _Upload] = {}
        self._serial = itertools.count(1)

    def _jobs_path(self, *parts: str) -> str:
        return "/".join((self.client.rest_path, "jobs", "ingest", *parts))

    def _send(self, method: str, path: str, body: Any = None, *,
              data: bytes | None = None, headers: Mapping[str, str] = JSON_HEADERS) -> Any:
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
        return self.client.request(method, path, kind="bulk", headers=dict(headers), data=data)

    def create_job(self, operation: str, sobject: str, *,
                   external_id_field: str | None = None,
                   concurrency_mode: str = "Parallel") -> str:
        """A local handle: each batch opens its own ingest job.

        2.0 ingest jobs have no concurrency mode (Salesforce runs them in parallel), so a
        Serial request, such as the writer's retry of lock failures, is sent as any other.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"Bulk operation {operation!r} is not one of {sorted(OPERATIONS)}")
        if operation == "upsert" and not external_id_field:
            raise ValueError(f"Bulk upsert of {sobject} needs external_id_field")
        handle = f"bulk2-{next(self._serial)}"
        self._handles[handle] = _Handle(operation, sobject, external_id_field, [])
        return handle

    def add_batch(self, job_id: str, records: list[dict[str, Any]]) -> str:
        """One ingest job for the batch: create, upload, UploadComplete."""
        handle = self._handles[job_id]
        if not records:
            raise BatchTooLarge(f"Bulk 2.0 {handle.sobject}: a batch needs at least one record")
        columns, cells, body = to_csv(records)
        if len(body) > MAX_UPLOAD_BYTES:
            raise BatchTooLarge(
                f"Bulk 2.0 {handle.sobject}: {len(records)} records are {len(body)} bytes of "
                f"CSV, over Salesforce's {MAX_UPLOAD_BYTES}-byte upload limit; lower "
                "bulk_batch_size")
        spec: dict[str, Any] = {"object": handle.sobject, "operation": handle.operation,
                                "contentType": "CSV", "lineEnding": "LF",
                                "columnDelimiter": "COMMA"}
        if handle.operation == "upsert":
            spec["externalIdFieldName"] = handle.external_id_field
        ingest_id = str(self._send("POST", self._jobs_path(), spec).json()["id"])
        try:
            self._send("PUT", self._jobs_path(ingest_id, "batches"), data=body,
                       headers=CSV_HEADERS)
            self._upload_complete(ingest_id)
        except ApiError as exc:
            self._abandon(ingest_id)
            if isinstance(exc, TransientError) or exc.code == "INVALIDJOBSTATE":
                raise TransientError(exc.status, exc.code, str(exc)) from exc
            raise
        wanted = key_columns(handle.operation, handle.external_id_field, columns)
        index = [columns.index(name) for name in wanted]
        self._uploads[ingest_id] = _Upload(
            job_id, [_key(row[i] for i in index) for row in cells], wanted)
        handle.uploads.append(ingest_id)
        return ingest_id

    def _upload_complete(self, ingest_id: str) -> None:
        """Tolerates a retried PATCH whose first attempt got through."""
        try:
            self._send("PATCH", self._jobs_path(ingest_id), {"state": "UploadComplete"})
        except ApiError as exc:
            if exc.code != "INVALIDJOBSTATE":
                raise
            if self._info(ingest_id).get("state") in ("Open", "Aborted"):
                raise

    def _abandon(self, ingest_id: str) -> None:
        """An upload that failed half-way: abort its Open job so nothing of it is applied."""
        try:
            self._send("PATCH", self._jobs_path(ingest_id), {"state": "Aborted"})
        except SalesforceError as exc:
            self.client.logger.warning("Bulk 2.0 job %s could not be aborted: %s",
                                       ingest_id, exc)

    def close_job(self, job_id: str) -> None:
        """Every ingest job was closed at its upload: only the handle goes."""
        self._handles.pop(job_id, None)

    def abort_job(self, job_id: str) -> None:
        """Abort the handle's ingest jobs still unanswered (unprocessed records stay so)."""
        handle = self._handles.pop(job_id, None)
        for ingest_id in handle.uploads if handle else []:
            self._uploads.pop(ingest_id, None)
            try:
                self._send("PATCH", self._jobs_path(ingest_id), {"state": "Aborted"})
            except ApiError as exc:
                if exc.code != "INVALIDJOBSTATE":  # already finished: nothing to stop
                    raise

    def _info(self, ingest_id: str) -> dict[str, Any]:
        info = self._send("GET", self._jobs_path(ingest_id)).json()
        if not isinstance(info, dict):
            raise SalesforceError(f"Bulk 2.0 job {ingest_id}: job info is not a JSON object")
        return info

    def check(self, job_id: str, batch_ids: list[str]) -> tuple[list[BatchResult], list[str]]:
        """One GET per ingest job; the finished ones come back with their rows."""
        finished: list[BatchResult] = []
        unfinished: list[str] = []
        for ingest_id in dict.fromkeys(batch_ids):
            if ingest_id not in self._uploads:
                raise SalesforceError(f"Bulk 2.0: job {ingest_id} was not sent by this run")
            info = self._info(ingest_id)
            if str(info.get("state")) not in FINISHED:
                unfinished.append(ingest_id)
                continue
            finished.append(self._result(ingest_id, info))
        return finished, unfinished

    def _result(self, ingest_id: str, info: Mapping[str, Any]) -> BatchResult:
        """The job as a Bulk 1.0 batch: Completed with rows in request order (None where
        a record was not processed), or Failed/NotProcessed without rows when none was."""
        upload = self._uploads.pop(ingest_id)
        handle = self._handles.get(upload.handle)
        if handle is not None and ingest_id in handle.uploads:
            handle.uploads.remove(ingest_id)
        state = str(info.get("state"))
        message = info.get("errorMessage") or None
        processed = int(info.get("numberRecordsProcessed") or 0)
        failed = int(info.get("numberRecordsFailed") or 0)
        if processed == 0 and state != "JobComplete":
            return BatchResult(ingest_id, "Failed" if state == "Failed" else "NotProcessed",
                               str(message or state), [])
        positions: dict[str, list[int]] = {}
        for position, key in enumerate(upload.keys):
            positions.setdefault(key, []).append(position)
        rows: list[dict[str, Any] | None] = [None] * len(upload.keys)
        for kind, count in zip(RESULT_SETS, (processed - failed, failed), strict=True):
            if count <= 0:
                continue
            for found in self._rows(ingest_id, kind):
                waiting = positions.get(_key(found.get(name, "") for name in upload.key_columns))
                if waiting:
                    rows[waiting.pop(0)] = _as_result(kind, found)
        return BatchResult(ingest_id, "Completed", None if message is None else str(message),
                           rows)  # type: ignore[arg-type]  # None: not processed

    def _rows(self, ingest_id: str, kind: str) -> Iterator[dict[str, str]]:
        answer = self._send("GET", self._jobs_path(ingest_id, kind) + "/",
                            headers={"Accept": "text/csv"})
        answer.encoding = "utf-8"
        yield from csv.DictReader(io.StringIO(answer.text))


def _as_result(kind: str, row: Mapping[str, str]) -> dict[str, Any]:
    """A result CSV row as Bulk 1.0 JSON's `{"success", "created", "id", "errors"}`."""
    record_id = row.get("sf__Id") or None
    if kind == "successfulResults":
        return {"success": True, "created": row.get("sf__Created") == "true",
                "id": record_id, "errors": []}
    return {"success": False, "created": False, "id": record_id,
            "errors": [parse_error(row.get("sf__Error") or "")]}
