"""One run of target-salesforce-crm: the drains of every stream, in the flow's order.

validate (`validation.py`) → match (`matching.py`) → map and diff (`verdicts.py`,
`changes.py`) → write (`writer.py`) → settle and account (`ledger.py`) → report
(`report.py`, `outcomes.py`). A drain decides what it can on its own (invalid, unmatched,
ambiguous, refused before sending, unchanged) and hands the writes to the run's Bulk
writer, which sends only full batches and does not wait for them; their outcomes are folded
in as batches finish. A STATE message is a checkpoint: `SyncRun.settle` runs before
singer-sdk writes one, sends what waits and folds every answer, so every record before it
has its outcome (updated, created, unchanged, unmatched or rejected, each line in the
outcome files flushed).

The run knows no target: it gets the mapping, its settings and two factories (the
Salesforce client, the Bulk client for it), so a test can build one on its own.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_sync_mapping.singer_input import UnreadableLine

from target_salesforce_crm.errors import one_line
from target_salesforce_crm.target.batching import parent_field
from target_salesforce_crm.target.changes import ChangeCheck
from target_salesforce_crm.target.fingerprints import FingerprintStore
from target_salesforce_crm.target.journal import BulkJournal
from target_salesforce_crm.target.ledger import OutcomeLedger
from target_salesforce_crm.target.matching import ObjectMatcher
from target_salesforce_crm.target.outcomes import (
    STAGE_INPUT,
    UNREADABLE_LINE,
    OutcomeFiles,
    Reject,
    SourceRef,
)
from target_salesforce_crm.target.preflight import (
    ApiBudget,
    ValueChecker,
    check_objects,
    estimate_calls,
)
from target_salesforce_crm.target.recovery import recover
from target_salesforce_crm.target.report import RejectThresholdError, RunReport, reject_allowance
from target_salesforce_crm.target.validation import Pending, schema_valid
from target_salesforce_crm.target.verdicts import ObjectWrites, Verdicts
from target_salesforce_crm.target.writer import BulkWriter, DryRunWriter, WriteItem, WriteOutcome

PROGRESS_SECONDS = 15.0


@dataclass(frozen=True)
class RunSettings:
    """The target settings a run reads (their meaning is in `target.py`'s schema)."""

    output_dir: Path
    fingerprint_db: Path
    lookup_batch_size: int
    bulk_batch_size: int
    max_api_share: float
    max_record_retries: int
    retry_backoff: float
    poll_max: float
    dry_run: bool
    full_refresh: bool
    bulk_api: str = "1.0"
    concurrency_mode: str = "Parallel"
    group_by_parent: bool = True


class SyncRun:
    """What lives for one run: client, preflight results, matchers, ledger, report."""

    def __init__(
        self, mapping: Any, settings: RunSettings, *, logger: logging.Logger,
        connect: Callable[[], Any], bulk_for: Callable[[Any], Any],
    ) -> None:
        self.mapping = mapping
        self.settings = settings
        self.logger = logger
        self._connect = connect
        self._bulk_for = bulk_for
        self.report = RunReport()
        self.outcomes = OutcomeFiles(settings.output_dir)
        self.ledger = OutcomeLedger(self.report, self.outcomes)
        self.streams_seen: set[str] = set()
        # The tap's SCHEMA of each mapped stream, for the preflight's source type check.
        self.schemas: dict[str, dict[str, Any]] = {}
        self.budget = ApiBudget(settings.max_api_share, self.logger)
        self.dry_run = settings.dry_run
        self.report.dry_run = self.dry_run
        self.report.bulk_api = settings.bulk_api
        self.fingerprints = FingerprintStore(settings.fingerprint_db, readonly=self.dry_run)
        self.changes = ChangeCheck(
            self.fingerprints, org=self._org, is_pending=self._is_pending,
            full_refresh=settings.full_refresh, dry_run=self.dry_run,
        )
        self._checkers: dict[str, ValueChecker] = {}
        self._parents: dict[str, str] = {}
        self.verdicts = Verdicts(self.ledger, self.changes, self._checkers, self._parents)
        self._client: Any = None
        self._writer: BulkWriter | DryRunWriter | None = None
        self._checked: set[str] = set()
        self._matchers: dict[str, ObjectMatcher] = {}
        self._last_progress = 0.0
        self._closed = False
        self._drain = 0
        self._journal: BulkJournal | None = None
        self._recovered = False

    # -- connections (lazy: a run of ignored streams needs none) -----------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    @property
    def writer(self) -> BulkWriter | DryRunWriter:
        if self._writer is None and self.dry_run:
            self._writer = DryRunWriter(on_outcomes=self._on_outcomes)
        if self._writer is None:
            self._writer = BulkWriter(
                self._bulk_for(self.client),
                on_outcomes=self._on_outcomes,
                batch_size=self.settings.bulk_batch_size,
                max_record_retries=self.settings.max_record_retries,
                retry_backoff=self.settings.retry_backoff,
                check_every=self.settings.poll_max,
                concurrency_mode="Serial" if self.settings.concurrency_mode == "Serial"
                else "Parallel",
                group_by_parent=self.settings.group_by_parent,
                logger=self.logger,
                journal=self.journal,
            )
        return self._writer

    @property
    def journal(self) -> BulkJournal | None:
        """The Bulk journal in the fingerprint file; none in a dry run (nothing is sent) and
        with Bulk 2.0, whose results a later run could not match to the records sent."""
        if self._journal is None and not self.dry_run and self.settings.bulk_api == "1.0":
            self._journal = BulkJournal(self.settings.fingerprint_db, self._org)
        return self._journal

    def _recover(self) -> None:
        """Once, before the first write: settle what an ended run left (see recovery.py)."""
        if self._recovered or self.journal is None:
            return
        self._recovered = True
        journal = self.journal
        runs = journal.ended_runs()
        if not runs:
            return
        writer = self.writer
        assert isinstance(writer, BulkWriter)
        recover(runs, journal, writer.bulk, self.client, self.mapping, self.changes,
                self.report, self.logger)

    def _org(self) -> str:
        """Which org fingerprints belong to: a refreshed sandbox shares production's Ids."""
        return str(self.client.session().instance_url).rstrip("/").lower()

    def _is_pending(self, sobject: str, crm_id: str) -> bool:
        return self.writer.is_pending(sobject, "update", crm_id)

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
        check_objects(describes, objects, self.schemas)
        for om in objects:
            self._checked.add(om.sobject)
            # The locking parent (Contact: AccountId) is read along, to group batches by it.
            parent = parent_field(om.sobject, describes[om.sobject])
            if parent is not None:
                self._parents[om.sobject] = parent
            self._matchers[om.sobject] = ObjectMatcher(
                self.client, om, describes[om.sobject],
                lookup_batch_size=self.settings.lookup_batch_size,
                read_fields=[*self.changes.read_fields(om), *([parent] if parent else [])],
                logger=self.logger,
            )
            self._checkers[om.sobject] = ValueChecker(om.sobject, describes[om.sobject])
        self.logger.info("Preflight passed for %s", ", ".join(sorted(describes)))

    # -- the run's edges -----------------------------------------------------------------

    def start(self) -> None:
        """Empty this run's outcome files and mark its report running before any input.

        Until the run ends, `report.json` says so: a killed run never leaves the previous
        run's "succeeded" next to its own partial files.
        """
        self.outcomes.open()
        self.report.files = self._files()
        self.report.write(self.settings.output_dir, final=False)

    def unreadable(self, line: UnreadableLine) -> None:
        """A line that is not a Singer message: one reject line, counted, and the run goes on."""
        self.report.unreadable_lines += 1
        self.logger.warning("Input line %d is unusable: %s", line.number, line.reason)
        self.outcomes.reject(Reject(
            SourceRef(None, f"line {line.number}"), None, UNREADABLE_LINE,
            f"input line {line.number} is {line.reason}: {line.excerpt}", STAGE_INPUT,
        ))

    # -- one drain -----------------------------------------------------------------------

    def drain(self, stream: str, records: Sequence[Pending]) -> None:
        """Decide or hand on every record of the drain, or raise (then no STATE follows)."""
        self.outcomes.open()
        self._drain += 1
        objects = self.mapping.for_stream(stream)
        try:
            self._preflight(stream)
            self._recover()
            self.budget.check(self.client, estimate_calls(
                len(records), len(objects),
                self.settings.lookup_batch_size, self.settings.bulk_batch_size,
                bulk_api=self.settings.bulk_api,
            ))
            if self._writer is not None:
                self._writer.collect()
            valid = schema_valid(stream, objects, records, self._drain, self.ledger)
            unmatched: dict[str, set[int]] = {}
            for position, om in enumerate(objects):
                handed_on = any(
                    later.only_unmatched_by == om.sobject for later in objects[position + 1:]
                )
                self._object(stream, om, valid, unmatched, handed_on=handed_on)
        finally:
            self.outcomes.flush()
            self._sync_counts()
        self.logger.info("Drained %d records of '%s'", len(records), stream)

    def settle(self, *, close: bool = False) -> None:
        """Every record received so far gets its outcome: what a STATE message promises.

        Sends what waits for a full batch, waits for every answer (retries included) and
        flushes the outcome files; `close` (the end of the run) also closes the Bulk jobs.
        """
        if close:
            self._recover()  # a run without records still ends what an ended run left
        if self._writer is not None:
            if close:
                self._writer.close()
            else:
                self._writer.settle()
        try:
            self.ledger.check_settled()
        finally:
            self.outcomes.flush()
            self._sync_counts()

    def _object(
        self, stream: str, om: Any, records: Sequence[Pending],
        unmatched: dict[str, set[int]], *, handed_on: bool,
    ) -> None:
        """One CRM object's step of a drain; `unmatched` routes records on (Contact → Lead)."""
        stats = self.report.object(om.sobject)
        chain = om.only_unmatched_by
        if chain and chain in unmatched:
            records = [p for p in records if p.position in unmatched[chain]]
        stats.candidates += len(records)
        candidates = self.verdicts.candidates(stats, stream, om, records, self._drain)
        matcher = self._matchers[om.sobject]
        calls_before = matcher.lookup_calls
        writes = ObjectWrites()
        tried = self._tried(om)
        for number, result in enumerate(matcher.match(candidates), start=1):
            self.verdicts.decide(stats, om, result, writes, tried, handed_on=handed_on)
            self._progress(f"{stream} → {om.sobject}: looked up {number}/{len(candidates)}")
        stats.lookup_calls += matcher.lookup_calls - calls_before
        unmatched[om.sobject] = writes.unmatched
        if writes.updates:
            changed, unchanged = self.changes.split(om, writes.updates)
            self.changes.sample(stats, changed)
            self._write(om, "update", changed, unchanged)
        if writes.creates:
            self._write(om, "upsert", writes.creates, [])
        self.changes.forget_current()
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

    def _write(
        self, om: Any, operation: str, items: list[WriteItem], unchanged: list[WriteItem],
    ) -> None:
        """Hand the writes on; each input record's outcome is settled as they come back."""
        self.ledger.expect(om.sobject, [*items, *unchanged])
        if unchanged:
            self.ledger.fold(om.sobject, [
                WriteOutcome(item, "unchanged", item.crm_id) for item in unchanged
            ])
        if items:
            self.writer.submit(
                om.sobject, "update" if operation == "update" else "upsert", items,
                external_id_field=om.write.external_id if operation == "upsert" else None,
            )

    def _on_outcomes(self, sobject: str, outcomes: list[WriteOutcome]) -> None:
        """A batch's answers: fingerprint what was written, then fold."""
        self.changes.remember(self.mapping.object(sobject), outcomes)
        self.ledger.fold(sobject, outcomes)

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
        judged = report.input_records + report.unreadable_lines
        allowed = reject_allowance(fail_on_rejects, judged)
        too_many = report.rejected_total > allowed
        if too_many:
            report.error = (
                f"{report.rejected_total} of {judged} input records were "
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
        if self._journal is not None:
            if status == "failed":
                self._journal.close()  # what is open stays for the next run
            else:
                self._journal.end()
        self.fingerprints.close()
        self.outcomes.open()
        self.outcomes.close()
        self._sync_counts()
        report = self.report
        report.status = status
        report.files = self._files()
        paths = report.write(self.settings.output_dir)
        report.files.update({"report_json": str(paths["json"]),
                             "report_markdown": str(paths["markdown"])})
        self.logger.info("%s", report.log_line())

    def _files(self) -> dict[str, str]:
        return {"rejects": str(self.outcomes.rejects_path),
                "unmatched": str(self.outcomes.unmatched_path)}

    def _sync_counts(self) -> None:
        """API calls and the writer's jobs, batches and retries into the report."""
        if self._writer is not None:
            for sobject, counts in self._writer.counts.items():
                stats = self.report.object(sobject)
                stats.bulk_jobs, stats.bulk_batches = counts.jobs, counts.batches
                stats.retried = counts.retried
                stats.lock_retried = counts.lock_retried
        if self._client is None:
            return
        self.report.api_calls = Counter(self._client.api_calls)
        self.report.api_usage = self._client.api_usage
