"""Incremental reads of CRM objects: SOQL by bookmark through `queryAll`, or a Bulk 2.0 job.

Bookmark semantics (why `>=` and not `>`): Salesforce stamps every record of one transaction
with the same `SystemModstamp`, and a long transaction can commit rows stamped a little
earlier than rows already visible. A strict `>` on the last value seen would lose the rest
of an equal-timestamp group after an interrupted run and every late-committed row. So the
query is `WHERE SystemModstamp >= <bookmark - lookback_minutes>`: the rows at the bookmark
(and those in the look-back window) are read again, and targets upsert by `Id`, so reading a
row twice is harmless while missing one is not. The datetime literal is floored to the second
(SOQL's literal form), which only widens that overlap. With `lookback_minutes: 0` an
incremental run re-emits only the rows stamped in the bookmark's second.

Rows come `ORDER BY <key> ASC, Id ASC`, so the bookmark after any record is a safe restart
point (`is_sorted`); the SDK's own sort check is off because the look-back overlap re-reads
rows older than the stored bookmark by design, and an equivalent check runs on the rows
actually returned. While the overlap is read the stored bookmark may step back by up to
the look-back; a run interrupted there re-reads at most one more window next time, and a
completed run always ends on the newest stamp it read. `queryAll` (and the `queryAll` Bulk
operation) include deleted rows, which are emitted with `IsDeleted = true` so the target
can clear what they fed.

A read also has a ceiling: `AND SystemModstamp <= <ceiling>`, one whole second for the run
(SOQL literals have no fractions) that has passed before the first query, and the streams'
signpost (the SDK's "max allowable bookmark"). A query cursor fixes which rows come in which
order when the query runs, but a row changed while the pages are read can come back with
its new, later stamp, ahead of older rows still to come. Such a row is stamped after the
ceiling: it is left for the next run, which starts at or below the ceiling and so reads it
with its new values, and every emitted row, and so the bookmark, stays at or below the
ceiling. A busy org therefore does not stop the stream. The ceiling is this machine's
clock: one behind Salesforce's only moves rows to the next run; one ahead by more than the
time a read takes to reach a changed row lets that row through out of order, which stops
the stream as before (nothing is lost; NTP keeps both far closer than that).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk.exceptions import InvalidStreamSortException
from singer_sdk.singerlib import Metadata

from target_salesforce_crm import client as client_module
from target_salesforce_crm import soql
from target_salesforce_crm.errors import ApiError, SalesforceError
from target_salesforce_crm.tap.schema import (
    FieldAccessError,
    datetime_columns,
    normalize_datetime,
    property_at,
    typed_value,
)

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context, Record

    from target_salesforce_crm.client import SalesforceClient

LOGGER = logging.getLogger(__name__)
REPLICATION_KEYS = ("SystemModstamp", "LastModifiedDate")
ALWAYS_SELECTED = ("Id", "IsDeleted")
# Field names and one-level relationship paths; anything else never reaches a SOQL statement.
SOQL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class StreamPlan:
    """What one stream reads: its object, SOQL columns (`Email`, `Campaign.Name`), schema, key."""

    name: str
    sobject: str
    columns: tuple[str, ...]
    schema: dict[str, Any]
    replication_key: str | None
    # Datetime columns, normalised to one RFC 3339 shape (bookmarks compare as strings).
    datetimes: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        for expression in (self.sobject, *self.columns):
            if not SOQL_NAME.match(expression):
                raise SalesforceError(
                    f"Stream {self.name}: {expression!r} is not a Salesforce field or object "
                    "name (or a one-level relationship such as Account.Name); fix the "
                    "mapping file, the catalog or the extra_fields setting."
                )
        object.__setattr__(self, "datetimes", datetime_columns(self.schema))

    def only(self, columns: Iterable[str]) -> StreamPlan:
        """The same plan reading fewer columns (the selected ones)."""
        return replace(self, columns=tuple(columns))

    def record_from_rest(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A REST query row → a record; relationship values arrive nested, as REST sends them."""
        record: dict[str, Any] = {}
        for expression in self.columns:
            if "." in expression:
                relation, name = expression.split(".", 1)
                parent = _get(row, relation)
                if not isinstance(parent, Mapping):
                    record.setdefault(relation, None)
                    continue
                value = self._datetime(expression, _get(parent, name))
                nested = record.get(relation)
                if nested is None:
                    nested = record[relation] = {}
                nested[name] = value
            else:
                record[expression] = self._datetime(expression, _get(row, expression))
        return record

    def record_from_csv(self, row: Mapping[str, str]) -> dict[str, Any]:
        """A Bulk 2.0 CSV row (headers are the SELECT expressions, values text) → a record.

        CSV cannot tell a missing parent from a parent with empty fields: a relationship
        whose cells are all empty becomes null, as REST gives a missing parent.
        """
        cells = {key.lower(): value for key, value in row.items()}
        record: dict[str, Any] = {}
        parents: dict[str, dict[str, Any]] = {}
        for expression in self.columns:
            value = typed_value(cells.get(expression.lower()), property_at(self.schema, expression))
            if "." in expression:
                relation, name = expression.split(".", 1)
                parents.setdefault(relation, {})[name] = value
                record.setdefault(relation, None)
            else:
                record[expression] = value
        for relation, values in parents.items():
            if any(value is not None for value in values.values()):
                record[relation] = values
        return record

    def _datetime(self, expression: str, value: Any) -> Any:
        return normalize_datetime(value) if value is not None and expression in self.datetimes \
            else value


