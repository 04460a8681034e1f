"""What each decided change becomes in Personalization: a feed row, an event, or an outcome.

The write step of target-personalization's flow (sink → `changes` → `identity` → here →
`feeds`/`events` → `report`), one small class per Personalization object. Every class
counts into the run's report and hands refusals to the run's rejects file; where the files
are built and delivered, and when, is the run's business (`sync.py`).

Before anything is written, a change keeps only the values Personalization was not last
given (`unchanged`): a record whose values all match what was confirmed delivered is
counted as unchanged and costs no feed row and no event. Every value written is handed
back with the file that carries it (or recorded when its event is accepted), so it counts
as delivered only once Personalization confirmed it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from crm_sync_mapping import ReverseMapping

from tap_personalization.api import PersonalizationClient
from tap_personalization.target.changes import (
    API_REJECTED,
    REJECTED,
    SEGMENTS_OBJECT,
    SKIP_NOTHING_TO_WRITE,
    UNKNOWN_IDENTITY,
    UNMATCHED,
    AccountChange,
    Refusal,
    SegmentChange,
    UserChange,
    value_text,
)
from tap_personalization.target.events import EventOutcome, EventSender, UserEvent
from tap_personalization.target.feeds import (
    ACCOUNT_FEED,
    SEGMENT_FEED,
    USER_FEED,
    FeedWriter,
    WrittenRow,
)
from tap_personalization.target.fingerprints import ACCOUNT, SEGMENT, USER
from tap_personalization.target.identity import IdentityIndex
from tap_personalization.target.report import RunReport, Sample
from tap_personalization.target.unchanged import UnchangedFilter

ETL_FEED = "etl_feed"
EVENT_API = "event_api"

Refuse = Callable[[Refusal], None]


def stage_rows(unchanged: UnchangedFilter, kind: str, entity: str, values: Mapping[str, Any],
               rows: list[WrittenRow]) -> None:
    """Hand each written cell's value to the filter, with the file that carries it."""
    for row in rows:
        unchanged.staged(row.part, kind, entity,
                         {name: values[name] for name in row.attributes if name in values})


