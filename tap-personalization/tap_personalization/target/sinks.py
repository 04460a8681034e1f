"""The two sinks: a mapped stream goes record by record to the run, any other stream is counted.

Both are record sinks: each record is decided and written (to a feed file on disk, or queued
as an event) as it arrives, so nothing accumulates in memory. singer-sdk releases STATE only
after a full drain, and the target runs a checkpoint right before it (see `sync`).

The target names these classes; a sink knows of its target only what `SyncTarget` says (the
run all sinks share), so this module does not import the target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import RecordSink
from singer_sdk.sinks.core import JSONSchemaValidator

if TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from tap_personalization.target.sync import SyncRun


class SyncTarget(Protocol):
    """What the sinks use of their target: the one run (writers, index, report) they all feed."""

    run: SyncRun


class RecordingValidator(JSONSchemaValidator):
    """Schema validation that reports instead of stopping the run.

    A record that breaks its stream's schema becomes a reject naming its Id; the sink picks
    the problem up right after validation, which the SDK runs just before `process_record`.
    """

    problem: str | None = None

    def validate(self, record: dict) -> None:
        try:
            super().validate(record)
        except InvalidRecord as exc:
            self.problem = f"it does not match the stream's schema ({exc.error_message})"

    def take_problem(self) -> str | None:
        problem, self.problem = self.problem, None
        return problem


class MappedSink(RecordSink):
    """A stream the mapping names (contacts, leads, accounts, campaign members)."""

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.run = cast(SyncTarget, target).run
        # What singer-sdk's own checks found wrong with the record in hand (it would stop
        # the run); it becomes the record's invalid_record reason.
        self._arrival_problems: list[str] = []

    def get_validator(self) -> JSONSchemaValidator | None:
        if not self.validate_schema:
            return None
        return RecordingValidator(self.schema, validate_formats=self.validate_field_string_format)

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """A date-time that does not parse ('yesterday') is a reject, not the end of the run."""
        try:
            super()._parse_timestamps_in_record(record, schema, treatment)
        except (ValueError, TypeError) as exc:  # TypeError: not text (the schema says why)
            self._arrival_problems.append(" ".join(str(exc).split()))

    def _singer_validate_message(self, record: dict) -> None:
        """A record without its key properties is a reject (singer-sdk would stop the run)."""
        missing = [name for name in self.key_properties if name not in record]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            self._arrival_problems.append(f"it has no {names} (the stream's key_properties)")

    def process_record(self, record: dict, context: dict) -> None:
        validator = self._validator
        problem = validator.take_problem() if isinstance(validator, RecordingValidator) else None
        if self._arrival_problems:
            problem = "; ".join(filter(None, (problem, *self._arrival_problems)))
            self._arrival_problems = []
        self.run.process(self.stream_name, record, problem)

    def hold_invalid(self, record: dict[str, Any], problem: str) -> None:
        """A record the reader found unusable (see `crm_sync_mapping.singer_input`)."""
        self.tally_record_read()
        self.run.process(self.stream_name, record, problem)


class IgnoredSink(RecordSink):
    """A stream the mapping does not name: counted and reported as ignored, never sent."""

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.run = cast(SyncTarget, target).run
        self.run.report.stream(self.stream_name).ignored = True
        self.logger.info(
            "Stream '%s' is not named in mapping_file %s: its records are counted as ignored "
            "and not sent to Personalization.", self.stream_name, self.run.mapping.path)

    def get_validator(self) -> JSONSchemaValidator | None:
        """No validation: the records are not used, so their shape cannot fail the run."""
        return None

    def _singer_validate_message(self, record: dict) -> None:
        """Nor their key properties."""

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: Any) -> None:
        """Nor their dates parsed."""

    def process_record(self, record: dict, context: dict) -> None:
        self.run.ignore(self.stream_name)

    def hold_invalid(self, record: dict[str, Any], problem: str) -> None:
        """An unusable record of an ignored stream is ignored like the others."""
        self.tally_record_read()
        self.run.ignore(self.stream_name)
