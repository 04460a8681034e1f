"""Bulk API 2.0 ingest jobs under `/services/data/vNN.N/jobs/ingest`, as Salesforce documents them.

A job is created Open, takes one CSV upload (`PUT .../batches`, at most 100 MB), and starts
once the client sets it `UploadComplete`. The upload is streamed into `api.db` in internal
batches of 10,000 rows, as Salesforce splits it; a background thread applies each batch
through the same store code as Bulk 1.0 (so validation, ids and faults agree), in chunks of
200. Every internal batch draws on the org's 15,000 batches a day shared with Bulk 1.0, and
its rows on Bulk 2.0's 150,000,000 records a day; when either runs out, or a batch fails
(`fail_batches`), the job ends `Failed` and the rest stays unprocessed.

Results come back as CSV: `sf__Id`, `sf__Created` (or `sf__Error`) and the uploaded columns
as sent. Salesforce does not promise the upload's order, and this sandbox does not keep it
(the last batch comes first, each batch's rows last to first), so a client must correlate
rows itself. Sessions, allowance, error shapes and ledger kinds are REST's.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, request

from emulators import defaults
from emulators.salesforce.access import Refusal
from emulators.salesforce.apidb import ApiDatabase
from emulators.salesforce.bulk2_http import choice, enter_version, json_object
from emulators.salesforce.bulk2_query import DELIMITERS, LINE_ENDINGS
from emulators.salesforce.bulk_jobs import new_id, timestamp
from emulators.salesforce.bulk_worker import CHUNK_SIZE, LOCK_FAILURE_MESSAGE
from emulators.salesforce.faults import Faults
from emulators.salesforce.limits import ApiLimits
from emulators.salesforce.rest import NOT_FOUND_MESSAGE, RestError, error_reply, reply
from emulators.salesforce.state import SandboxState, current
from emulators.salesforce.store import InvalidBatchError, SalesforceStore, SoqlError

EXTENSION = "salesforce_bulk2_ingest"
FIRST_VERSION = 41  # ingest jobs exist from API 41.0 on
BATCH_ROWS = 10_000  # Salesforce's internal batch size, each one counted as a batch
ALL_JOBS_PAGE = 1000  # jobs per "Get All Jobs" page
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # 150 MB once base64-encoded, as Salesforce stores it
NULL = "#N/A"  # a cell that sets the field to null; an empty cell leaves it unchanged
IDLE_POLL_SECONDS = 0.5
DELAY_CHECK_SECONDS = 0.05
OPEN, UPLOAD_COMPLETE, IN_PROGRESS, JOB_COMPLETE, FAILED, ABORTED = (
    "Open", "UploadComplete", "InProgress", "JobComplete", "Failed", "Aborted")
TERMINATED = (JOB_COMPLETE, FAILED, ABORTED)
DELETABLE = (UPLOAD_COMPLETE, *TERMINATED)
OPERATIONS = ("insert", "update", "upsert", "delete")
CREATE_PROPERTIES = ("object", "operation", "externalIdFieldName", "contentType",
                     "columnDelimiter", "lineEnding", "assignmentRuleId")
RETRIES_MESSAGE = ("InternalServerError : batch {number} could not be processed after 20 "
                   "retries: " + LOCK_FAILURE_MESSAGE)
QUOTA_MESSAGE = ("ExceededQuota : the daily allowance {name} is used up; the remaining "
                 "records were not processed")
INTERRUPTED_MESSAGE = ("InternalServerError : the server stopped while the job was being "
                       "processed; resubmit its unprocessed records in a new job")

blueprint = Blueprint("bulk2_ingest", __name__, url_prefix="/services/data")


# -- job storage --------------------------------------------------------------------------

@dataclass(frozen=True)
class IngestJob:
    seq: int
    id: str
    operation: str
    object: str
    external_id_field: str | None
    state: str
    error_message: str | None
    api_version: float
    column_delimiter: str
    line_ending: str
    header: str | None  # JSON list of the uploaded column names; None before the upload
    records_processed: int
    records_failed: int
    processing_ms: int
    created: str
    modified: str

    @property
    def columns(self) -> list[str]:
        return list(json.loads(self.header)) if self.header else []

    def info(self, *, detail: bool) -> dict[str, Any]:
        """JobInfo: create, close and abort answer the short form, `GET` adds the counters."""
        version = f"{self.api_version:.1f}"
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": defaults.SF_USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modified,
            "state": self.state,
            "externalIdFieldName": self.external_id_field,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version,
            "contentUrl": f"services/data/v{version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if detail:
            body.update(jobType="V2Ingest", numberRecordsProcessed=self.records_processed,
                        numberRecordsFailed=self.records_failed, retries=0,
                        totalProcessingTime=self.processing_ms, apiActiveProcessingTime=0,
                        apexProcessingTime=0)
            if self.error_message:
                body["errorMessage"] = self.error_message
        return body


@dataclass(frozen=True)
class IngestBatch:
    number: int
    rows: list[list[str]]  # the uploaded cells
    results: list[dict[str, Any]] | None  # Bulk 1.0-shaped, one per processed row


class IngestJobs:
    """Ingest jobs and their internal batches in `api.db`; each transition one transaction."""

    def __init__(self, db: ApiDatabase) -> None:
        self._db = db

    def create(self, operation: str, sobject: str, external_id_field: str | None,
               api_version: float, column_delimiter: str, line_ending: str) -> IngestJob:
        job_id, now = new_id("750"), timestamp()
        self._db.execute(
            "INSERT INTO ingest_jobs(id, operation, object, external_id_field, state,"
            " api_version, column_delimiter, line_ending, created, modified)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, operation, sobject, external_id_field, OPEN, api_version,
             column_delimiter, line_ending, now, now))
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> IngestJob | None:
        row = self._db.one("SELECT * FROM ingest_jobs WHERE id = ?", (job_id,))
        return None if row is None else IngestJob(**dict(row))

    def listed(self) -> list[dict[str, Any]]:
        """Every ingest job in "Get All Jobs" form (`jobType: V2Ingest`), oldest first."""
        return [{**IngestJob(**dict(row)).info(detail=False), "jobType": "V2Ingest"}
                for row in self._db.all("SELECT * FROM ingest_jobs ORDER BY seq")]

    def by_seq(self, seq: int) -> IngestJob | None:
        row = self._db.one("SELECT * FROM ingest_jobs WHERE seq = ?", (seq,))
        return None if row is None else IngestJob(**dict(row))

    def store_upload(self, seq: int, columns: list[str], batches: Iterator[list[list[str]]],
                     error: str | None) -> bool:
        """Keep the upload (batch by batch, one transaction); False if not Open any more."""
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE ingest_jobs SET header = ?, error_message = ?, modified = ?"
                " WHERE seq = ? AND state = ? AND header IS NULL",
                (json.dumps(columns), error, timestamp(), seq, OPEN)).rowcount
            if not changed:
                return False
            for number, rows in enumerate(batches):
                conn.execute("INSERT INTO ingest_batches(job, number, rows) VALUES (?, ?, ?)",
                             (seq, number, json.dumps(rows)))
        return True

    def set_state(self, seq: int, wanted: str, allowed: Sequence[str]) -> bool:
        return bool(self._db.execute(
            "UPDATE ingest_jobs SET state = ?, modified = ? WHERE seq = ?"
            " AND state IN (SELECT value FROM json_each(?))",
            (wanted, timestamp(), seq, json.dumps(list(allowed)))))

    def next_ready(self) -> IngestJob | None:
        """The oldest UploadComplete job, moved to InProgress."""
        while True:
            row = self._db.one("SELECT seq FROM ingest_jobs WHERE state = ? ORDER BY seq"
                               " LIMIT 1", (UPLOAD_COMPLETE,))
            if row is None:
                return None
            if self.set_state(row["seq"], IN_PROGRESS, (UPLOAD_COMPLETE,)):
                return self.by_seq(row["seq"])

    def batch_count(self, seq: int) -> int:
        row = self._db.one("SELECT COUNT(*) AS n FROM ingest_batches WHERE job = ?", (seq,))
        return int(row["n"]) if row else 0

    def batch(self, seq: int, number: int) -> IngestBatch | None:
        row = self._db.one("SELECT rows, results FROM ingest_batches WHERE job = ? AND"
                           " number = ?", (seq, number))
        if row is None:
            return None
        results = json.loads(row["results"]) if row["results"] is not None else None
        return IngestBatch(number, json.loads(row["rows"]), results)

    def record_results(self, seq: int, number: int, results: list[dict[str, Any]]) -> None:
        failed = sum(1 for result in results if not result.get("success"))
        with self._db.transaction() as conn:
            conn.execute("UPDATE ingest_batches SET results = ? WHERE job = ? AND number = ?",
                         (json.dumps(results), seq, number))
            conn.execute(
                "UPDATE ingest_jobs SET records_processed = records_processed + ?,"
                " records_failed = records_failed + ?, modified = ? WHERE seq = ?",
                (len(results), failed, timestamp(), seq))

    def finish(self, seq: int, state: str, processing_ms: int,
               message: str | None = None) -> None:
        self._db.execute(
            "UPDATE ingest_jobs SET state = ?, error_message = COALESCE(?, error_message),"
            " processing_ms = ?, modified = ? WHERE seq = ? AND state = ?",
            (state, message, processing_ms, timestamp(), seq, IN_PROGRESS))

    def delete(self, seq: int) -> bool:
        with self._db.transaction() as conn:
            changed = conn.execute(
                "DELETE FROM ingest_jobs WHERE seq = ?"
                " AND state IN (SELECT value FROM json_each(?))",
                (seq, json.dumps(DELETABLE))).rowcount
            if changed:
                conn.execute("DELETE FROM ingest_batches WHERE job = ?", (seq,))
        return bool(changed)

    def fail_interrupted(self) -> None:
        """Jobs a previous server process left InProgress end Failed, never half-redone."""
        self._db.execute(
            "UPDATE ingest_jobs SET state = ?, error_message = ?, modified = ? WHERE state = ?",
            (FAILED, INTERRUPTED_MESSAGE, timestamp(), IN_PROGRESS))


# -- the upload ---------------------------------------------------------------------------

def _rows_in_batches(rows: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    batch: list[list[str]] = []
    for row in rows:
        if not any(row):
            continue  # a blank line is not a record
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _line_ending_error(header_line: str, wanted: str) -> str | None:
    """Salesforce refuses data whose line ending is not the job's `lineEnding`."""
    actual = "CRLF" if header_line.endswith("\r\n") else "LF"
    if not header_line.endswith("\n") or actual == wanted:
        return None
    return (f"ClientInputError : LineEnding is invalid on user data. Current LineEnding "
            f"setting is {wanted}")


