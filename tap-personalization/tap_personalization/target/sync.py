"""One run of target-personalization: records in, decisions made, changes delivered, outcomes out.

The direction of data: sink → `changes` (mapping) → `identity` (who is meant) → `writes`
(what each change becomes, per Personalization object) → `feeds` or `events` (delivery) →
`report`. A checkpoint (before every STATE message and at the end)
finishes the events in flight, resolves the campaign members queued since the last one,
seals the feed files and delivers them, and flushes `rejects.jsonl`: a STATE message is only
released once every record before it has its outcome and its file is in the inbound folder.

What goes where per `delivery`:
- `etl_feed`: user, account and segment-delta feed files.
- `event_api`: one event per user change; accounts and segment membership still go as feed
  files (the Event API has no segment operation, and it can only change an account together
  with a user, which it would also link to that account).
In both modes users and accounts are found by the identity check first (see `identity`), so
a CRM person without a Personalization user costs no call and is reported as unmatched.

A dry run (`dry_run`) takes exactly the same path, with the same export reads, up to the
write: feed files are built in scratch space and deleted instead of delivered, and a user
change that would be an event is counted as written without a call. So its counts are the
ones the real run reaches (unless the API refuses an event). The identity index then also
keeps the users' current values of the mapped attributes, for a sample of old → new values.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from crm_sync_mapping import ReverseMapping
from crm_sync_mapping.singer_input import UnreadableLine

from tap_personalization.api import PersonalizationClient
from tap_personalization.errors import PersonalizationError
from tap_personalization.settings import DEFAULT_PAGE_SIZE
from tap_personalization.target.changes import (
    INVALID_RECORD,
    REJECTED,
    SEGMENTS_OBJECT,
    UNREADABLE_LINE,
    AccountChange,
    Decision,
    RecordMapper,
    Refusal,
    Skip,
    UserChange,
    identity_lookups,
    plain,
    record_key,
)
from tap_personalization.target.delivery import Destination, destination_for
from tap_personalization.target.feeds import FeedWriter, SealedFile
from tap_personalization.target.fingerprints import DEFAULT_FINGERPRINT_DB, FingerprintStore
from tap_personalization.target.identity import IdentityIndex, export_rows
from tap_personalization.target.report import (
    PlannedFile,
    RejectsFile,
    RejectThresholdError,
    RunReport,
    reject_allowance,
)
from tap_personalization.target.unchanged import MISSING, UnchangedFilter
from tap_personalization.target.writes import (
    ETL_FEED,
    AccountWrites,
    SegmentWrites,
    UserWrites,
)

DEFAULT_SAMPLE_SIZE = 5


def call_kind(path: str) -> str:
    """The sandbox ledger's names for the calls this target makes."""
    if path.startswith("/api2/authevent/"):
        return "event"
    if "/users.json" in path:
        return "users_export"
    if "/accounts.json" in path:
        return "accounts_export"
    if "/user/" in path:
        return "user_lookup"
    return "other"


