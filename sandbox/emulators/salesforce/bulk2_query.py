"""Bulk API 2.0 query jobs under `/services/data/vNN.N/jobs/query`, as Salesforce documents them.

Creating a job checks its SOQL at once (errors are REST's JSON array) and takes the snapshot
of matching rows; a background thread then renders them as CSV into `api.db`, 1,000 rows per
chunk. So a million-row extract never sits in memory, and a result set can be fetched again
by its locator for as long as the job exists, as Salesforce promises. Sessions, allowance,
error shapes and ledger kinds are REST's (`rest.enter`, `ledger.classify`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from emulators import defaults
from emulators.salesforce.access import Refusal
from emulators.salesforce.apidb import ApiDatabase
from emulators.salesforce.bulk2_http import choice, enter_version, json_object
from emulators.salesforce.bulk_jobs import new_id, timestamp
from emulators.salesforce.cursors import QueryRefused
from emulators.salesforce.faults import Faults
from emulators.salesforce.rest import NOT_FOUND_MESSAGE, RestError, error_reply, reply
from emulators.salesforce.soql import SelectStatement, parse
from emulators.salesforce.state import SandboxState, current
from emulators.salesforce.store import QueryCursor, SoqlError

EXTENSION = "salesforce_bulk2_query"
FIRST_VERSION = 47  # query jobs exist from API 47.0 on
CHUNK_ROWS = 1_000
DEFAULT_MAX_RECORDS = 100_000
IDLE_POLL_SECONDS = 0.5
DELAY_CHECK_SECONDS = 0.05  # how soon an abort ends an injected processing delay
UPLOAD_COMPLETE, IN_PROGRESS, JOB_COMPLETE, FAILED, ABORTED = (
    "UploadComplete", "InProgress", "JobComplete", "Failed", "Aborted")
RUNNING = (UPLOAD_COMPLETE, IN_PROGRESS)
TERMINATED = (JOB_COMPLETE, FAILED, ABORTED)
OPERATIONS = ("query", "queryAll")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
CREATE_PROPERTIES = ("operation", "query", "contentType", "columnDelimiter", "lineEnding")
# What a job injected with `fail_batches` reports: the platform gave up, the query was fine.
FAULT_MESSAGE = ("InternalServerError : the query job could not be processed; create a new "
                 "job for the same query")
INTERRUPTED_MESSAGE = ("InternalServerError : the server stopped while the job was being "
                       "processed; create a new job for the same query")

blueprint = Blueprint("bulk2_query", __name__, url_prefix="/services/data")


# -- CSV rendering ------------------------------------------------------------------------

def _cell(value: Any, is_datetime: bool) -> str:
    """Salesforce's CSV text of one value: null empty, booleans lowercase, UTC with `Z`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_datetime and isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"  # stored as 2024-01-01T00:00:00.000+0000
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class CsvLayout:
    """How one job's rows become CSV lines; every cell is quoted, as Salesforce writes them."""

    header: tuple[str, ...]  # the SELECT expressions as written
    paths: tuple[tuple[str | None, str], ...]  # (relationship, field) as the store keys rows
    datetimes: frozenset[int]  # column indexes of datetime fields
    delimiter: str
    line_ending: str

    def _lines(self, rows: Iterator[Sequence[str]]) -> list[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator=self.line_ending,
                            quoting=csv.QUOTE_ALL)
        lines = []
        for cells in rows:
            writer.writerow(cells)
            lines.append(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
        return lines

    def header_line(self) -> str:
        return self._lines(iter([self.header]))[0]

    def lines(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        return self._lines(self._cells(row) for row in rows)

    def _cells(self, row: dict[str, Any]) -> list[str]:
        cells = []
        for index, (relationship, name) in enumerate(self.paths):
            holder = row if relationship is None else row.get(relationship)
            value = holder.get(name) if isinstance(holder, dict) else None
            cells.append(_cell(value, index in self.datetimes))
        return cells


def csv_layout(state: SandboxState, cursor: QueryCursor, statement: SelectStatement,
               delimiter: str, line_ending: str) -> CsvLayout:
    """The layout of a compiled query: headers as written, datetime columns from describe."""
    field_types: dict[str, dict[str, str]] = {}
    paths: list[tuple[str | None, str]] = []
    datetimes: set[int] = set()
    for index, path in enumerate(cursor.fields):
        relationship, _, name = path.rpartition(".")
        sobject = (state.relationship_types.target(cursor.sobject, relationship)
                   if relationship else cursor.sobject)
        if sobject not in field_types:
            field_types[sobject] = {item["name"]: item["type"]
                                    for item in state.store.describe(sobject)["fields"]}
        if field_types[sobject].get(name) == "datetime":
            datetimes.add(index)
        paths.append((relationship or None, name))
    return CsvLayout(tuple(path.text for path in statement.fields), tuple(paths),
                     frozenset(datetimes), delimiter, line_ending)


# -- job storage --------------------------------------------------------------------------

@dataclass(frozen=True)
class QueryJob:
    seq: int
    id: str
    operation: str
    object: str
    state: str
    error_message: str | None
    api_version: float
    column_delimiter: str
    line_ending: str
    header: str
    records_processed: int
    processing_ms: int
    created: str
    modified: str

    def info(self, *, detail: bool) -> dict[str, Any]:
        """JobInfo: create and abort answer the short form, `GET` adds the counters."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": defaults.SF_USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modified,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version,
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if detail:
            body.update(jobType="V2Query", numberRecordsProcessed=self.records_processed,
                        retries=0, totalProcessingTime=self.processing_ms)
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


class QueryJobs:
    """Query jobs and their rendered rows in `api.db`; each transition is one transaction."""

    def __init__(self, db: ApiDatabase) -> None:
        self._db = db

    def create(self, operation: str, sobject: str, api_version: float, column_delimiter: str,
               line_ending: str, header: str) -> QueryJob:
        job_id, now = new_id("750"), timestamp()
        self._db.execute(
            "INSERT INTO query_jobs(id, operation, object, state, api_version,"
            " column_delimiter, line_ending, header, created, modified)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, operation, sobject, UPLOAD_COMPLETE, api_version, column_delimiter,
             line_ending, header, now, now))
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> QueryJob | None:
        row = self._db.one("SELECT * FROM query_jobs WHERE id = ?", (job_id,))
        return None if row is None else QueryJob(**dict(row))

    def start(self, seq: int) -> bool:
        """UploadComplete → InProgress; False when the job was aborted or deleted meanwhile."""
        return bool(self._db.execute(
            "UPDATE query_jobs SET state = ?, modified = ? WHERE seq = ? AND state = ?",
            (IN_PROGRESS, timestamp(), seq, UPLOAD_COMPLETE)))

    def in_progress(self, seq: int) -> bool:
        row = self._db.one("SELECT state FROM query_jobs WHERE seq = ?", (seq,))
        return row is not None and row["state"] == IN_PROGRESS

    def add_chunk(self, seq: int, chunk: int, lines: list[str]) -> bool:
        """Store one chunk of rendered rows; False (nothing stored) if the job stopped running."""
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE query_jobs SET records_processed = records_processed + ?,"
                " modified = ? WHERE seq = ? AND state = ?",
                (len(lines), timestamp(), seq, IN_PROGRESS)).rowcount
            if changed:
                conn.execute("INSERT INTO query_results(job, chunk, lines) VALUES (?, ?, ?)",
                             (seq, chunk, json.dumps(lines)))
        return bool(changed)

    def finish(self, seq: int, state: str, processing_ms: int,
               message: str | None = None) -> None:
        self._db.execute(
            "UPDATE query_jobs SET state = ?, error_message = ?, processing_ms = ?,"
            " modified = ? WHERE seq = ? AND state IN (?, ?)",
            (state, message, processing_ms, timestamp(), seq, *RUNNING))

    def abort(self, seq: int) -> bool:
        """Only a running job can be aborted; its rows rendered so far are dropped."""
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE query_jobs SET state = ?, modified = ? WHERE seq = ? AND state IN (?, ?)",
                (ABORTED, timestamp(), seq, *RUNNING)).rowcount
            if changed:
                conn.execute("DELETE FROM query_results WHERE job = ?", (seq,))
        return bool(changed)

    def delete(self, seq: int) -> bool:
        """Only a terminated job can be deleted, and its results go with it."""
        with self._db.transaction() as conn:
            changed = conn.execute(
                "DELETE FROM query_jobs WHERE seq = ? AND state IN (?, ?, ?)",
                (seq, *TERMINATED)).rowcount
            if changed:
                conn.execute("DELETE FROM query_results WHERE job = ?", (seq,))
        return bool(changed)

    def chunk(self, seq: int, number: int) -> list[str] | None:
        row = self._db.one("SELECT lines FROM query_results WHERE job = ? AND chunk = ?",
                           (seq, number))
        return None if row is None else list(json.loads(row["lines"]))

    def fail_interrupted(self) -> None:
        """Jobs a previous server process left running lost their snapshot: they end Failed."""
        self._db.execute(
            "UPDATE query_jobs SET state = ?, error_message = ?, modified = ?"
            " WHERE state IN (?, ?)", (FAILED, INTERRUPTED_MESSAGE, timestamp(), *RUNNING))


# -- processing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pending:
    seq: int
    cursor: QueryCursor
    layout: CsvLayout


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class QueryJobWorker:
    """One daemon thread rendering jobs in creation order; the injected delay and job
    failures (`batch_delay_seconds`, `fail_batches`) take effect here."""

    def __init__(self, jobs: QueryJobs, faults: Faults) -> None:
        self._jobs = jobs
        self._faults = faults
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulk2-query-worker",
                                        daemon=True)

    def start(self) -> None:
        self._jobs.fail_interrupted()
        self._thread.start()

    def submit(self, seq: int, cursor: QueryCursor, layout: CsvLayout) -> None:
        self._queue.put(_Pending(seq, cursor, layout))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pending = self._queue.get(timeout=IDLE_POLL_SECONDS)
            except queue.Empty:
                continue
            started = time.monotonic()
            try:
                self._process(pending, started)
            except Exception as exc:  # a sandbox bug must fail the job, not the thread
                traceback.print_exc(file=sys.stderr)
                self._jobs.finish(pending.seq, FAILED, _elapsed_ms(started),
                                  f"InternalServerError : {type(exc).__name__}: {exc}")

    def _delay(self, seq: int) -> bool:
        """Sit out `batch_delay_seconds`; False as soon as the job is aborted or deleted."""
        deadline = time.monotonic() + self._faults.settings.batch_delay_seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, DELAY_CHECK_SECONDS)):
                return False
            if not self._jobs.in_progress(seq):
                return False
        return True

    def _process(self, pending: _Pending, started: float) -> None:
        if not self._jobs.start(pending.seq):
            return
        if not self._delay(pending.seq):
            return
        if self._faults.take_failed_batch():
            self._jobs.finish(pending.seq, FAILED, _elapsed_ms(started), FAULT_MESSAGE)
            return
        cursor, number, lines = pending.cursor, 0, []
        while not cursor.done:  # chunks hold exactly CHUNK_ROWS rows, except the last
            lines += pending.layout.lines(cursor.fetch(CHUNK_ROWS - len(lines)))
            if len(lines) == CHUNK_ROWS or (cursor.done and lines):
                if not self._jobs.add_chunk(pending.seq, number, lines):
                    return  # aborted, deleted or reset while rendering
                number, lines = number + 1, []
        self._jobs.finish(pending.seq, JOB_COMPLETE, _elapsed_ms(started))


@dataclass(frozen=True)
class _Service:
    jobs: QueryJobs
    worker: QueryJobWorker


def install(app: Flask, state: SandboxState) -> None:
    """Register the endpoints and start the job worker (once, from `create_app`)."""
    jobs = QueryJobs(state.db)
    service = _Service(jobs, QueryJobWorker(jobs, state.faults))
    app.extensions[EXTENSION] = service
    app.register_blueprint(blueprint)
    service.worker.start()


def _service() -> _Service:
    service: _Service = current_app.extensions[EXTENSION]
    return service


# -- HTTP ---------------------------------------------------------------------------------

@blueprint.errorhandler(RestError)
def _rest_error(exc: RestError) -> Response:
    return error_reply(exc.status, exc.code, exc.message, exc.fields)


@blueprint.errorhandler(Refusal)
def _refused(exc: Refusal) -> Response:
    return error_reply(exc.status, exc.code, exc.message)


@blueprint.errorhandler(QueryRefused)
@blueprint.errorhandler(SoqlError)
def _query_refused(exc: QueryRefused | SoqlError) -> Response:
    if exc.code == "NOT_FOUND":
        return error_reply(404, exc.code, NOT_FOUND_MESSAGE)
    return error_reply(400, exc.code, exc.message)


def _enter(version: str) -> str:
    return enter_version(version, FIRST_VERSION)


def _job(job_id: str) -> QueryJob:
    job = _service().jobs.get(job_id)
    if job is None:
        raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
    return job




@blueprint.post("/<version>/jobs/query")
def create_job(version: str) -> Response:
    bare = _enter(version)
    body = json_object()
    unknown = sorted(set(body) - set(CREATE_PROPERTIES))
    if unknown:
        raise RestError(400, "JSON_PARSER_ERROR",
                        f"Unrecognized field {unknown[0]!r}: a query job takes "
                        f"{', '.join(CREATE_PROPERTIES)}")
    operation = choice(body, "operation", OPERATIONS, None)
    choice(body, "contentType", ("CSV",), "CSV")
    delimiter = choice(body, "columnDelimiter", tuple(DELIMITERS), "COMMA")
    line_ending = choice(body, "lineEnding", tuple(LINE_ENDINGS), "LF")
    soql = body.get("query")
    if not isinstance(soql, str) or not soql.strip():
        raise RestError(400, "INVALIDJOB", "A query job needs a SOQL statement in 'query'")
    statement = parse(soql)
    if statement.count or statement.offset is not None:
        clause = "COUNT()" if statement.count else "OFFSET"
        raise RestError(400, "API_ERROR", f"{clause} is not supported by Bulk API 2.0 query "
                                          "jobs; use the REST query resource")
    state = current()
    cursor = state.store.query(soql, include_deleted=operation == "queryAll")
    layout = csv_layout(state, cursor, statement, DELIMITERS[delimiter],
                        LINE_ENDINGS[line_ending])
    service = _service()
    job = service.jobs.create(operation, cursor.sobject, float(bare), delimiter, line_ending,
                              layout.header_line())
    service.worker.submit(job.seq, cursor, layout)
    return reply(job.info(detail=False))


@blueprint.get("/<version>/jobs/query/<job_id>")
def job_info(version: str, job_id: str) -> Response:
    _enter(version)
    return reply(_job(job_id).info(detail=True))


@blueprint.patch("/<version>/jobs/query/<job_id>")
def abort_job(version: str, job_id: str) -> Response:
    _enter(version)
    job = _job(job_id)
    wanted = json_object().get("state")
    if wanted != ABORTED:
        raise RestError(400, "INVALIDJOBSTATE",
                        f"Invalid state {wanted!r}: a query job can only be set to Aborted")
    if not _service().jobs.abort(job.seq):
        raise RestError(400, "INVALIDJOBSTATE",
                        f"Aborting already {_job(job_id).state} Job not allowed")
    return reply(_job(job_id).info(detail=False))


@blueprint.delete("/<version>/jobs/query/<job_id>")
def delete_job(version: str, job_id: str) -> Response:
    _enter(version)
    if not _service().jobs.delete(_job(job_id).seq):
        raise RestError(400, "API_ERROR", "Error encountered when deleting the job because "
                                          "the job is not terminated")
    return Response(status=204)


def locator_of(offset: int) -> str:
    """Salesforce's opaque locator shape (`MTAwMDA` is offset 10000), stable per result set."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str | None, total: int) -> int:
    if locator is None:
        return 0
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit() or locator_of(int(text)) != locator or not 0 < int(text) < total:
        raise RestError(400, "API_ERROR", f"Invalid locator {locator!r}: pass the "
                                          "Sforce-Locator value of a previous result set")
    return int(text)


def _max_records() -> int:
    text = request.args.get("maxRecords")
    if text is None:
        return DEFAULT_MAX_RECORDS
    if not text.isdigit() or int(text) < 1:
        raise RestError(400, "API_ERROR", f"Invalid maxRecords {text!r}: a positive integer")
    return int(text)


@blueprint.get("/<version>/jobs/query/<job_id>/results")
def results(version: str, job_id: str) -> Response:
    bare = _enter(version)
    job = _job(job_id)
    if float(bare) != job.api_version:
        raise RestError(409, "API_ERROR", f"Job {job_id} was created in API version "
                                          f"{job.api_version:.1f}: read its results with "
                                          "the same version")
    if job.state != JOB_COMPLETE:
        raise RestError(400, "INVALIDJOBSTATE", f"Job {job_id} is {job.state}: results are "
                                                "available once it is JobComplete")
    total = job.records_processed
    start = _offset(request.args.get("locator"), total)
    end = min(total, start + _max_records())
    headers = {"Sforce-Locator": locator_of(end) if end < total else "null",
               "Sforce-NumberOfRecords": str(end - start)}
    return Response(_result_set(_service().jobs, job, start, end), mimetype="text/csv",
                    headers=headers)


def _result_set(jobs: QueryJobs, job: QueryJob, start: int, end: int) -> Iterator[str]:
    """The header line, then rows `start`..`end` read chunk by chunk while they are sent."""
    yield job.header
    position = start
    while position < end:
        number, skip = divmod(position, CHUNK_ROWS)
        lines = jobs.chunk(job.seq, number)
        if not lines:
            return  # deleted (or the sandbox reset) while being read
        taken = lines[skip:skip + end - position]
        if not taken:
            return
        yield "".join(taken)
        position += len(taken)