def record_of(columns: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    """One uploaded row as store input: an empty cell is left out, `#N/A` is null."""
    record: dict[str, Any] = {}
    for name, cell in zip(columns, cells, strict=False):
        if cell == "":
            continue
        record[name] = None if cell == NULL else cell
    return record


# -- processing ---------------------------------------------------------------------------

def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class IngestWorker:
    """One daemon thread processing UploadComplete jobs in creation order, batch by batch."""

    def __init__(self, jobs: IngestJobs, store: SalesforceStore, limits: ApiLimits,
                 faults: Faults) -> None:
        self._jobs = jobs
        self._store = store
        self._limits = limits
        self._faults = faults
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulk2-ingest-worker",
                                        daemon=True)

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
            job = self._jobs.next_ready()
            if job is None:
                self._wake.wait(IDLE_POLL_SECONDS)
                self._wake.clear()
                continue
            started = time.monotonic()
            try:
                state, message = self._process(job)
            except Exception as exc:  # a sandbox bug must fail the job, not the thread
                traceback.print_exc(file=sys.stderr)
                state, message = FAILED, f"InternalServerError : {type(exc).__name__}: {exc}"
            self._jobs.finish(job.seq, state, _elapsed_ms(started), message)

    def _running(self, seq: int) -> bool:
        job = self._jobs.by_seq(seq)
        return job is not None and job.state == IN_PROGRESS

    def _delay(self, seq: int) -> bool:
        """Sit out `batch_delay_seconds`; False as soon as the job is aborted or deleted."""
        deadline = time.monotonic() + self._faults.settings.batch_delay_seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, DELAY_CHECK_SECONDS)) or not self._running(seq):
                return False
        return True

    def _process(self, job: IngestJob) -> tuple[str, str | None]:
        """The job's final state and message; batches after a failure stay unprocessed."""
        if job.error_message:
            return FAILED, job.error_message
        columns = job.columns
        for number in range(self._jobs.batch_count(job.seq)):
            if not self._running(job.seq) or not self._delay(job.seq):
                return ABORTED, None  # `finish` changes nothing: the job is not InProgress
            batch = self._jobs.batch(job.seq, number)
            if batch is None:
                return ABORTED, None
            exhausted = self._limits.try_charge_ingest_batch(len(batch.rows))
            if exhausted:
                return FAILED, QUOTA_MESSAGE.format(name=exhausted)
            if self._faults.take_failed_batch():
                return FAILED, RETRIES_MESSAGE.format(number=number + 1)
            results, error = self._apply(job, columns, batch.rows)
            self._jobs.record_results(job.seq, number, results)
            if error:
                return FAILED, error
        return JOB_COMPLETE, None

    def _apply(self, job: IngestJob, columns: list[str], rows: list[list[str]]
               ) -> tuple[list[dict[str, Any]], str | None]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(rows), CHUNK_SIZE):
            chunk = [record_of(columns, cells) for cells in rows[start:start + CHUNK_SIZE]]
            try:
                results += self._store.apply(
                    job.operation, job.object, chunk, external_id_field=job.external_id_field,
                    lock_row_rate=self._faults.settings.lock_row_rate, rng=self._faults.rng)
            except InvalidBatchError as exc:
                return results, f"InvalidBatch : {exc}"
        return results, None


