"""The sink classes: how a drained batch of a stream's records reaches the run.

As in singer-sdk's template, the target names its sink classes and a sink knows its target
only as the object singer-sdk passes in; all it needs of it is the run (`run.py`), which
decides and writes every drain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from singer_sdk import Target
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import JSONSchemaValidator

from target_salesforce_crm.errors import one_line
from target_salesforce_crm.target.validation import (
    Pending,
    RecordingValidator,
    missing_keys,
    plain_record,
    read_properties,
)

if TYPE_CHECKING:
    from target_salesforce_crm.target.run import SyncRun

# Records per drain. Drains no longer decide batch sizes (the writer sends full batches
# across drains), so this only bounds the records held at once; a multiple of the 1,000-
# candidate look-up keeps look-ups full.
DEFAULT_BATCH_SIZE_ROWS = 10_000
# The stream `meltano config test` sends to a loader. It is not written anywhere; its
# presence makes the run test the connection and the preflight instead.
CONNECTION_TEST_STREAM = "meltano_test_stream"


class RunningTarget(Protocol):
    """What a sink needs of its target: the run its drains go to."""

    run: SyncRun


class IgnoredSink(BatchSink):
    """A stream the mapping does not name: counted and reported, never sent anywhere."""

    MAX_SIZE_DEFAULT = DEFAULT_BATCH_SIZE_ROWS

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.run = cast(RunningTarget, target).run
        self.run.report.stream(self.stream_name).ignored = True
        self.logger.info("Stream '%s' is not in the mapping: its records are ignored",
                         self.stream_name)

    def get_validator(self) -> None:
        """Records that go nowhere are not validated: a bad one must not stop the run."""
        return None

    def _singer_validate_message(self, record: dict) -> None:
        """Nor are their key properties checked."""

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """Nor their dates parsed."""

    def process_record(self, record: dict, context: dict) -> None:
        self.run.report.stream(self.stream_name).records += 1

    def hold_invalid(self, record: dict[str, Any], problem: str) -> None:
        """An unusable record of an ignored stream is ignored like the others."""
        self.tally_record_read()
        self.run.report.stream(self.stream_name).records += 1

    def process_batch(self, context: dict) -> None:
        """Nothing to send."""


class MappedSink(BatchSink):
    """A stream the mapping sends to one or more CRM objects."""

    MAX_SIZE_DEFAULT = DEFAULT_BATCH_SIZE_ROWS

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.run = cast(RunningTarget, target).run
        # What singer-sdk's own checks found wrong with the record in hand (it would stop
        # the run); it becomes the record's INVALID_RECORD reason.
        self._arrival_problems: list[str] = []
        self.run.report.stream(self.stream_name)
        self.run.streams_seen.add(self.stream_name)
        self.run.schemas[self.stream_name] = self.schema
        self.read = read_properties(self.run.mapping.for_stream(self.stream_name))

    def get_validator(self) -> JSONSchemaValidator | None:
        if not self.validate_schema:
            return None
        return RecordingValidator(self.schema, validate_formats=self.validate_field_string_format)

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """A date-time that does not parse ('yesterday') is a reject, not the end of the run."""
        try:
            super()._parse_timestamps_in_record(record, schema, treatment)
        except (ValueError, TypeError) as exc:  # TypeError: not text (the schema says why)
            self._arrival_problems.append(one_line(str(exc)))

    def _singer_validate_message(self, record: dict) -> None:
        """A record without its key properties is a reject, not the end of the run."""
        missing = missing_keys(record, self.key_properties)
        if missing is not None:
            self._arrival_problems.append(missing)

    def process_record(self, record: dict, context: dict) -> None:
        validator = self._validator
        problem = validator.take_problem() if isinstance(validator, RecordingValidator) else None
        if self._arrival_problems:
            problem = "; ".join(filter(None, (problem, *self._arrival_problems)))
            self._arrival_problems = []
        self._hold(record, context, problem)

    def hold_invalid(self, record: dict[str, Any], problem: str) -> None:
        """A record the reader found unusable (see `crm_sync_mapping.singer_input`)."""
        self.tally_record_read()
        self._hold(record, self._get_context(record), problem)

    def _hold(self, record: dict[str, Any], context: dict, problem: str | None) -> None:
        pending: list[Pending] = context.setdefault("records", [])
        kept = {name: value for name, value in record.items() if name in self.read}
        pending.append(Pending(len(pending), plain_record(kept), problem))
        self.run.report.stream(self.stream_name).records += 1

    def process_batch(self, context: dict) -> None:
        records: list[Pending] = context.get("records", [])
        if not records:
            return
        try:
            self.run.drain(self.stream_name, records)
        except BaseException as exc:
            self.run.fail(exc)
            raise
