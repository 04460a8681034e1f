"""Bulk API 1.0 query jobs (`query`, `queryAll`, CSV results) under `/services/async/NN.N/`.

What singer-io tap-salesforce and Data Loader's bulk export use, as Salesforce documents it:
create a job (JSON JobInfo in, JSON out) with `"operation": "query"` or `"queryAll"` and
`"contentType": "CSV"`, add a batch whose body is the SOQL statement (`text/csv`; its
BatchInfo answers in XML, as for every CSV job), close the job, poll the batch, then read
`.../batch/{id}/result` (an XML `result-list` of result ids) and each result (CSV, every
value quoted, header = the SELECT list; an empty result is the line
`Records not found for this query`).

`Sforce-Enable-PKChunking` on job creation splits a batch's query into Id ranges of
`chunkSize` rows (default 100,000, at most 250,000; `startRow` to resume): the original
batch becomes `Not Processed` and one batch per range is queued, each counted against the
daily batch allowance. PK chunking works only on queries without clauses other than WHERE,
and on the objects Salesforce lists; anything else fails the batch with the reason.

The routes are Bulk 1.0's (`bulk.py` hands a request over here before its own views run
when it creates a query job or names one), so version, session and allowance checks and
the ledger kinds are the same as for ingest jobs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from flask import Flask, Response, current_app, request

from emulators.salesforce.bulk2_query import csv_layout
from emulators.salesforce.bulk_query_jobs import (
    ABORTED,
    CLOSED,
    COMPLETED,
    NOT_PROCESSED,
    OPEN,
    OPERATIONS,
    QueryBatch,
    QueryBatchWorker,
    QueryJob,
    QueryJobStore,
    batch_info,
    job_info,
)
from emulators.salesforce.soql import SelectStatement, parse
from emulators.salesforce.state import SandboxState, current
from emulators.salesforce.store import SoqlError

EXTENSION = "salesforce_bulk_query"
NAMESPACE = "http://www.force.com/2009/06/asyncapi/dataload"
NO_RECORDS = "Records not found for this query"
DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE = 100_000, 250_000
# "PK chunking is supported for the following objects" (Bulk API Developer Guide), plus
# custom objects.
PK_CHUNKING_OBJECTS = frozenset((
    "Account", "Asset", "Campaign", "CampaignMember", "Case", "CaseArticle", "CaseHistory",
    "Contact", "Event", "EventRelation", "Lead", "LoginHistory", "Opportunity", "Task", "User",
    "WorkOrder", "WorkOrderLineItem"))
_PATH = re.compile(r"^/services/async/[^/]+/job(?:/(?P<job>[^/]+)(?:/(?P<batches>batch)"
                   r"(?:/(?P<batch>[^/]+)(?:/(?P<result>result)(?:/(?P<rid>[^/]+))?)?)?)?)?/?$")
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_WHERE = re.compile(r"\s+WHERE\s+", re.IGNORECASE)


class QueryJobError(Exception):
    """A refused Bulk call; `xml` when it concerns a CSV job's batches (answered in XML)."""

    def __init__(self, code: str, message: str, *, xml: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.xml = code, message, xml


@dataclass(frozen=True)
class _Service:
    store: QueryJobStore
    worker: QueryBatchWorker


def install(app: Flask, state: SandboxState) -> None:
    """Create the job store and start its worker (once, from `create_app`)."""
    store = QueryJobStore(state.db)
    service = _Service(store, QueryBatchWorker(store, state.faults))
    app.extensions[EXTENSION] = service
    service.worker.start()


def _service() -> _Service:
    service: _Service = current_app.extensions[EXTENSION]
    return service


# -- rendering ----------------------------------------------------------------------------

def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _xml(root: str, body: dict[str, Any] | str) -> str:
    inner = body if isinstance(body, str) else "".join(
        f"<{key}>{_xml_value(value)}</{key}>" for key, value in body.items()
        if value is not None)
    return (f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NAMESPACE}">{inner}'
            f"</{root}>")


def _xml_reply(root: str, body: dict[str, Any] | str, status: int = 200) -> Response:
    return Response(_xml(root, body), status=status, mimetype="application/xml")