# -- results ------------------------------------------------------------------------------

def sf_error(result: dict[str, Any]) -> str:
    """`CODE:message:fields --`, the shape of Salesforce's `sf__Error` cell."""
    errors = result.get("errors") or [{}]
    first = errors[0]
    fields = ",".join(str(name) for name in first.get("fields") or [])
    return (f"{first.get('statusCode', 'UNKNOWN_EXCEPTION')}:{first.get('message', '')}:"
            f"{fields + ' ' if fields else ''}--")


def _given_id(job: IngestJob, cells: Sequence[str]) -> str:
    """A failed update or delete names the record it tried; a failed insert has no id."""
    if job.operation not in ("update", "delete"):
        return ""
    record = record_of(job.columns, cells)
    return str(next((value for name, value in record.items() if name.lower() == "id"), "")
               or "")


def _writer(buffer: io.StringIO, job: IngestJob, *, quote_all: bool) -> Any:
    return csv.writer(buffer, delimiter=DELIMITERS[job.column_delimiter],
                      lineterminator=LINE_ENDINGS[job.line_ending],
                      quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def result_csv(jobs: IngestJobs, job: IngestJob, kind: str) -> Iterator[str]:
    """One of the three result sets, batch by batch while it is sent."""
    buffer = io.StringIO()
    extra = {"successfulResults": ["sf__Id", "sf__Created"],
             "failedResults": ["sf__Id", "sf__Error"], "unprocessedrecords": []}[kind]
    quoted, plain = _writer(buffer, job, quote_all=True), _writer(buffer, job, quote_all=False)
    if extra:
        quoted.writerow(extra)
        header = _take(buffer).rstrip("\r\n") + DELIMITERS[job.column_delimiter]
    else:
        header = ""
    plain.writerow(job.columns)
    yield header + _take(buffer)
    numbers = range(jobs.batch_count(job.seq))
    for number in numbers if kind == "unprocessedrecords" else reversed(numbers):
        batch = jobs.batch(job.seq, number)
        if batch is None:
            return  # deleted (or the sandbox reset) while being read
        done = batch.results or []
        if kind == "unprocessedrecords":
            for cells in batch.rows[len(done):]:
                quoted.writerow(cells)
        else:
            for cells, result in reversed(list(zip(batch.rows, done, strict=False))):
                if bool(result.get("success")) != (kind == "successfulResults"):
                    continue
                outcome = ("true" if result.get("created") else "false") if result.get(
                    "success") else sf_error(result)
                quoted.writerow([result.get("id") or _given_id(job, cells), outcome, *cells])
        yield _take(buffer)


# -- wiring -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Service:
    jobs: IngestJobs
    worker: IngestWorker
    store: SalesforceStore


def install(app: Flask, state: SandboxState) -> None:
    """Register the endpoints and start the job worker (once, from `create_app`)."""
    jobs = IngestJobs(state.db)
    service = _Service(jobs, IngestWorker(jobs, state.store, state.limits, state.faults),
                       state.store)
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


def _enter(version: str) -> str:
    return enter_version(version, FIRST_VERSION)


def _job(job_id: str) -> IngestJob:
    job = _service().jobs.get(job_id)
    if job is None:
        raise RestError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)
    return job




