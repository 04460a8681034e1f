"""Bulk API 1.0 (JSON) under `/services/async/NN.N/`: jobs, batches, results.

Ingest jobs only; query jobs are answered by `bulk_query`, which sees every request first.

Session in `X-SFDC-Session`; errors are HTTP 400 `{"exceptionCode", "exceptionMessage"}`.
Batches are only queued here; `bulk_worker` processes them asynchronously.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from emulators.salesforce import bulk_query
from emulators.salesforce.access import Refusal, admit
from emulators.salesforce.bulk_jobs import ABORTED, CLOSED, COMPLETED, OPEN
from emulators.salesforce.records import dumps
from emulators.salesforce.state import current
from emulators.salesforce.store import SoqlError
from emulators.salesforce.versions import parse_version

MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 10_000_000
OPERATIONS = ("insert", "update", "upsert", "delete")
_CONCURRENCY = {"Parallel": "Parallel", "Serial": "Serial", 0: "Parallel", 1: "Serial"}

blueprint = Blueprint("bulk", __name__, url_prefix="/services/async/<version>")


class BulkError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def reply(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


@blueprint.errorhandler(BulkError)
def _bulk_error(exc: BulkError) -> Response:
    return reply({"exceptionCode": exc.code, "exceptionMessage": exc.message}, 400)


@blueprint.errorhandler(Refusal)
def _refused(exc: Refusal) -> Response:
    if exc.code == "INVALID_SESSION_ID":
        return _bulk_error(BulkError("InvalidSessionId", "Invalid session id"))
    return _bulk_error(BulkError("ExceededQuota", exc.message))


@blueprint.url_value_preprocessor
def _enter(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Every Bulk call: version, session, allowance, in that order."""
    version = (values or {}).pop("version", "")
    bare = parse_version(version)
    if bare is None:
        raise BulkError("InvalidVersion", f"Invalid api version specified on URL: {version}")
    admit(request.headers.get("X-SFDC-Session"))
    request.environ["salesforce.api_version"] = float(bare)


@blueprint.before_request
def _query_jobs() -> Response | None:
    """Query jobs (CSV results, XML batch infos) are `bulk_query`'s; ingest jobs stay here."""
    return bulk_query.dispatch()


def _json_body(code: str) -> Any:
    if request.mimetype != "application/json":
        raise BulkError(code, "This sandbox speaks Bulk API 1.0 JSON only: send "
                              "Content-Type: application/json")
    try:
        return json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BulkError(code, f"Unable to parse JSON: {exc}") from exc


def _job(job_id: str) -> dict[str, Any]:
    info = current().jobs.job_info(job_id)
    if info is None:
        raise BulkError("InvalidJob", f"Invalid job id: {job_id}")
    return info


@blueprint.post("/job")
def create_job() -> Response:
    body = _json_body("InvalidJob")
    if not isinstance(body, dict):
        raise BulkError("InvalidJob", "The job must be a JSON object")
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise BulkError("InvalidJob", f"Invalid operation {operation!r}: this sandbox supports "
                                      f"{', '.join(OPERATIONS)}")
    if body.get("contentType") != "JSON":
        raise BulkError("InvalidJob", f"contentType {body.get('contentType')!r} is not "
                                      "supported: this sandbox takes JSON batches only")
    mode = body.get("concurrencyMode", "Parallel")
    if isinstance(mode, bool) or mode not in _CONCURRENCY:
        raise BulkError("InvalidJob", f"Invalid concurrencyMode {mode!r}: Parallel or Serial")
    sobject = str(body.get("object") or "")
    try:
        describe = current().store.describe(sobject)
    except SoqlError as exc:
        raise BulkError("InvalidJob", f"Unable to find object: {sobject}") from exc
    external_id = (_external_id_field(describe, sobject, body.get("externalIdFieldName"))
                   if operation == "upsert" else None)
    info = current().jobs.create_job(operation, describe.get("name", sobject), external_id,
                                     _CONCURRENCY[mode],
                                     request.environ["salesforce.api_version"])
    return reply(info, 201)