def _json_reply(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def error_reply(exc: QueryJobError) -> Response:
    if exc.xml:
        return _xml_reply("error", {"exceptionCode": exc.code,
                                    "exceptionMessage": exc.message}, 400)
    return _json_reply({"exceptionCode": exc.code, "exceptionMessage": exc.message}, 400)


# -- dispatch -----------------------------------------------------------------------------

def dispatch() -> Response | None:
    """Serve the request if it creates or names a query job; None leaves it to `bulk.py`."""
    match = _PATH.match(request.path)
    if match is None:
        return None
    try:
        if match["job"] is None:
            return _create_job() if request.method == "POST" else None
        job = _service().store.job(match["job"])
        if job is None:
            return None  # an ingest job, or no job at all: bulk.py answers
        return _route(job, match)
    except QueryJobError as exc:
        return error_reply(exc)


def _route(job: QueryJob, match: re.Match[str]) -> Response:
    method = request.method
    if match["batches"] is None:
        if method == "GET":
            return _json_reply(_job_info(job))
        if method == "POST":
            return _change_job(job)
    elif match["batch"] is None:
        if method == "POST":
            return _add_batch(job)
        if method == "GET":
            infos = "".join(_xml("batchInfo", batch_info(batch)).split("?>", 1)[1]
                            for batch in _service().store.batches(job.id))
            return _xml_reply("batchInfoList", infos)
    elif method == "GET":
        batch = _service().store.batch(job.id, match["batch"] or "")
        if batch is None:
            raise QueryJobError("InvalidBatch", f"Invalid batch id: {match['batch']}", xml=True)
        if match["result"] is None:
            return _xml_reply("batchInfo", batch_info(batch))
        return _result(batch, match["rid"])
    raise QueryJobError("InvalidUrl", f"{method} is not allowed on {request.path}",
                        xml=match["batches"] is not None)


def _job_info(job: QueryJob) -> dict[str, Any]:
    return job_info(job, _service().store.counts(job.id))


def _json_body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryJobError("InvalidJob", f"Unable to parse JSON: {exc}", xml=False) from exc
    if not isinstance(body, dict):
        raise QueryJobError("InvalidJob", "The job must be a JSON object", xml=False)
    return body


def _create_job() -> Response | None:
    if request.mimetype != "application/json":
        return None  # bulk.py explains that the sandbox speaks JSON job requests only
    body = _json_body()
    if body.get("operation") not in OPERATIONS:
        return None  # an ingest job
    if body.get("contentType") != "CSV":
        raise QueryJobError("InvalidJob", f"contentType {body.get('contentType')!r} is not "
                                          "supported for query jobs: this sandbox answers "
                                          "them in CSV", xml=False)
    state = current()
    sobject = str(body.get("object") or "")
    try:
        name = str(state.store.describe(sobject).get("name", sobject))
    except SoqlError as exc:
        raise QueryJobError("InvalidJob", f"Unable to find object: {sobject}",
                            xml=False) from exc
    chunking = request.headers.get("Sforce-Enable-PKChunking")
    if chunking is not None:
        _chunk_options(chunking)  # refuse a malformed header now, not at the first batch
    job = _service().store.create_job(str(body["operation"]), name,
                                      request.environ["salesforce.api_version"], chunking)
    return _json_reply(_job_info(job), 201)


def _change_job(job: QueryJob) -> Response:
    wanted = _json_body().get("state")
    allowed = {CLOSED: (OPEN, CLOSED), ABORTED: (OPEN, CLOSED, ABORTED)}
    if wanted not in allowed:
        raise QueryJobError("InvalidJobState", f"Invalid state {wanted!r}: Closed or Aborted",
                            xml=False)
    if job.state not in allowed[wanted]:
        raise QueryJobError("InvalidJobState",
                            f"Job {job.id} is {job.state} and cannot be {wanted}", xml=False)
    store = _service().store
    if job.state != wanted:
        store.set_job_state(job.id, str(wanted))
    changed = store.job(job.id)
    assert changed is not None
    return _json_reply(_job_info(changed))


# -- batches ------------------------------------------------------------------------------

def _add_batch(job: QueryJob) -> Response:
    if job.state != OPEN:
        raise QueryJobError("InvalidJobState", f"Job {job.id} is {job.state}: batches can only "
                                               "be added to an Open job", xml=True)
    soql = request.get_data().decode("utf-8", "replace").strip()
    if not soql:
        raise QueryJobError("InvalidBatch", "A query batch needs a SOQL statement", xml=True)
    state = current()
    if not state.limits.try_charge_batch():
        raise QueryJobError("ExceededQuota", "Exceeded max number of batches allowed in 24 "
                                             "hour period", xml=True)
    store = _service().store
    try:
        statement = _checked(job, soql)
    except QueryJobError as exc:
        batch = store.add_batch(job.id, soql, "Failed", f"InvalidBatch : {exc.message}")
        return _xml_reply("batchInfo", batch_info(batch), 201)
    if job.pk_chunking is None:
        batch = store.add_batch(job.id, soql)
        _submit(job, batch, statement)
    else:
        batch = _chunked(job, soql, statement)
    return _xml_reply("batchInfo", batch_info(batch), 201)


def _checked(job: QueryJob, soql: str) -> SelectStatement:
    """Parse the batch's SOQL; a problem becomes the batch's failure, as in Salesforce."""
    try:
        statement = parse(soql)
        current().store.query(soql, include_deleted=job.operation == "queryAll")
    except SoqlError as exc:
        raise QueryJobError(exc.code, f"Failed to process query: {exc.code}: {exc.message}",
                            xml=True) from exc
    if statement.count or statement.offset is not None:
        clause = "COUNT()" if statement.count else "OFFSET"
        raise QueryJobError("InvalidBatch", f"{clause} is not supported by Bulk API query",
                            xml=True)
    if statement.sobject.text.lower() != job.object.lower():
        raise QueryJobError("InvalidBatch", f"The query's object {statement.sobject.text} is "
                                            f"not the job's object {job.object}", xml=True)
    return statement


def _submit(job: QueryJob, batch: QueryBatch, statement: SelectStatement) -> None:
    state = current()
    cursor = state.store.query(batch.soql, include_deleted=job.operation == "queryAll")
    layout = csv_layout(state, cursor, statement, ",", "\n")
    _service().worker.submit(batch.seq, cursor, layout)


def _chunk_options(header: str) -> tuple[int, str | None]:
    """(chunkSize, startRow) from `Sforce-Enable-PKChunking` (`TRUE`, `chunkSize=n; ...`)."""
    size, start = DEFAULT_CHUNK_SIZE, None
    for part in (item.strip() for item in header.split(";")):
        key, _, value = part.partition("=")
        if not part or (not value and key.lower() == "true"):
            continue
        if key == "chunkSize" and value.isdigit() and 0 < int(value) <= MAX_CHUNK_SIZE:
            size = int(value)
        elif key == "startRow" and _ID.match(value):
            start = value
        elif key != "parent":
            raise QueryJobError("InvalidJob", f"Invalid Sforce-Enable-PKChunking {part!r}: "
                                              f"TRUE, chunkSize (1-{MAX_CHUNK_SIZE:,}), "
                                              "startRow or parent", xml=False)
    return size, start


def _chunked(job: QueryJob, soql: str, statement: SelectStatement) -> QueryBatch:
    store = _service().store
    reason = None
    if job.object not in PK_CHUNKING_OBJECTS and not job.object.endswith("__c"):
        reason = f"PK chunking is not supported for {job.object}"
    elif statement.order or statement.limit is not None:
        reason = "PK chunking works only with queries whose only clause is WHERE"
    if reason is not None:
        return store.add_batch(job.id, soql, "Failed", f"InvalidBatch : {reason}")
    original = store.add_batch(job.id, soql, NOT_PROCESSED)
    size, start = _chunk_options(job.pk_chunking or "")
    head, condition = _split_where(soql)
    state = current()
    for low, high in _boundaries(job, size, start):
        bounds = [f"Id >= '{low}'"] + ([f"Id < '{high}'"] if high else [])
        where = " AND ".join(([f"({condition})"] if condition else []) + bounds)
        chunk_soql = f"{head} WHERE {where}"
        if not state.limits.try_charge_batch():
            store.add_batch(job.id, chunk_soql, "Failed", "ExceededQuota : Exceeded max number "
                                                          "of batches allowed in 24 hour period")
            continue
        batch = store.add_batch(job.id, chunk_soql)
        _submit(job, batch, parse(chunk_soql))
    return original


def _split_where(soql: str) -> tuple[str, str]:
    """`SELECT ... FROM X` and the WHERE condition ("" without one). The first WHERE is the
    keyword: field and object names cannot be one, and literals only come after it."""
    parts = _WHERE.split(soql, maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _boundaries(job: QueryJob, size: int, start: str | None) -> Iterator[tuple[str, str | None]]:
    """Id ranges of `size` records over the whole table (deleted rows count too)."""
    # The object is describe's name and startRow a checked Id: nothing here is user text.
    soql = f"SELECT Id FROM {job.object}"  # noqa: S608
    if start:
        soql += f" WHERE Id >= '{start}'"
    cursor = current().store.query(soql + " ORDER BY Id", include_deleted=True)
    lows: list[str] = []
    position = 0
    while not cursor.done:
        for row in cursor.fetch(10_000):
            if position % size == 0:
                lows.append(str(row["Id"]))
            position += 1
    for index, low in enumerate(lows):
        yield low, lows[index + 1] if index + 1 < len(lows) else None


def _result(batch: QueryBatch, result_id: str | None) -> Response:
    if batch.state != COMPLETED:
        raise QueryJobError("InvalidBatch", "Batch not completed", xml=True)
    if result_id is None:
        return _xml_reply("result-list", f"<result>{batch.result_id}</result>")
    if result_id != batch.result_id:
        raise QueryJobError("InvalidBatch", f"Invalid result id: {result_id}", xml=True)
    return Response(_rows(batch, _service().store), mimetype="text/csv")


def _rows(batch: QueryBatch, store: QueryJobStore) -> Iterator[str]:
    """The header, then the rendered rows chunk by chunk while they are sent (after the
    view returned: no application context here)."""
    if batch.records_processed == 0:
        yield NO_RECORDS
        return
    yield batch.header or ""
    number = 0
    while (lines := store.chunk(batch.seq, number)) is not None:
        yield "".join(lines)
        number += 1