def _external_id_field(describe: dict[str, Any], field: Any) -> str:
    """The upsert key as describe spells it; it must be an external id or idLookup field."""
    if not field:
        raise RestError(400, "INVALIDJOB", "External ID field name is required for upsert")
    for item in describe.get("fields", []):
        if item.get("name", "").lower() == str(field).lower():
            if item.get("externalId") or item.get("idLookup"):
                return str(item["name"])
            break
    raise RestError(400, "INVALIDJOB", f"Field name provided, {field} is not an External ID "
                                       f"or indexed field for {describe.get('name')}")


@blueprint.post("/<version>/jobs/ingest")
def create_job(version: str) -> Response:
    bare = _enter(version)
    body = json_object()
    unknown = sorted(set(body) - set(CREATE_PROPERTIES))
    if unknown:
        raise RestError(400, "JSON_PARSER_ERROR",
                        f"Unrecognized field {unknown[0]!r}: an ingest job takes "
                        f"{', '.join(CREATE_PROPERTIES)}")
    operation = choice(body, "operation", OPERATIONS, None)
    choice(body, "contentType", ("CSV",), "CSV")
    delimiter = choice(body, "columnDelimiter", tuple(DELIMITERS), "COMMA")
    line_ending = choice(body, "lineEnding", tuple(LINE_ENDINGS), "LF")
    sobject = str(body.get("object") or "")
    try:
        describe = _service().store.describe(sobject)
    except SoqlError as exc:
        raise RestError(400, "INVALIDJOB", f"Unable to find object: {sobject}") from exc
    external_id = (_external_id_field(describe, body.get("externalIdFieldName"))
                   if operation == "upsert" else None)
    job = _service().jobs.create(operation, str(describe.get("name", sobject)), external_id,
                                 float(bare), delimiter, line_ending)
    return reply(job.info(detail=False))