def _get(row: Mapping[str, Any], name: str) -> Any:
    """Value by field name; Salesforce answers in describe's case, which a catalog may not use."""
    if name in row:
        return row[name]
    lowered = name.lower()
    return next((value for key, value in row.items() if key.lower() == lowered), None)


def build_soql(
    sobject: str,
    expressions: Iterable[str],
    *,
    replication_key: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None = None,
    limit: int | None = None,
) -> str:
    """`SELECT … FROM X WHERE key >= start AND key <= end ORDER BY key ASC, Id ASC [LIMIT n]`.

    Names are checked against the identifier grammar and the only values are datetime
    literals, so nothing from a record or a setting can change the statement's meaning.
    """
    expressions = list(expressions)
    names = [sobject, *expressions, *([replication_key] if replication_key else [])]
    bad = [name for name in names if not SOQL_NAME.match(name)]
    if bad:
        raise SalesforceError(f"Not a Salesforce field or object name: {', '.join(map(repr, bad))}")
    words = ["SELECT", ", ".join(expressions), "FROM", sobject]
    bounds = []
    if replication_key and start is not None:
        bounds.append(f"{replication_key} >= {soql.datetime_literal(start)}")
    if replication_key and end is not None:
        bounds.append(f"{replication_key} <= {soql.datetime_literal(end)}")
    if bounds:
        words += ["WHERE", " AND ".join(bounds)]
    order = [replication_key, "Id"] if replication_key else ["Id"]
    words += ["ORDER BY", ", ".join(f"{name} ASC" for name in order)]
    if limit is not None:
        words += ["LIMIT", str(int(limit))]
    return " ".join(words)


class ReadCeiling:
    """The newest modification stamp a run reads (see the module docstring), shared by its
    streams: the first whole second after the first call, returned once it has passed.

    So at most one wait (under a second) per run, and every row committed before a query
    runs is at or below the ceiling.
    """

    def __init__(self, *, now: Callable[[], dt.datetime] | None = None) -> None:
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._value: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        if self._value is None:
            now = self._now()
            ceiling = now.replace(microsecond=0) + dt.timedelta(seconds=1)
            client_module.sleep((ceiling - now).total_seconds())
            self._value = ceiling
        return self._value


