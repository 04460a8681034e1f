"""The tap's streams: users, accounts, segment_members (API exports) and segments (settings).

Incremental behaviour. The export API has no modified-since filter (`start`/`end` only set the
engagement-statistics window), and a segment or attribute change need not move
`lastActivity`. So every run is a full export (FULL_TABLE), streamed page by page, and STATE
records the last *complete* run of each stream (and of each segment partition):
`{"last_complete_run": "<UTC start of that run>", "record_count": n}`. The downstream
targets detect changes themselves. Optionally (`filter_by_last_activity`), users and
accounts whose `lastActivity` is older than that last complete run minus `lookback_days`
(or than `start_date` on a first run) are left out; they are counted and logged, and rows
without a `lastActivity` are always kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
from singer_sdk.streams import Stream

from tap_personalization.errors import PersonalizationRequestError
from tap_personalization.tap.client import PersonalizationStream
from tap_personalization.tap.schemas import (
    ACCOUNT_FIELDS,
    ACCOUNTS_SCHEMA,
    SEGMENT_MEMBERS_SCHEMA,
    SEGMENTS_SCHEMA,
    USER_FIELDS,
    USERS_SCHEMA,
    Converter,
    membership_record,
    normalize_row,
)

LAST_COMPLETE_RUN = "last_complete_run"
RECORD_COUNT = "record_count"
DEFAULT_LOOKBACK_DAYS = 2
#: Rows without id logged one by one (with their page) before only the total is.
LOGGED_ROWS_WITHOUT_ID = 5


def parse_moment(value: str) -> datetime:
    """An ISO 8601 setting or state value as an aware UTC datetime (naive means UTC)."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def epoch_ms(value: str) -> int:
    """An ISO 8601 moment as the epoch milliseconds the export API's `start` expects."""
    return int(parse_moment(value).timestamp() * 1000)