@blueprint.get("/<version>/jobs/ingest")
def all_jobs(version: str) -> Response:
    """Get All Jobs: Bulk 1.0 (`Classic`) and 2.0 (`V2Ingest`) ingest jobs, 1,000 a page."""
    _enter(version)
    job_type = request.args.get("jobType")
    if job_type not in (None, "Classic", "V2Ingest", "BigObjectIngest"):
        raise RestError(400, "INVALIDJOB", f"Invalid jobType {job_type!r}: use Classic, "
                                           "V2Ingest or BigObjectIngest")
    jobs: list[dict[str, Any]] = []
    if request.args.get("isPkChunkingEnabled", "false").lower() != "true":  # none here is one
        if job_type in (None, "Classic"):
            jobs += current().jobs.listed()
        if job_type in (None, "V2Ingest"):
            jobs += _service().jobs.listed()
    locator = request.args.get("queryLocator", "0")
    start = int(locator) if locator.isdigit() else 0
    page = jobs[start:start + ALL_JOBS_PAGE]
    done = start + ALL_JOBS_PAGE >= len(jobs)
    query = {k: v for k, v in request.args.items() if k != "queryLocator"}
    next_url = None if done else (
        f"/services/data/{version}/jobs/ingest?"
        + urlencode({**query, "queryLocator": str(start + ALL_JOBS_PAGE)}))
    return reply({"done": done, "records": page, "nextRecordsUrl": next_url})


@blueprint.get("/<version>/jobs/ingest/<job_id>")
def job_info(version: str, job_id: str) -> Response:
    _enter(version)
    return reply(_job(job_id).info(detail=True))