class SyncRun:
    """State of one run, shared by every sink of the target (used from the main thread)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        mapping: ReverseMapping,
        identity_attributes: tuple[str, ...],
        *,
        logger: logging.Logger,
    ) -> None:
        self.config = config
        self.mapping = mapping
        self.identity_attributes = identity_attributes
        self.logger = logger
        self.delivery = str(config.get("delivery") or ETL_FEED)
        self.dry_run = bool(config.get("dry_run"))
        sample_size = config.get("dry_run_sample_size")
        self.sample_size = DEFAULT_SAMPLE_SIZE if sample_size is None else int(sample_size)
        self.mapper = RecordMapper(mapping, identity_attributes)
        self.report = RunReport(self.delivery, dry_run=self.dry_run,
                                full_refresh=bool(config.get("full_refresh")))
        self.output_dir = Path(str(config["output_dir"]))
        self.page_size = int(config.get("page_size") or DEFAULT_PAGE_SIZE)
        self.compressed = bool(config.get("gzip"))
        self._count_lock = threading.Lock()
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._client: PersonalizationClient | None = None
        self._index: IdentityIndex | None = None
        self._destination: Destination | None = None
        self.unchanged = UnchangedFilter(
            FingerprintStore(Path(str(config.get("fingerprint_db") or DEFAULT_FINGERPRINT_DB)),
                             readonly=self.dry_run),
            scope=self._scope, outcomes=self._file_outcomes,
            full_refresh=self.report.full_refresh, logger=logger)
        self.report.earlier_files = self.unchanged.settled
        self.users = UserWrites(
            mapping, self.report, self._refuse, users=self._users_index,
            staging_dir=lambda: self.staging_dir, new_client=self.new_client, config=config,
            unchanged=self.unchanged, delivery=self.delivery, dry_run=self.dry_run,
            sample_size=self.sample_size,
            compressed=self.compressed,
        )
        self.accounts = AccountWrites(
            mapping, self.report, self._refuse, accounts=self._accounts_index,
            staging_dir=lambda: self.staging_dir, unchanged=self.unchanged,
            compressed=self.compressed,
        )
        self.segments = SegmentWrites(
            self.report, self._refuse, users=self._users_index, workdir=lambda: self.workdir,
            staging_dir=lambda: self.staging_dir, unchanged=self.unchanged,
            compressed=self.compressed,
        )
        self.rejects: RejectsFile | None = None
        self.finished = False
        for obj in mapping.objects:
            if obj.enabled:
                self.report.object(obj.sobject, obj.target, obj.stream)
        if mapping.segments is not None:
            self.report.object(SEGMENTS_OBJECT, "segment", mapping.segments.stream)

    # --- connections ---------------------------------------------------------------------------

    def _count_call(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        kind = call_kind(response.request.path_url if response.request else "")
        with self._count_lock:
            self.report.api_calls[kind] += 1

    def new_client(self) -> PersonalizationClient:
        """A client whose session counts every HTTP answer (retries included) for the report."""
        session = requests.Session()
        session.hooks["response"].append(self._count_call)
        return PersonalizationClient(self.config, session=session, logger=self.logger)

    @property
    def client(self) -> PersonalizationClient:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    @property
    def destination(self) -> Destination:
        if self._destination is None:
            destination = destination_for(self.config, logger=self.logger)
            if destination is None:  # refused at start-up; kept as a clear message anyway
                msg = "Set feed_dir or sftp_host: this run has feed files to deliver."
                raise PersonalizationError(msg)
            self._destination = destination
        return self._destination

    def _scope(self) -> str:
        """Which dataset fingerprints belong to: the API host and the dataset."""
        return f"{self.client.base_url.rstrip('/').lower()}|{self.client.dataset}"

    def _file_outcomes(self, names: list[str]) -> dict[str, str]:
        """Where earlier runs' feed files went; without a feed destination now, nowhere."""
        if destination_for(self.config, logger=self.logger) is None:
            return dict.fromkeys(names, MISSING)
        return self.destination.outcomes(names)

    def check_connection(self) -> None:
        """One harmless read that proves URL, CA and token before any input is read."""
        found = self.client.check_connection()
        self.logger.info(
            "Connection OK: %s dataset '%s' answered the user export (%d user on page 0); "
            "delivery %s.", self.client.base_url, self.client.dataset, found, self.delivery)
        if self.dry_run:
            self.logger.info(
                "Dry run: mapping and identity check as usual; no feed file is delivered, no "
                "event is sent and no STATE is emitted. The report in %s says what a run "
                "would change.", self.output_dir)

    @property
    def staging_dir(self) -> Path:
        """Where feed files are built: scratch space in a dry run (never delivered)."""
        if self.dry_run:
            folder = self.workdir / "feeds"
            folder.mkdir(exist_ok=True)
            return folder
        return self.destination.staging_dir

    def start(self) -> None:
        """Create the rejects file and a "running" report now: a run that fails early still
        leaves an answer, and a killed one never leaves the previous run's "succeeded"."""
        if self.rejects is None:
            self.rejects = RejectsFile(self.output_dir)
            self.report.write(self.output_dir, final=False)

    # --- identity index ----------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """Scratch space on disk (identity index, queued segment changes), made on first use."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="target-personalization-")
        return Path(self._workdir.name)

    @property
    def index(self) -> IdentityIndex:
        if self._index is None:
            keep: list[str] = []
            if self.dry_run and self.sample_size:
                keep = [attribute.target for obj in self.mapping.objects
                        if obj.enabled and obj.target == "user" for attribute in obj.attributes]
                keep += list(self.identity_attributes)
            self._index = IdentityIndex(
                self.workdir, identity_lookups(self.mapping, self.identity_attributes),
                keep=keep)
        return self._index

    def _users_index(self) -> IdentityIndex:
        index = self.index
        if not index.users_loaded:
            count = index.load_users(export_rows(self.client.export_page, "users", self.page_size))
            self.logger.info("Identity check: indexed %d users from the users export.", count)
        return index

    def _accounts_index(self) -> IdentityIndex:
        index = self.index
        if not index.accounts_loaded:
            count = index.load_accounts(
                export_rows(self.client.export_page, "accounts", self.page_size))
            self.logger.info("Identity check: indexed %d accounts from the accounts export.",
                             count)
        return index

    # --- records -------------------------------------------------------------------------------

    def unreadable(self, line: UnreadableLine) -> None:
        """A line that is not a Singer message: one reject line, counted; the run goes on."""
        self.start()
        self.report.unreadable_lines += 1
        self.logger.warning("Input line %d is unusable: %s", line.number, line.reason)
        assert self.rejects is not None
        self.rejects.write(Refusal("", "", f"line {line.number}", REJECTED, UNREADABLE_LINE,
                                   f"input line {line.number} is {line.reason}: {line.excerpt}"))

    def ignore(self, stream: str) -> None:
        self.start()
        self.report.stream(stream).ignored = True
        self.report.stream(stream).records += 1

    def process(self, stream: str, record: Mapping[str, Any], problem: str | None = None) -> None:
        """Decide and act on one record; `problem` is its schema violation, if any."""
        self.start()
        self.report.stream(stream).records += 1
        record = plain(dict(record))
        decisions: list[Decision]
        if problem is not None:
            decisions = [
                Refusal(stream, sobject, record_key(record), REJECTED, INVALID_RECORD,
                        f"record is unusable: {problem}")
                for sobject in self.mapper.objects_of(stream)
            ]
        else:
            decisions = self.mapper.decide(stream, record)
        for decision in decisions:
            self.report.objects[decision.sobject].received += 1
            self._act(decision)

    def _act(self, decision: Decision) -> None:
        if isinstance(decision, Skip):
            self.report.objects[decision.sobject].skipped[decision.reason] += 1
        elif isinstance(decision, Refusal):
            self._refuse(decision)
        elif isinstance(decision, UserChange):
            self.users.deliver(decision)
        elif isinstance(decision, AccountChange):
            self.accounts.write(decision)
        else:
            self.segments.queue(decision)

    def _refuse(self, refusal: Refusal) -> None:
        self.report.refuse(refusal)
        assert self.rejects is not None
        self.rejects.write(refusal)

    def _feed_writers(self) -> list[FeedWriter]:
        """The feed files of this checkpoint, in delivery order: users, accounts, segments."""
        writers = (self.users.writer, self.accounts.writer, self.segments.writer)
        return [writer for writer in writers if writer is not None]

    # --- checkpoints and the end -------------------------------------------------------------

    def checkpoint(self) -> None:
        """Every record so far gets its outcome and every feed file is delivered."""
        self.start()
        self.users.finish_events()
        self.segments.apply()
        sealed = [file for writer in self._feed_writers() for file in writer.seal()]
        if sealed and self.dry_run:
            self._set_aside(sealed)
        elif sealed:
            names = self.destination.deliver(sealed)
            self.unchanged.delivered(
                zip([str(file.path) for file in sealed], names, strict=True))
            self.report.files.extend(names)
            self.report.sftp_uploads = getattr(self.destination, "uploads", 0)
            self.logger.info("Delivered %d feed file(s) to %s: %s", len(names),
                             self.destination.describe(), ", ".join(names))
        self.unchanged.commit()  # before STATE: what this checkpoint confirmed or delivered
        assert self.rejects is not None
        self.rejects.flush()

    def _set_aside(self, sealed: list[SealedFile]) -> None:
        """A dry run's feed files: counted for the report, then deleted, never delivered."""
        for file in sealed:
            self.report.planned_files.append(PlannedFile(file.feed, file.rows))
            file.path.unlink()
        self.logger.info("Dry run: %d feed file(s) not delivered: %s", len(sealed),
                         ", ".join(f"{file.feed} ({file.rows} rows)" for file in sealed))

    def finish(self, fail_on_rejects: float) -> None:
        """Last checkpoint, the reject threshold, then the report (written once)."""
        self.checkpoint()
        self._close()
        if unbalanced := self.report.unbalanced:
            msg = (f"Outcome counts do not add up for {', '.join(unbalanced)}; the report in "
                   f"{self.output_dir} lists what is known. Please report this defect.")
            raise PersonalizationError(msg)
        rejected = self.report.rejected_total
        allowed = reject_allowance(fail_on_rejects, self.report.input_records
                                   + self.report.unreadable_lines)
        if rejected > allowed:
            msg = (f"{rejected} records were rejected (allowed: {allowed:g} per "
                   f"fail_on_rejects); see {self.output_dir / 'rejects.jsonl'} for each reason.")
            raise RejectThresholdError(msg)
        self.report.status = "succeeded"
        self._write_report()

    def fail(self, exc: BaseException) -> None:
        """The run stops: temporary feed files go, the report says why (never raises)."""
        if self.report.status != "running":
            return
        for writer in self._feed_writers():
            writer.discard()
        self._close()  # closes the fingerprints uncommitted: nothing unconfirmed is kept
        self.report.status = "failed"
        self.report.failure = " ".join(str(exc).split()) or type(exc).__name__
        try:
            self._write_report()
        except OSError as problem:
            self.logger.warning("Could not write the run report to %s: %s", self.output_dir,
                                problem)

    def _write_report(self) -> None:
        files = self.report.write(self.output_dir)
        self.logger.info(self.report.log_line())
        self.logger.info("Run report: %s and %s; rejects: %s", files["json"],
                         files["markdown"], self.output_dir / "rejects.jsonl")

    def _close(self) -> None:
        """Release connections and temporary files; safe to call twice."""
        if self.finished:
            return
        self.finished = True
        if self.users.sender is not None:
            self.users.sender.close()
        if self._client is not None:
            self._client.close()
        if self._index is not None:
            self._index.close()
        self.unchanged.close()
        self.segments.close()
        if self._destination is not None:
            self._destination.close()
        if self.rejects is not None:
            self.rejects.close()
        if self._workdir is not None:
            self._workdir.cleanup()