def configured_segments(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """The segments to share, as `{id, name}`; a missing name falls back to the id."""
    return [
        {"id": str(s["id"]).strip(), "name": str(s.get("name") or s["id"]).strip()}
        for s in config.get("segments") or []
    ]


class _CompleteRunStream(PersonalizationStream):
    """An export stream whose STATE records its last complete run (see the module docstring)."""

    #: How export rows map to record fields.
    fields: ClassVar[dict[str, Converter]] = USER_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._issues: Counter[str] = Counter()
        self._without_id = 0

    def normalized_rows(
        self, rows: list[dict[str, Any]], response: requests.Response
    ) -> Iterator[dict[str, Any]]:
        """One page's rows as records; rows without an id cannot be keyed downstream and are
        reported (a page of such rows still does not end the export: only an empty one does).
        """
        for row in rows:
            record = normalize_row(row, self.fields, self._issues)
            if record["id"] is None:
                self._without_id += 1
                if self._without_id > LOGGED_ROWS_WITHOUT_ID:
                    continue  # counted; the total is logged at the end
                self.logger.warning(
                    "%s: row without id on %s left out (keys: %s)",
                    self.name,
                    response.request.path_url,
                    ", ".join(sorted(row)),
                )
                continue
            yield record

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        started = datetime.now(UTC)
        state = self.get_context_state(context)
        exported = 0
        for record in self.request_records(context):
            exported += 1
            if self.keep(record):
                yield record
        # Reached only when the export ran to its empty page: an aborted run leaves the
        # previous value, so the next run's lookback still covers the gap.
        state[LAST_COMPLETE_RUN] = started.isoformat(timespec="milliseconds")
        state[RECORD_COUNT] = exported
        self.report(context, exported)

    def keep(self, record: Mapping[str, Any]) -> bool:
        """Whether to emit a record; every exported record by default."""
        return True

    def report(self, context: Mapping[str, Any] | None, exported: int) -> None:
        """Log what was exported and anything set aside, once per stream or partition."""
        where = f" {dict(context)}" if context else ""
        self.logger.info("%s%s: %d rows exported", self.name, where, exported)
        if self._issues:
            moved = ", ".join(f"{key} x{count}" for key, count in sorted(self._issues.items()))
            self.logger.warning(
                "%s: values that did not fit their type were kept under extra: %s",
                self.name,
                moved,
            )
            self._issues.clear()
        if self._without_id:
            self.logger.warning("%s: %d rows without id were left out", self.name, self._without_id)
            self._without_id = 0


class _EntityExportStream(_CompleteRunStream):
    """`users` or `accounts`: one record per exported row, optional activity filter."""

    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inactive = 0
        self._floor: datetime | None = None

    def get_url_params(
        self,
        context: Mapping[str, Any] | None,
        next_page_token: int | None,
    ) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        if start_date := self.config.get("start_date"):
            params["start"] = epoch_ms(start_date)
        return params

    def parse_rows(
        self, rows: list[dict[str, Any]], response: requests.Response
    ) -> Iterable[dict[str, Any]]:
        return self.normalized_rows(rows, response)

    def activity_floor(self, state: Mapping[str, Any]) -> datetime | None:
        """Oldest `lastActivity` to emit, or None to emit everything."""
        if not self.config.get("filter_by_last_activity"):
            return None
        if last_run := state.get(LAST_COMPLETE_RUN):
            lookback = self.config.get("lookback_days")
            days = DEFAULT_LOOKBACK_DAYS if lookback is None else int(lookback)
            return parse_moment(last_run) - timedelta(days=days)
        start_date = self.config.get("start_date")
        return parse_moment(start_date) if start_date else None

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        self._floor = self.activity_floor(self.get_context_state(context))
        if self._floor is not None:
            self.logger.info(
                "%s: leaving out rows whose lastActivity is before %s (filter_by_last_activity)",
                self.name,
                self._floor.isoformat(),
            )
        yield from super().get_records(context)

    def keep(self, record: Mapping[str, Any]) -> bool:
        last = record.get("lastActivity")
        if self._floor is None or last is None or parse_moment(last) >= self._floor:
            return True
        self._inactive += 1
        return False

    def report(self, context: Mapping[str, Any] | None, exported: int) -> None:
        super().report(context, exported)
        if self._inactive:
            self.logger.info(
                "%s: %d rows left out as inactive since %s (filter_by_last_activity)",
                self.name,
                self._inactive,
                self._floor.isoformat() if self._floor else "-",
            )
            self._inactive = 0


class UsersStream(_EntityExportStream):
    """Every user of the dataset (`users.json`)."""

    name = "users"
    export = "users"
    fields: ClassVar[dict[str, Converter]] = USER_FIELDS
    schema: ClassVar[dict[str, Any]] = USERS_SCHEMA

    def get_url_params(
        self,
        context: Mapping[str, Any] | None,
        next_page_token: int | None,
    ) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        if self.config.get("include_geo"):
            params["includeGeo"] = "true"
        return params


class AccountsStream(_EntityExportStream):
    """Every account of the dataset (`accounts.json`)."""

    name = "accounts"
    export = "accounts"
    fields: ClassVar[dict[str, Converter]] = ACCOUNT_FIELDS
    schema: ClassVar[dict[str, Any]] = ACCOUNTS_SCHEMA


class SegmentMembersStream(_CompleteRunStream):
    """One record per (segment, user), from the user export filtered by each shared segment.

    Partitioned by the configured segments, so STATE keeps a last complete run and a member
    count per segment (the `segments` stream reports those counts).
    """

    name = "segment_members"
    export = "users"
    primary_keys: ClassVar[list[str]] = ["segment_id", "user_id"]
    replication_key = None
    schema: ClassVar[dict[str, Any]] = SEGMENT_MEMBERS_SCHEMA

    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        return [{"segment_id": s["id"]} for s in configured_segments(self.config)]

    def get_url_params(
        self,
        context: Mapping[str, Any] | None,
        next_page_token: int | None,
    ) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        params["filter"] = (context or {})["segment_id"]
        return params

    def validate_response(self, response: requests.Response) -> None:
        try:
            super().validate_response(response)
        except PersonalizationRequestError as exc:
            # The API answers 400 for a filter that names no segment: point at the setting.
            msg = (
                f"{exc} Check setting segments: is '{self._segment['id']}' a segment id of "
                f"dataset '{self.dataset}'?"
            )
            raise PersonalizationRequestError(msg) from exc

    def parse_rows(
        self, rows: list[dict[str, Any]], response: requests.Response
    ) -> Iterable[dict[str, Any]]:
        segment_id = self._segment["id"]
        for user in self.normalized_rows(rows, response):
            yield membership_record(user, segment_id, self._segment["name"])

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        segment_id = (context or {}).get("segment_id")
        if not segment_id:
            self.logger.info("segment_members: no segments configured (setting segments)")
            return
        names = {s["id"]: s["name"] for s in configured_segments(self.config)}
        self._segment = {"id": segment_id, "name": names.get(segment_id, segment_id)}
        yield from super().get_records(context)


class SegmentsStream(Stream):
    """The shared segments from settings, with member counts from the last segment_members sync.

    No API call: Personalization has no segment list endpoint. `segment_members` syncs first
    (streams run in name order), so a run that selects both reports this run's counts; a run
    without it reports the counts kept in STATE, or null when there are none.
    """

    name = "segments"
    primary_keys: ClassVar[list[str]] = ["id"]
    replication_key = None
    schema: ClassVar[dict[str, Any]] = SEGMENTS_SCHEMA

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        member_state = self.tap_state.get("bookmarks", {}).get(SegmentMembersStream.name, {})
        by_segment = {
            p.get("context", {}).get("segment_id"): p for p in member_state.get("partitions", [])
        }
        for segment in configured_segments(self.config):
            counted = by_segment.get(segment["id"], {})
            yield {
                "id": segment["id"],
                "name": segment["name"],
                "member_count": counted.get(RECORD_COUNT),
                "members_synced_at": counted.get(LAST_COMPLETE_RUN),
            }