class SalesforceStream(Stream):
    """One CRM object, read incrementally by its modification stamp."""

    def __init__(self, tap: Tap, plan: StreamPlan, client: SalesforceClient,
                 ceiling: ReadCeiling | None = None) -> None:
        super().__init__(tap=tap, schema=plan.schema, name=plan.name)
        self.plan = plan
        self.client = client
        self.ceiling = ceiling or ReadCeiling()
        self.primary_keys = ["Id"]
        self.replication_key = plan.replication_key  # type-checked by the SDK setter

    @property
    def is_sorted(self) -> bool:
        """Rows come ordered by the key, so the bookmark after any record is resumable."""
        return True

    @property
    def check_sorted(self) -> bool:
        """Off: the look-back overlap re-reads rows older than the bookmark on purpose."""
        return False

    @property
    def metadata(self) -> Any:
        """IsDeleted is always selected: without it a deletion would look like an update."""
        metadata = super().metadata
        if self._tap_input_catalog is None:
            for name in ALWAYS_SELECTED:
                entry = metadata.get(("properties", name))
                if entry is not None:
                    entry.inclusion = Metadata.InclusionType.AUTOMATIC
        return metadata

    def selected_plan(self) -> StreamPlan:
        """Only the selected properties are read (the SDK forces keys and automatic ones)."""
        def selected(expression: str) -> bool:
            crumb: tuple[str, ...] = ()
            for step in expression.split("."):
                crumb = (*crumb, "properties", step)
                if not self.mask.get(crumb, True):
                    return False
            return True

        return self.plan.only(column for column in self.plan.columns if selected(column))

    def query_start(self, context: Context | None) -> dt.datetime | None:
        """Bookmark minus `lookback_minutes` (never before `start_date`), or `start_date`."""
        if not self.replication_key:
            return None
        start = self.get_starting_timestamp(context)
        if start is None:
            return None
        if self.get_context_state(context).get("replication_key_value") is not None:
            start -= dt.timedelta(minutes=int(self.config.get("lookback_minutes") or 0))
        floor = self.config.get("start_date")
        if floor:
            floor_dt = self._parse_datetime(str(floor))
            start = max(start, floor_dt)
        return start

    def get_replication_key_signpost(self, context: Context | None = None) -> dt.datetime | None:
        """The run's read ceiling: no bookmark goes past it."""
        return self.ceiling() if self.replication_key else None

    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Rows from `queryAll` (REST) or, for a first sync with `use_bulk_api`, Bulk 2.0."""
        plan = self.selected_plan()
        limit = None if self.ABORT_AT_RECORD_COUNT is None else self.ABORT_AT_RECORD_COUNT + 1
        has_bookmark = self.get_context_state(context).get("replication_key_value") is not None
        ceiling = self.get_replication_key_signpost(context)
        statement = build_soql(
            plan.sobject, plan.columns, replication_key=self.replication_key,
            start=self.query_start(context), end=ceiling, limit=limit,
        )
        use_bulk = bool(self.config.get("use_bulk_api")) and not has_bookmark and limit is None
        self.logger.info(
            "Reading %s with %s: %s", self.name, "Bulk API 2.0" if use_bulk else "REST queryAll",
            statement,
        )
        try:
            if use_bulk:
                reader = BulkQuery(self.client)
                records = (plan.record_from_csv(row) for row in reader.rows(statement))
            else:
                rows = self.client.query(statement, include_deleted=True)
                records = (plan.record_from_rest(row) for row in rows)
            yield from self._in_key_order(
                records, None if ceiling is None else normalize_datetime(ceiling.isoformat()))
        except ApiError as error:
            if error.code == "INVALID_FIELD":
                raise FieldAccessError(
                    f"Stream {self.name}: Salesforce refused a field of {self.plan.sobject} "
                    f"({error.message}). Grant the integration user Read access to it, or run "
                    "discovery again so the catalog matches what the user can read."
                ) from error
            raise

    def _in_key_order(
        self, records: Iterable[dict[str, Any]], ceiling: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Pass records through, refusing any that would move the bookmark backwards.

        A record stamped after `ceiling` changed while the query's pages were read: it is
        left for the next run (see the module docstring) and counted.
        """
        key = self.replication_key
        previous: str | None = None
        deferred = 0
        for record in records:
            value = record.get(key) if key else None
            if value is not None:
                if ceiling is not None and value > ceiling:
                    deferred += 1
                    continue
                if previous is not None and value < previous:
                    raise InvalidStreamSortException(
                        f"Stream {self.name}: Salesforce returned {key} {value} after "
                        f"{previous}; the rows are not in key order, so no bookmark is safe. "
                        "Re-run; report it if it persists."
                    )
                previous = value
            yield record
        if deferred:
            self.logger.info(
                "%s: %d rows changed while this run read them; the next run reads them with "
                "their new values (%s after %s)", self.name, deferred, key, ceiling,
            )


