"""How a drained batch of input records reaches Salesforce: map → match → check → write.

A drain decides what it can on its own (invalid, unmatched, ambiguous, refused before
sending, unchanged) and hands the writes to the run's Bulk writer, which sends only full
batches and does not wait for them; their outcomes are folded in as batches finish. A
STATE message is a checkpoint: `SyncRun.settle` runs before singer-sdk writes one, sends
what waits and folds every answer, so every record before it has its outcome (updated,
created, unchanged, unmatched or rejected, each line in the outcome files flushed).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
from crm_sync_mapping.paths import parse_path
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import JSONSchemaValidator

from target_salesforce_crm.changes import field_changes
from target_salesforce_crm.errors import one_line
from target_salesforce_crm.fingerprints import FingerprintStore, fields_hash, values_hash
from target_salesforce_crm.matching import Candidate, MatchResult, ObjectMatcher
from target_salesforce_crm.outcomes import (
    AMBIGUOUS_MATCH,
    INVALID_RECORD,
    INVALID_VALUE,
    MISSING_EXTERNAL_ID,
    MISSING_KEY,
    STAGE_INPUT,
    STAGE_MAPPING,
    STAGE_MATCH,
    STAGE_PRECHECK,
    STAGE_SALESFORCE,
    OutcomeFiles,
    Reject,
    SourceRef,
)
from target_salesforce_crm.preflight import (
    ApiBudget,
    ValueChecker,
    check_objects,
    estimate_calls,
)
from target_salesforce_crm.report import (
    ObjectStats,
    RejectThresholdError,
    RunReport,
    reject_allowance,
)
from target_salesforce_crm.writer import (
    BulkWriter,
    DryRunWriter,
    WriteItem,
    WriteOutcome,
    merge_items,
)

if TYPE_CHECKING:
    from target_salesforce_crm.target import TargetSalesforceCRM

# Records per drain. Drains no longer decide batch sizes (the writer sends full batches
# across drains), so this only bounds the records held at once; a multiple of the 1,000-
# candidate look-up keeps look-ups full.
DEFAULT_BATCH_SIZE_ROWS = 10_000
# The stream `meltano config test` sends to a loader. It is not written anywhere; its
# presence makes the run test the connection and the preflight instead.
CONNECTION_TEST_STREAM = "meltano_test_stream"
PROGRESS_SECONDS = 15.0
# Dry run: records per object whose field-level changes the report shows.
SAMPLE_SIZE = 5
# Which outcome a record gets when its CRM records fared differently (rejected beats all).
_STATUS_RANK = {"unchanged": 0, "updated": 1, "created": 2}
# Schema keywords only jsonschema handles as singer-sdk means them (see `compiled_check`).
_JSONSCHEMA_ONLY = (
    "$ref", "$dynamicRef", "$recursiveRef", "prefixItems", "unevaluatedProperties",
    "unevaluatedItems", "dependentRequired", "dependentSchemas",
)


class RecordingValidator(JSONSchemaValidator):
    """Schema validation that reports instead of stopping the run.

    A record that breaks its stream's schema becomes a reject naming its key (nothing is
    lost and the rest of the run goes on); the sink collects the reason right after
    validation, which the SDK runs immediately before `process_record`.

    jsonschema walks the schema for every record (about 85 µs each, a third of the
    target's CPU); a compiled `fastjsonschema` check takes about 4 µs. So the compiled
    check lets the valid records through, and jsonschema, as singer-sdk configures it,
    judges the rest: the verdict and the reason in the reject stay jsonschema's.
    """

    problem: str | None = None

    def __init__(self, schema: dict[str, Any], *, validate_formats: bool = False) -> None:
        super().__init__(schema, validate_formats=validate_formats)
        self._passes = None if validate_formats else compiled_check(schema)

    def validate(self, record: dict) -> None:
        if self._passes is not None and self._passes(record):
            return
        try:
            super().validate(record)
        except InvalidRecord as exc:
            self.problem = exc.error_message

    def take_problem(self) -> str | None:
        problem, self.problem = self.problem, None
        return problem


def compiled_check(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """True for a record the schema surely accepts; None when only jsonschema may decide.

    Compiled without defaults (the record is never changed) and without formats (as
    singer-sdk validates by default). Left to jsonschema: a schema with references (it
    never fetches a remote one), with keywords of draft 2020-12 that fastjsonschema does not
    know (it would let through what they forbid), and one it cannot compile.
    """
    text = json.dumps(schema)
    if any(f'"{keyword}"' in text for keyword in _JSONSCHEMA_ONLY):
        return None
    try:
        check = fastjsonschema.compile(schema, use_default=False, use_formats=False,
                                       detailed_exceptions=False)
    except Exception:  # any schema it cannot compile: jsonschema alone still validates
        return None

    def passes(record: dict[str, Any]) -> bool:
        try:
            check(record)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return passes


@dataclass(slots=True)
class _Pending:
    """A record of the current drain, with the schema problem found on arrival.

    `record` holds only the properties the mapping reads (see `read_properties`).
    """

    position: int
    record: dict[str, Any]
    problem: str | None = None


@dataclass(slots=True)
class _Open:
    """One input record's outcome for one object while some of its writes are unanswered."""

    remaining: int = 0
    status: str | None = None
    code: str | None = None


@dataclass
class _Verdicts:
    """Per object of one drain: positions that found no CRM record (for Lead routing)."""

    unmatched: dict[str, set[int]] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def read_properties(objects: Sequence[Any]) -> frozenset[str]:
    """Top-level properties the mapping of a stream reads: all a drain needs to keep.

    Keys, match rules (disabled ones too: an upsert reads its external id through them),
    fuzzy tie-breakers, mapped fields and create defaults. The rest of a record (display
    names, geo, extra keys) is dropped on arrival, after validation.
    """
    sources: list[str] = []
    for om in objects:
        sources.append(om.key)
        for rule in om.match:
            sources.append(rule.source)
            if rule.fuzzy is not None and rule.fuzzy.tie_breaker_source:
                sources.append(rule.fuzzy.tie_breaker_source)
        sources += [f.source for f in (*om.fields, *om.write.create_defaults) if f.source]
    return frozenset(parse_path(source).steps[0].name for source in sources)


def plain_record(record: dict[str, Any]) -> dict[str, Any]:
    """Undo the SDK's parsing so the mapping sees JSON values, as the tap emitted them.

    singer-sdk reads JSON numbers as `Decimal` and turns top-level date/date-time strings
    into Python objects; the mapping file's conversions (`number`, `round`, `iso_datetime`)
    work on plain JSON numbers and ISO text.
    """
    plain: dict[str, Any] = {}
    for name, value in record.items():
        plain[name] = value.isoformat() if isinstance(value, dt.date) else _plain(value)
    return plain


class IgnoredSink(BatchSink):
    """A stream the mapping does not name: counted and reported, never sent anywhere."""

    MAX_SIZE_DEFAULT = DEFAULT_BATCH_SIZE_ROWS

    def __init__(self, target: TargetSalesforceCRM, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.run = target.run
        self.run.report.stream(self.stream_name).ignored = True
        self.logger.info("Stream '%s' is not in the mapping: its records are ignored",
                         self.stream_name)

    def get_validator(self) -> None:
        """Records that go nowhere are not validated: a bad one must not stop the run."""
        return None

    def process_record(self, record: dict, context: dict) -> None:
        self.run.report.stream(self.stream_name).records += 1

    def process_batch(self, context: dict) -> None:
        """Nothing to send."""


class MappedSink(BatchSink):
    """A stream the mapping sends to one or more CRM objects."""

    MAX_SIZE_DEFAULT = DEFAULT_BATCH_SIZE_ROWS

    def __init__(self, target: TargetSalesforceCRM, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.run = target.run
        self.run.report.stream(self.stream_name)
        self.run.streams_seen.add(self.stream_name)
        self.read = read_properties(target.mapping.for_stream(self.stream_name))

    def get_validator(self) -> JSONSchemaValidator | None:
        if not self.validate_schema:
            return None
        return RecordingValidator(self.schema, validate_formats=self.validate_field_string_format)

    def process_record(self, record: dict, context: dict) -> None:
        validator = self._validator
        problem = validator.take_problem() if isinstance(validator, RecordingValidator) else None
        pending: list[_Pending] = context.setdefault("records", [])
        kept = {name: value for name, value in record.items() if name in self.read}
        pending.append(_Pending(len(pending), plain_record(kept), problem))
        self.run.report.stream(self.stream_name).records += 1

    def process_batch(self, context: dict) -> None:
        records: list[_Pending] = context.get("records", [])
        if not records:
            return
        try:
            self.run.drain(self.stream_name, records)
        except BaseException as exc:
            self.run.fail(exc)
            raise


class SyncRun:
    """What lives for one run: client, preflight results, matchers, outcome files, report."""

    def __init__(self, target: TargetSalesforceCRM) -> None:
        self.target = target
        self.mapping = target.mapping
        self.logger: logging.Logger = target.logger
        self.report = RunReport()
        self.outcomes = OutcomeFiles(target.output_dir)
        self.streams_seen: set[str] = set()
        self.budget = ApiBudget(float(self.target.setting("max_api_share")), self.logger)
        self.dry_run = bool(self.target.setting("dry_run"))
        self.full_refresh = bool(self.target.setting("full_refresh"))
        self.report.dry_run = self.dry_run
        self.fingerprints = FingerprintStore(
            Path(str(self.target.setting("fingerprint_db"))), readonly=self.dry_run,
        )
        self._client: Any = None
        self._writer: BulkWriter | DryRunWriter | None = None
        # Dry run only: current CRM values of the records matched in this object step.
        self._current: dict[str, dict[str, Any]] = {}
        self._checked: set[str] = set()
        self._matchers: dict[str, ObjectMatcher] = {}
        self._checkers: dict[str, ValueChecker] = {}
        self._last_progress = 0.0
        self._closed = False
        self._drain = 0
        # (object, drain, position) -> outcome so far, while writes of that record are out
        self._open: dict[tuple[str, int, int], _Open] = {}

    # -- connections (lazy: a run of ignored streams needs none) -----------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.target.create_client()
        return self._client

    @property
    def writer(self) -> BulkWriter | DryRunWriter:
        if self._writer is None and self.dry_run:
            self._writer = DryRunWriter(on_outcomes=self._on_outcomes)
        if self._writer is None:
            self._writer = BulkWriter(
                self.target.create_bulk(self.client),
                on_outcomes=self._on_outcomes,
                batch_size=int(self.target.setting("bulk_batch_size")),
                max_record_retries=int(self.target.setting("max_record_retries")),
                retry_backoff=float(self.target.setting("retry_backoff")),
                check_every=float(self.target.setting("poll_max")),
                logger=self.logger,
            )
        return self._writer

    # -- preflight -----------------------------------------------------------------------

    def _preflight(self, stream: str) -> None:
        """Describe and check every object of every stream seen so far, once."""
        objects = [
            om for name in sorted(self.streams_seen | {stream})
            for om in self.mapping.for_stream(name) if om.sobject not in self._checked
        ]
        if not objects:
            return
        describes = {om.sobject: self.client.describe(om.sobject) for om in objects}
        check_objects(describes, objects)
        for om in objects:
            self._checked.add(om.sobject)
            self._matchers[om.sobject] = ObjectMatcher(
                self.client, om, describes[om.sobject],
                lookup_batch_size=int(self.target.setting("lookup_batch_size")),
                read_fields=self._read_fields(om),
                logger=self.logger,
            )
            self._checkers[om.sobject] = ValueChecker(om.sobject, describes[om.sobject])
        self.logger.info("Preflight passed for %s", ", ".join(sorted(describes)))

    # -- one drain -----------------------------------------------------------------------

    def drain(self, stream: str, records: Sequence[_Pending]) -> None:
        """Decide or hand on every record of the drain, or raise (then no STATE follows)."""
        self.outcomes.open()
        self._drain += 1
        objects = self.mapping.for_stream(stream)
        try:
            self._preflight(stream)
            self.budget.check(self.client, estimate_calls(
                len(records), len(objects),
                int(self.target.setting("lookup_batch_size")),
                int(self.target.setting("bulk_batch_size")),
            ))
            if self._writer is not None:
                self._writer.collect()
            valid = self._valid(stream, records)
            verdicts = _Verdicts()
            for position, om in enumerate(objects):
                handed_on = any(
                    later.only_unmatched_by == om.sobject for later in objects[position + 1:]
                )
                self._object(stream, om, valid, verdicts, handed_on=handed_on)
        finally:
            self.outcomes.flush()
            self._sync_counts()
        self.logger.info("Drained %d records of '%s'", len(records), stream)

    def settle(self, *, close: bool = False) -> None:
        """Every record received so far gets its outcome: what a STATE message promises.

        Sends what waits for a full batch, waits for every answer (retries included) and
        flushes the outcome files; `close` (the end of the run) also closes the Bulk jobs.
        """
        if self._writer is not None:
            if close:
                self._writer.close()
            else:
                self._writer.settle()
        try:
            if self._open:  # the writer promises an outcome per item: never drop a record
                raise RuntimeError(
                    f"{len(self._open)} records came back without an outcome; this is a bug, "
                    "please report it with the run's log"
                )
        finally:
            self.outcomes.flush()
            self._sync_counts()

    def _valid(self, stream: str, records: Sequence[_Pending]) -> list[_Pending]:
        valid: list[_Pending] = []
        for pending in records:
            if pending.problem is None:
                valid.append(pending)
                continue
            self.report.stream(stream).invalid += 1
            key = self._any_key(stream, pending)
            self.outcomes.reject(Reject(
                SourceRef(stream, key, pending.position, self._drain), None, INVALID_RECORD,
                f"record {key} of stream '{stream}' does not match the stream's schema: "
                f"{pending.problem}", STAGE_INPUT,
            ))
        return valid

    def _any_key(self, stream: str, pending: _Pending) -> str:
        for om in self.mapping.for_stream(stream):
            key = om.record_key(pending.record)
            if key is not None:
                return key
        return f"#{pending.position + 1}"

    def _object(
        self, stream: str, om: Any, records: Sequence[_Pending], verdicts: _Verdicts, *,
        handed_on: bool,
    ) -> None:
        stats = self.report.object(om.sobject)
        chain = om.only_unmatched_by
        if chain and chain in verdicts.unmatched:
            records = [p for p in records if p.position in verdicts.unmatched[chain]]
        stats.candidates += len(records)
        candidates: list[Candidate] = []
        for pending in records:
            key = om.record_key(pending.record)
            if key is None:
                source = SourceRef(stream, f"#{pending.position + 1}", pending.position,
                                   self._drain)
                self._reject(stats, Reject(
                    source, om.sobject, MISSING_KEY,
                    f"record #{pending.position + 1} of stream '{stream}' has no '{om.key}' "
                    "(the mapping's key property)", STAGE_INPUT,
                ))
                continue
            candidates.append(Candidate(SourceRef(stream, key, pending.position, self._drain),
                                        pending.record))
        matcher = self._matchers[om.sobject]
        calls_before = matcher.lookup_calls
        updates: list[WriteItem] = []
        creates: list[WriteItem] = []
        unmatched: set[int] = set()
        tried = self._tried(om)
        for number, result in enumerate(matcher.match(candidates), start=1):
            self._verdict(stats, om, result, updates, creates, unmatched, tried,
                          handed_on=handed_on)
            self._progress(f"{stream} → {om.sobject}: looked up {number}/{len(candidates)}")
        stats.lookup_calls += matcher.lookup_calls - calls_before
        verdicts.unmatched[om.sobject] = unmatched
        if updates:
            changed, unchanged = self._changed(om, updates)
            self._sample(stats, changed)
            self._write(om, "update", changed, unchanged)
        if creates:
            self._write(om, "upsert", creates, [])
        self._current.clear()
        self.logger.info(
            "%s → %s: %d candidates, %d matched, %d unmatched, %d ambiguous, %d updated, "
            "%d created, %d unchanged, %d rejected so far%s",
            stream, om.sobject, stats.candidates, stats.matched, stats.unmatched,
            stats.ambiguous, stats.updated, stats.created, stats.unchanged,
            stats.rejected_total, " (dry run: nothing written)" if self.dry_run else "",
        )

    def _tried(self, om: Any) -> list[str]:
        """Objects a record went through before reaching `om` (Contact, then Lead)."""
        chain = [om.sobject]
        previous = om.only_unmatched_by
        while previous and previous not in chain:
            chain.insert(0, previous)
            previous = self.mapping.object(previous).only_unmatched_by
        return chain

    def _verdict(
        self, stats: ObjectStats, om: Any, result: MatchResult, updates: list[WriteItem],
        creates: list[WriteItem], unmatched: set[int], tried: list[str], *, handed_on: bool,
    ) -> None:
        source = result.candidate.source
        if result.status == "ambiguous":
            stats.ambiguous += 1
            self.outcomes.reject(Reject(
                source, om.sobject, AMBIGUOUS_MATCH,
                f"{result.reason}; ambiguity policy '{om.ambiguity}' writes none of them",
                STAGE_MATCH, fields=[result.rule] if result.rule else [],
            ))
            return
        upsert = om.write.mode == "upsert"
        if result.status == "unmatched" and not upsert:
            stats.unmatched += 1
            unmatched.add(source.position)
            if not handed_on:
                self.outcomes.unmatched(source, tried, result.keys)
            return
        if result.status == "matched":
            stats.matched += 1
        values = self._map(stats, om, result)
        if values is None:
            return
        if result.status == "matched":
            if upsert:
                values = {**self._external_id(om, result.candidate.record), **values}
            if self._prechecked(stats, om, source, values, result.ids[0]):
                if self.dry_run:
                    self._current.update(result.rows)
                updates.extend(
                    WriteItem([source], {"Id": crm_id, **values}, crm_id,
                              created_date=_text(result.rows.get(crm_id, {}).get("CreatedDate")))
                    for crm_id in result.ids
                )
            return
        defaults = self._create_values(stats, om, result)
        if defaults is None:
            return
        payload = {**defaults, **values}
        external_id = om.write.external_id
        payload = {**self._external_id(om, result.candidate.record), **payload}
        if payload.get(external_id) in (None, ""):
            self._reject(stats, Reject(
                source, om.sobject, MISSING_EXTERNAL_ID,
                f"cannot create a {om.sobject} for {source.key}: no value for the external id "
                f"{external_id}", STAGE_MAPPING, fields=[external_id],
            ))
            return
        if self._prechecked(stats, om, source, payload, None, create=True):
            creates.append(WriteItem([source], payload, None))

    def _map(self, stats: ObjectStats, om: Any, result: MatchResult) -> dict[str, Any] | None:
        values, problems = om.map_record(result.candidate.record)
        if not problems:
            return dict(values)
        self._mapping_reject(stats, om, result, problems)
        return None

    def _mapping_reject(
        self, stats: ObjectStats, om: Any, result: MatchResult, problems: list[str]
    ) -> None:
        source = result.candidate.source
        self._reject(stats, Reject(
            source, om.sobject, INVALID_VALUE,
            f"record {source.key}: " + "; ".join(problems), STAGE_MAPPING,
            crm_id=result.ids[0] if result.ids else None,
            fields=[p.split(":", 1)[0] for p in problems],
        ))

    def _create_values(
        self, stats: ObjectStats, om: Any, result: MatchResult
    ) -> dict[str, Any] | None:
        values, problems = om.create_values(result.candidate.record)
        if problems:
            self._mapping_reject(stats, om, result, problems)
            return None
        return {name: value for name, value in values.items() if value is not None}

    @staticmethod
    def _external_id(om: Any, record: Mapping[str, Any]) -> dict[str, Any]:
        """The upsert key's value, from the match rule on that field (e.g. the user id)."""
        for rule in om.match:
            if rule.field == om.write.external_id:
                key = rule.key(record)
                return {} if key is None else {rule.field: key}
        return {}

    def _prechecked(
        self, stats: ObjectStats, om: Any, source: SourceRef, payload: dict[str, Any],
        crm_id: str | None, *, create: bool = False,
    ) -> bool:
        checker = self._checkers[om.sobject]
        problems = checker.check(payload)
        if create:
            problems = checker.check_create(payload) + problems
        if not problems:
            return True
        self._reject(stats, Reject(
            source, om.sobject, problems[0].code,
            "; ".join(p.message for p in problems), STAGE_PRECHECK, crm_id=crm_id,
            fields=[p.field for p in problems], values=payload,
        ))
        return False

    # -- change detection -----------------------------------------------------------------

    def _read_fields(self, om: Any) -> list[str]:
        """Fields the look-up reads besides what matching needs (same call, no extra one).

        `CreatedDate` ties a fingerprint to one record's life: an Id issued again (an org
        reset, a sandbox refreshed from production) is not mistaken for the record written
        before. A dry run also reads the mapped fields to show old → new.
        """
        names = ["CreatedDate"]  # also under full_refresh, which rewrites the fingerprints
        if self.dry_run:
            names += [f.target for f in om.fields]
        return names

    @staticmethod
    def _fingerprint_fields(om: Any) -> list[str]:
        """The mapped field set: what an update of a matched record sends besides the Id."""
        names = [f.target for f in om.fields]
        if om.write.mode == "upsert":
            names.append(om.write.external_id)
        return names

    def _changed(
        self, om: Any, updates: list[WriteItem]
    ) -> tuple[list[WriteItem], list[WriteItem]]:
        """Split updates into the ones to send and the ones whose values were last written.

        Items are merged per CRM Id first (as the writer would), so the fingerprint is that
        of the payload actually sent; `full_refresh` sends everything.
        """
        merged, _count = merge_items(updates, lambda item: item.crm_id)
        if self.full_refresh:
            return merged, []
        fields = self._fingerprint_fields(om)
        # A record whose earlier write is still out is sent again: its fingerprint is stale.
        stored = self.fingerprints.lookup(
            self._org(), om.sobject, fields_hash(fields),
            [item.crm_id for item in merged
             if item.crm_id and not self.writer.is_pending(om.sobject, "update", item.crm_id)],
        )
        if not stored:
            return merged, []
        changed: list[WriteItem] = []
        unchanged: list[WriteItem] = []
        for item in merged:
            known = stored.get(item.crm_id or "")
            same = known is not None and item.created_date is not None and known == values_hash(
                item.payload, fields, item.created_date)
            (unchanged if same else changed).append(item)
        return changed, unchanged

    def _org(self) -> str:
        """Which org fingerprints belong to: a refreshed sandbox shares production's Ids."""
        return str(self.client.session().instance_url).rstrip("/").lower()

    def _remember(self, om: Any, outcomes: Sequence[WriteOutcome]) -> None:
        """Fingerprint only what batch results confirmed written (never in a dry run)."""
        if self.dry_run:
            return
        fields = self._fingerprint_fields(om)
        self.fingerprints.record(self._org(), om.sobject, fields_hash(fields), (
            (outcome.crm_id, values_hash(outcome.item.payload, fields, outcome.item.created_date))
            for outcome in outcomes
            # A created record's CreatedDate is unknown until a look-up reads it: its
            # fingerprint is taken the first time a run updates it.
            if outcome.status == "updated" and outcome.crm_id and outcome.item.created_date
        ))

    def _sample(self, stats: ObjectStats, items: list[WriteItem]) -> None:
        """Dry run: old → new of a few records, from the values read in the look-up."""
        for item in items:
            if len(stats.changes_sample) >= SAMPLE_SIZE:
                return
            current = self._current.get(item.crm_id or "")
            if current is None:
                continue
            changes = field_changes(current, item.payload)
            if changes:
                stats.changes_sample.append({
                    "key": item.sources[0].key, "crm_id": item.crm_id, "changes": changes,
                })

    def _write(
        self, om: Any, operation: str, items: list[WriteItem], unchanged: list[WriteItem],
    ) -> None:
        """Hand the writes on; each input record's outcome is settled as they come back."""
        for item in (*items, *unchanged):
            for source in item.sources:
                key = (om.sobject, source.drain, source.position)
                entry = self._open.get(key)
                if entry is None:
                    entry = self._open[key] = _Open()
                entry.remaining += 1
        if unchanged:
            self._fold(om.sobject, [
                WriteOutcome(item, "unchanged", item.crm_id) for item in unchanged
            ])
        if items:
            self.writer.submit(
                om.sobject, "update" if operation == "update" else "upsert", items,
                external_id_field=om.write.external_id if operation == "upsert" else None,
            )

    def _on_outcomes(self, sobject: str, outcomes: list[WriteOutcome]) -> None:
        """A batch's answers: fingerprint what was written, then fold."""
        self._remember(self.mapping.object(sobject), outcomes)
        self._fold(sobject, outcomes)

    def _fold(self, sobject: str, outcomes: Sequence[WriteOutcome]) -> None:
        """Exactly one outcome per input record and object, counted once all its writes are.

        Rejected beats created beats updated beats unchanged: a record whose two CRM
        records (ambiguity policy `update_all`) fared differently is reported by the worse.
        """
        stats = self.report.object(sobject)
        for outcome in outcomes:
            rejected = outcome.status == "rejected"
            for source in outcome.item.sources:
                if rejected:
                    self.outcomes.reject(Reject(
                        source, sobject, outcome.code or "UNKNOWN_ERROR", outcome.message,
                        STAGE_SALESFORCE, crm_id=outcome.crm_id, fields=outcome.fields,
                        values=outcome.item.payload,
                    ))
                key = (sobject, source.drain, source.position)
                entry = self._open[key]
                if rejected:
                    if entry.status != "rejected":
                        entry.status, entry.code = "rejected", outcome.code
                elif entry.status is None or (
                    entry.status != "rejected"
                    and _STATUS_RANK[outcome.status] > _STATUS_RANK[entry.status]
                ):
                    entry.status = outcome.status
                entry.remaining -= 1
                if entry.remaining == 0:
                    del self._open[key]
                    self._count(stats, entry)

    @staticmethod
    def _count(stats: ObjectStats, entry: _Open) -> None:
        if entry.status == "rejected":
            stats.rejected[entry.code or "UNKNOWN_ERROR"] += 1
        elif entry.status == "created":
            stats.created += 1
        elif entry.status == "unchanged":
            stats.unchanged += 1
        else:
            stats.updated += 1

    def _reject(self, stats: ObjectStats, reject: Reject) -> None:
        stats.rejected[reject.code] += 1
        self.outcomes.reject(reject)

    def _progress(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = now
            self.logger.info("Progress: %s", message)

    # -- the end ------------------------------------------------------------------------

    def connection_test(self) -> str:
        """What `meltano config test` should prove: credentials, API access, permissions.

        A token and one `describe` per enabled object of the mapping, with every preflight
        check, and nothing written; the remaining daily requests come from the describe's
        `Sforce-Limit-Info` header.
        """
        objects = [om for om in self.mapping.objects if om.enabled]
        for om in objects:
            if om.sobject not in self._checked:
                self.streams_seen.add(om.stream)
        self._preflight(objects[0].stream if objects else "")
        remaining = self.budget.current(self.client)
        self._sync_counts()
        line = (
            f"Connection test passed: authenticated, {remaining} daily API "
            "requests remaining, preflight passed for "
            + (", ".join(sorted(om.sobject for om in objects)) or "no object")
        )
        self.logger.info("%s", line)
        return line

    def finish(self, fail_on_rejects: float) -> None:
        """Write the reports; fail when more records were rejected than allowed."""
        report = self.report
        allowed = reject_allowance(fail_on_rejects, report.input_records)
        too_many = report.rejected_total > allowed
        if too_many:
            report.error = (
                f"{report.rejected_total} of {report.input_records} input records were "
                f"rejected, more than fail_on_rejects {fail_on_rejects} allows "
                f"({allowed:g}); every outcome is written: see {self.outcomes.rejects_path}"
            )
        self._close("failed" if too_many else "succeeded")
        if too_many:
            raise RejectThresholdError(report.error)

    def fail(self, exc: BaseException) -> None:
        """Record why the run stopped and abort the Bulk jobs; no STATE follows.

        Outcomes known so far are on disk; records whose writes were still out have none,
        and the tap's last emitted STATE lies before them, so the next run sends them again.
        """
        if self._closed:
            return
        self.report.error = one_line(str(exc)) or type(exc).__name__
        try:
            if self._writer is not None:
                self._writer.abort()
        finally:
            self._close("failed")

    def _close(self, status: str) -> None:
        if self._closed:
            return
        self._closed = True
        self.fingerprints.close()
        self.outcomes.open()
        self.outcomes.close()
        self._sync_counts()
        report = self.report
        report.status = status
        report.files = {
            "rejects": str(self.outcomes.rejects_path),
            "unmatched": str(self.outcomes.unmatched_path),
        }
        paths = report.write(self.target.output_dir)
        report.files.update({"report_json": str(paths["json"]),
                             "report_markdown": str(paths["markdown"])})
        self.logger.info("%s", report.log_line())

    def _sync_counts(self) -> None:
        """API calls and the writer's jobs, batches and retries into the report."""
        if self._writer is not None:
            for sobject, counts in self._writer.counts.items():
                stats = self.report.object(sobject)
                stats.bulk_jobs, stats.bulk_batches = counts.jobs, counts.batches
                stats.retried = counts.retried
        if self._client is None:
            return
        self.report.api_calls = Counter(self._client.api_calls)
        self.report.api_usage = self._client.api_usage


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