class UserWrites:
    """User changes: found by the identity check, then a feed row or an event (`delivery`).

    A dry run counts an event as written without a call and keeps a sample of old → new.
    """

    def __init__(
        self, mapping: ReverseMapping, report: RunReport, refuse: Refuse, *,
        users: Callable[[], IdentityIndex], staging_dir: Callable[[], Path],
        new_client: Callable[[], PersonalizationClient], config: Mapping[str, Any],
        unchanged: UnchangedFilter, delivery: str, dry_run: bool, sample_size: int,
        compressed: bool,
    ) -> None:
        self.mapping = mapping
        self.report = report
        self._refuse = refuse
        self._users = users
        self.unchanged = unchanged
        self._staging_dir = staging_dir
        self._new_client = new_client
        self.config = config
        self.delivery = delivery
        self.dry_run = dry_run
        self.sample_size = sample_size
        self.compressed = compressed
        self.writer: FeedWriter | None = None
        self.sender: EventSender | None = None

    def _feed(self) -> FeedWriter:
        if self.writer is None:
            columns: dict[str, None] = {}
            for obj in self.mapping.objects:
                if obj.enabled and obj.target == "user":
                    columns.update((rule.attribute, None) for rule in obj.identity)
            for obj in self.mapping.objects:
                if obj.enabled and obj.target == "user":
                    columns.update((attribute.target, None) for attribute in obj.attributes)
            self.writer = FeedWriter(USER_FEED, ["userId"], list(columns), self._staging_dir(),
                                     compressed=self.compressed)
        return self.writer

    def deliver(self, change: UserChange) -> None:
        """Find the user, then write a feed row or queue an event (per `delivery`)."""
        index = self._users()
        resolution = index.resolve(change.identities, change.normalizers)
        if resolution.user_id is None:
            self._refuse(resolution.refusal(change.stream, change.sobject, change.key,
                                            {"identities": dict(change.identities)}))
            return
        stats = self.report.objects[change.sobject]
        mapped = change.values
        if self.delivery != EVENT_API:
            if any(value is None for value in mapped.values()):
                stats.clears_not_applied += 1
            mapped = {name: value for name, value in mapped.items() if value is not None}
        fresh = self.unchanged.changed(USER, resolution.user_id, mapped)
        values = {**dict(resolution.links), **fresh}
        if mapped and not values:
            stats.unchanged += 1
        elif not values:
            stats.skipped[SKIP_NOTHING_TO_WRITE] += 1
        elif self.delivery == EVENT_API and self.dry_run:
            stats.written += 1
            index.learn(resolution.user_id, resolution.links)
            self._sample(index, change, resolution.user_id, values)
        elif self.delivery == EVENT_API:
            self._send_event(UserEvent(change, resolution.user_id, values, resolution.links))
        else:
            self._write_row(index, change, resolution.user_id, values, resolution.links)

    def _write_row(self, index: IdentityIndex, change: UserChange, user_id: str,
                   values: dict[str, Any], links: tuple[tuple[str, str], ...]) -> None:
        stats = self.report.objects[change.sobject]
        rows = self._feed().write([user_id], values)
        if not rows:
            stats.skipped[SKIP_NOTHING_TO_WRITE] += 1
            return
        stats.written += 1
        stage_rows(self.unchanged, USER, user_id, change.values, rows)
        index.learn(user_id, links)
        self._sample(index, change, user_id, values)

    def _sample(self, index: IdentityIndex, change: UserChange, user_id: str,
                values: dict[str, Any]) -> None:
        """Old → new values of the first few users a dry run would write."""
        if not self.dry_run or len(self.report.samples) >= self.sample_size:
            return
        current = index.current_values(user_id)
        changes: dict[str, tuple[Any, Any]] = {}
        for name, new in values.items():
            old = current.get(name)
            if new is None and self.delivery != EVENT_API:
                continue  # feeds cannot clear: the value stays (counted as not applied)
            if old is None and new is None:
                continue
            if old is None or new is None or str(old) != value_text(new):
                changes[name] = (old, new)
        self.report.samples.append(Sample(change.sobject, change.key, user_id, changes,
                                          len(values) - len(changes)))

    def _send_event(self, event: UserEvent) -> None:
        if self.sender is None:
            concurrency = int(self.config.get("event_concurrency") or 4)
            self.sender = EventSender(
                self._new_client, concurrency=concurrency,
                action=str(self.config.get("event_action") or "CRM Sync"))
        for outcome in self.sender.submit(event):
            self._event_outcome(outcome)

    def finish_events(self) -> None:
        """Wait for the events in flight (a checkpoint) and count their answers."""
        if self.sender is not None:
            for outcome in self.sender.finish():
                self._event_outcome(outcome)

    def _event_outcome(self, outcome: EventOutcome) -> None:
        event = outcome.event
        change = event.change
        if outcome.rejection is not None:
            self._refuse(Refusal(
                change.stream, change.sobject, change.key, REJECTED, API_REJECTED,
                str(outcome.rejection),
                {"errorCode": outcome.rejection.code, "userId": event.user_id}))
            return
        self.report.objects[change.sobject].written += 1
        self.unchanged.confirmed(USER, event.user_id, {
            name: value for name, value in event.attributes.items() if name in change.values})
        self._users().learn(event.user_id, event.links)  # loaded by `deliver` already