def _external_id_field(describe: dict[str, Any], sobject: str, field: Any) -> str:
    """The upsert key as describe spells it; it must be an external id or idLookup field."""
    if not field:
        raise BulkError("InvalidJob", "External ID field name is required for upsert")
    for item in describe.get("fields", []):
        if item.get("name", "").lower() == str(field).lower():
            if item.get("externalId") or item.get("idLookup"):
                return str(item["name"])
            break
    raise BulkError("InvalidJob", f"Field name provided, {field} is not an External ID or "
                                  f"indexed field for {sobject}")


@blueprint.get("/job/<job_id>")
def get_job(job_id: str) -> Response:
    return reply(_job(job_id))


@blueprint.post("/job/<job_id>")
def change_job(job_id: str) -> Response:
    state = _job(job_id)["state"]
    body = _json_body("InvalidJob")
    wanted = body.get("state") if isinstance(body, dict) else None
    allowed = {CLOSED: (OPEN, CLOSED), ABORTED: (OPEN, CLOSED, ABORTED)}
    if wanted not in allowed:
        raise BulkError("InvalidJobState", f"Invalid state {wanted!r}: Closed or Aborted")
    if state not in allowed[wanted]:
        raise BulkError("InvalidJobState", f"Job {job_id} is {state} and cannot be {wanted}")
    jobs = current().jobs
    if state != wanted:
        jobs.set_job_state(job_id, wanted)
    return reply(_job(job_id))


@blueprint.post("/job/<job_id>/batch")
def add_batch(job_id: str) -> Response:
    state = current()
    job = _job(job_id)
    if job["state"] != OPEN:
        raise BulkError("InvalidJobState",
                        f"Job {job_id} is {job['state']}: batches can only be added to an "
                        "Open job")
    size = request.content_length
    if size is not None and size > MAX_BATCH_BYTES:
        raise BulkError("InvalidBatch", f"Exceeded max size limit of {MAX_BATCH_BYTES}")
    data = request.get_data()
    if len(data) > MAX_BATCH_BYTES:
        raise BulkError("InvalidBatch", f"Exceeded max size limit of {MAX_BATCH_BYTES}")
    records = _json_body("InvalidBatch")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BulkError("InvalidBatch", "The batch must be a JSON array of record objects")
    if not records:
        raise BulkError("InvalidBatch", "Records not found")
    if len(records) > MAX_BATCH_RECORDS:
        raise BulkError("InvalidBatch", f"Exceeded number of records: {len(records)}. Number "
                                        f"of records should be less than or equal to "
                                        f"{MAX_BATCH_RECORDS}")
    if not state.limits.try_charge_batch():
        raise BulkError("ExceededQuota", "Exceeded max number of batches allowed in 24 hour "
                                         "period")
    info = state.jobs.add_batch(job_id, data.decode("utf-8"), len(records))
    state.worker.wake()
    return reply(info, 201)


@blueprint.get("/job/<job_id>/batch")
def list_batches(job_id: str) -> Response:
    _job(job_id)
    return reply({"batchInfo": current().jobs.list_batches(job_id)})


def _batch(job_id: str, batch_id: str) -> dict[str, Any]:
    _job(job_id)
    info = current().jobs.batch_info(job_id, batch_id)
    if info is None:
        raise BulkError("InvalidBatch", f"Invalid batch id: {batch_id}")
    return info


@blueprint.get("/job/<job_id>/batch/<batch_id>")
def get_batch(job_id: str, batch_id: str) -> Response:
    return reply(_batch(job_id, batch_id))


@blueprint.get("/job/<job_id>/batch/<batch_id>/request")
def batch_request(job_id: str, batch_id: str) -> Response:
    _batch(job_id, batch_id)
    payload = current().jobs.batch_payload(job_id, batch_id) or "[]"
    return Response(payload, mimetype="application/json")


@blueprint.get("/job/<job_id>/batch/<batch_id>/result")
def batch_result(job_id: str, batch_id: str) -> Response:
    if _batch(job_id, batch_id)["state"] != COMPLETED:
        raise BulkError("InvalidBatch", "Batch not completed")
    chunks = current().jobs.result_chunks(batch_id)

    def stream() -> Iterator[str]:
        yield "["
        separator = ""
        for chunk in chunks:
            inner = chunk.strip()[1:-1]
            if inner:
                yield separator + inner
                separator = ","
        yield "]"

    return Response(stream(), mimetype="application/json")


@blueprint.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str) -> Response:
    raise BulkError("InvalidUrl", f"Unknown Bulk API 1.0 resource: {rest}")