class BulkQuery:
    """A Bulk API 2.0 query job: create, wait with growing pauses, stream CSV result pages.

    Pages follow the `Sforce-Locator` header; each page is parsed while it downloads, so
    memory stays flat however large the extract is.
    """

    PAGE_SIZE = 50_000
    POLL_INITIAL_SECONDS = 0.5
    POLL_MAX_SECONDS = 10.0
    POLL_TIMEOUT_SECONDS = 4 * 3600.0
    FINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})

    def __init__(
        self,
        client: SalesforceClient,
        *,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.base = f"{client.rest_path}/jobs/query"
        self.page_size = page_size
        self.sleep = sleep
        self.clock = clock

    def rows(self, statement: str, *, include_deleted: bool = True) -> Iterator[dict[str, str]]:
        """Rows of the query as {CSV header: text}; the job is aborted if we give up on it."""
        job_id = self._create(statement, include_deleted)
        try:
            self._wait(job_id)
        except _JobEnded:
            raise  # already Failed or Aborted: nothing left to abort
        except BaseException:
            self._abort(job_id)
            raise
        yield from self._results(job_id)

    def _create(self, statement: str, include_deleted: bool) -> str:
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": statement,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        try:
            answer = self.client.request("POST", self.base, kind="bulk", json=body)
        except ApiError as error:
            if error.status == 404:
                raise SalesforceError(
                    f"This org does not offer Bulk API 2.0 query jobs at {self.base} "
                    f"({error.code}); they need API version 47.0 or later (setting "
                    "api_version). Set use_bulk_api false to read through REST queryAll."
                ) from error
            raise
        return str(answer.json()["id"])

    def _wait(self, job_id: str) -> None:
        delay = self.POLL_INITIAL_SECONDS
        deadline = self.clock() + self.POLL_TIMEOUT_SECONDS
        while True:
            info = self.client.request("GET", f"{self.base}/{job_id}", kind="bulk").json()
            state = info.get("state")
            if state == "JobComplete":
                return
            if state in self.FINAL_STATES:
                raise _JobEnded(
                    f"Bulk API 2.0 query job {job_id} ended {state}: "
                    f"{info.get('errorMessage') or 'no reason given'}. Re-run; with "
                    "use_bulk_api false the same read goes through REST queryAll."
                )
            if self.clock() >= deadline:
                raise SalesforceError(
                    f"Bulk API 2.0 query job {job_id} still {state} after "
                    f"{self.POLL_TIMEOUT_SECONDS / 60:.0f} minutes; it was aborted. Re-run, or set "
                    "use_bulk_api false to read through REST queryAll."
                )
            self.sleep(delay)
            delay = min(self.POLL_MAX_SECONDS, delay * 2)

    def _results(self, job_id: str) -> Iterator[dict[str, str]]:
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": self.page_size}
            if locator:
                params["locator"] = locator
            answer = self.client.request(
                "GET", f"{self.base}/{job_id}/results", kind="bulk", params=params, stream=True,
            )
            with closing(answer):
                locator = answer.headers.get("Sforce-Locator")
                lines = _text_lines(answer.iter_content(chunk_size=1 << 16))
                reader = csv.reader(lines)
                header = next(reader, None)
                if header is not None:
                    for cells in reader:
                        yield dict(zip(header, cells, strict=True))
            if not locator or locator == "null":
                return

    def _abort(self, job_id: str) -> None:
        """Free the org's job slot; a failure here must not hide the original error."""
        try:
            self.client.request(
                "PATCH", f"{self.base}/{job_id}", kind="bulk", json={"state": "Aborted"},
            )
        except SalesforceError as error:
            LOGGER.warning("Could not abort Bulk API 2.0 query job %s (it expires on its own "
                           "after 7 days): %s", job_id, error)


class _JobEnded(SalesforceError):
    """The job reached a final state other than JobComplete on the server's side."""


def _text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 byte chunks → lines with their newline kept (quoted CSV cells may span lines)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        lines = pending.split("\n")
        pending = lines.pop()
        for line in lines:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