class AccountWrites:
    """Account changes: a feed row for an account the accounts export knows."""

    def __init__(
        self, mapping: ReverseMapping, report: RunReport, refuse: Refuse, *,
        accounts: Callable[[], IdentityIndex], staging_dir: Callable[[], Path],
        unchanged: UnchangedFilter, compressed: bool,
    ) -> None:
        self.mapping = mapping
        self.report = report
        self._refuse = refuse
        self._accounts = accounts
        self.unchanged = unchanged
        self._staging_dir = staging_dir
        self.compressed = compressed
        self.writer: FeedWriter | None = None

    def _feed(self) -> FeedWriter:
        if self.writer is None:
            columns: dict[str, None] = {}
            for obj in self.mapping.objects:
                if obj.enabled and obj.target == "account":
                    columns.update((attribute.target, None) for attribute in obj.attributes)
            self.writer = FeedWriter(ACCOUNT_FEED, ["accountId"], list(columns),
                                     self._staging_dir(), compressed=self.compressed)
        return self.writer

    def write(self, change: AccountChange) -> None:
        if not self._accounts().account_exists(change.account_id):
            self._refuse(Refusal(change.stream, change.sobject, change.key, UNMATCHED,
                                 UNKNOWN_IDENTITY,
                                 f"no Personalization account has accountId "
                                 f"{change.account_id!r}"))
            return
        stats = self.report.objects[change.sobject]
        if any(value is None for value in change.values.values()):
            stats.clears_not_applied += 1
        applicable = {name: value for name, value in change.values.items() if value is not None}
        fresh = self.unchanged.changed(ACCOUNT, change.account_id, applicable)
        if not applicable:
            stats.skipped[SKIP_NOTHING_TO_WRITE] += 1
        elif not fresh:
            stats.unchanged += 1
        else:
            rows = self._feed().write([change.account_id], fresh)
            stats.written += 1
            stage_rows(self.unchanged, ACCOUNT, change.account_id, fresh, rows)


class SegmentWrites:
    """Segment membership changes, queued on disk and written as one delta feed per checkpoint.

    Kept until the checkpoint: by then this checkpoint's user changes (and the links they
    add) are known, whatever order the streams came in.
    """

    def __init__(
        self, report: RunReport, refuse: Refuse, *, users: Callable[[], IdentityIndex],
        workdir: Callable[[], Path], staging_dir: Callable[[], Path],
        unchanged: UnchangedFilter, compressed: bool,
    ) -> None:
        self.report = report
        self._refuse = refuse
        self._users = users
        self.unchanged = unchanged
        self._workdir = workdir
        self._staging_dir = staging_dir
        self.compressed = compressed
        self.writer: FeedWriter | None = None
        self._queue: IO[str] | None = None
        self._queued = 0

    def queue(self, change: SegmentChange) -> None:
        if self._queue is None:
            path = self._workdir() / "segment-changes.jsonl"
            self._queue = path.open("w+", encoding="utf-8")
        line = [change.stream, change.key, change.segment_id, change.update,
                [list(pair) for pair in change.identities]]
        self._queue.write(json.dumps(line) + "\n")
        self._queued += 1

    def apply(self) -> None:
        """Resolve every queued change and write it to the segment feed."""
        if self._queue is None or not self._queued:
            return
        queue = self._queue
        queue.flush()
        queue.seek(0)
        index = self._users()
        stats = self.report.objects[SEGMENTS_OBJECT]
        if self.writer is None:
            self.writer = FeedWriter(SEGMENT_FEED, ["userId", "segmentId", "updateType"], [],
                                     self._staging_dir(), compressed=self.compressed)
        for line in queue:
            stream, key, segment_id, update, pairs = json.loads(line)
            identities = tuple((str(a), str(v)) for a, v in pairs)
            resolution = index.resolve(identities)
            if resolution.user_id is None:
                self._refuse(resolution.refusal(
                    stream, SEGMENTS_OBJECT, key,
                    {"identities": dict(identities), "segment": segment_id}))
                continue
            membership = {segment_id: update}
            if not self.unchanged.changed(SEGMENT, resolution.user_id, membership):
                stats.unchanged += 1
                continue
            for row in self.writer.write([resolution.user_id, segment_id, update], {}):
                self.unchanged.staged(row.part, SEGMENT, resolution.user_id, membership)
            if update == "Add":
                stats.segment_adds += 1
            else:
                stats.segment_removes += 1
        queue.seek(0)
        queue.truncate()
        self._queued = 0

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