@blueprint.put("/<version>/jobs/ingest/<job_id>/batches")
def upload(version: str, job_id: str) -> Response:
    _enter(version)
    job = _job(job_id)
    if request.mimetype != "text/csv":
        raise RestError(400, "INVALIDJOB", "Job data must be sent as Content-Type: text/csv")
    if job.state != OPEN or job.header is not None:
        raise RestError(400, "INVALIDJOBSTATE", f"Job {job_id} is {job.state}"
                        f"{' and has its data' if job.header is not None else ''}: data is "
                        "uploaded once, to an Open job")
    if (request.content_length or 0) > MAX_UPLOAD_BYTES:
        raise RestError(400, "API_ERROR", f"The upload exceeds {MAX_UPLOAD_BYTES} bytes: "
                                          "upload data that does not exceed 100 MB per job")
    request.max_content_length = MAX_UPLOAD_BYTES
    raw: Any = request.stream  # werkzeug's LimitedStream, a RawIOBase
    text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="")
    header_line = text.readline()
    reader = csv.reader(text, delimiter=DELIMITERS[job.column_delimiter])
    columns = next(csv.reader([header_line], delimiter=DELIMITERS[job.column_delimiter]), [])
    if not [name for name in columns if name.strip()]:
        raise RestError(400, "INVALIDJOB", "The CSV data has no header row of field names")
    try:
        stored = _service().jobs.store_upload(
            job.seq, columns, _rows_in_batches(reader),
            _line_ending_error(header_line, job.line_ending))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise RestError(400, "INVALIDJOB", f"The CSV data cannot be read: {exc}") from exc
    if not stored:
        raise RestError(400, "INVALIDJOBSTATE", f"Job {job_id} is no longer Open")
    return Response(status=201)


@blueprint.patch("/<version>/jobs/ingest/<job_id>")
def change_job(version: str, job_id: str) -> Response:
    _enter(version)
    job = _job(job_id)
    wanted = json_object().get("state")
    allowed = {UPLOAD_COMPLETE: (OPEN,), ABORTED: (OPEN, UPLOAD_COMPLETE, IN_PROGRESS)}
    if wanted not in allowed:
        raise RestError(400, "INVALIDJOBSTATE",
                        f"Invalid state {wanted!r}: UploadComplete or Aborted")
    service = _service()
    if not service.jobs.set_state(job.seq, str(wanted), allowed[str(wanted)]):
        raise RestError(400, "INVALIDJOBSTATE",
                        f"Job {job_id} is {_job(job_id).state} and cannot be {wanted}")
    if wanted == UPLOAD_COMPLETE:
        service.worker.wake()
    return reply(_job(job_id).info(detail=False))


@blueprint.delete("/<version>/jobs/ingest/<job_id>")
def delete_job(version: str, job_id: str) -> Response:
    _enter(version)
    if not _service().jobs.delete(_job(job_id).seq):
        raise RestError(400, "API_ERROR", "Error encountered when deleting the job because "
                                          "the job is not UploadComplete or terminated")
    return Response(status=204)


def _results(version: str, job_id: str, kind: str) -> Response:
    _enter(version)
    job = _job(job_id)
    if job.state not in TERMINATED:
        raise RestError(400, "INVALIDJOBSTATE", f"Job {job_id} is {job.state}: results are "
                                                "available once it is JobComplete, Failed or "
                                                "Aborted")
    return Response(result_csv(_service().jobs, job, kind), mimetype="text/csv")


@blueprint.get("/<version>/jobs/ingest/<job_id>/successfulResults/", strict_slashes=False)
def successful_results(version: str, job_id: str) -> Response:
    return _results(version, job_id, "successfulResults")


@blueprint.get("/<version>/jobs/ingest/<job_id>/failedResults/", strict_slashes=False)
def failed_results(version: str, job_id: str) -> Response:
    return _results(version, job_id, "failedResults")


@blueprint.get("/<version>/jobs/ingest/<job_id>/unprocessedrecords/", strict_slashes=False)
def unprocessed_records(version: str, job_id: str) -> Response:
    return _results(version, job_id, "unprocessedrecords")
