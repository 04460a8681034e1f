"""`target-salesforce-crm`: Personalization insights onto Contacts, Leads and Accounts.

Streams named by the forward mapping are matched against the CRM (look-up validation) and
written with the Bulk API; other streams are counted and reported as ignored, so any tap
whose streams the mapping names can feed it. Settings are declared here once, merged with
the connection settings the tap shares.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import click
from crm_sync_mapping import MappingError, load_forward_mapping
from crm_sync_mapping.singer_batch import BatchFileError, batch_record_messages
from crm_sync_mapping.singer_input import TolerantReader, TolerantTarget
from singer_sdk import typing as th
from singer_sdk.exceptions import InvalidInputLine, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.target_base import Target

from target_salesforce_crm.auth import check_credential_urls
from target_salesforce_crm.errors import SalesforceError, one_line
from target_salesforce_crm.mapping_init import COMMAND as MAPPING_COMMAND
from target_salesforce_crm.settings import CONNECTION_SETTINGS
from target_salesforce_crm.target.fingerprints import DEFAULT_FINGERPRINT_DB, FingerprintStoreError
from target_salesforce_crm.target.journal import JournalError
from target_salesforce_crm.target.preflight import ApiBudgetError, PreflightError
from target_salesforce_crm.target.report import RejectThresholdError
from target_salesforce_crm.target.run import RunSettings, SyncRun
from target_salesforce_crm.target.sinks import (
    CONNECTION_TEST_STREAM,
    DEFAULT_BATCH_SIZE_ROWS,
    IgnoredSink,
    MappedSink,
)

DEFAULT_MAPPING_FILE = "transforms/personalization-to-crm.yml"
DEFAULT_OUTPUT_DIR = "output/target-salesforce-crm"

TARGET_SETTINGS = th.PropertiesList(
    th.Property(
        "mapping_file", th.StringType, default=DEFAULT_MAPPING_FILE,
        description="Forward mapping (YAML): which stream feeds which CRM object, match "
                    "rules, field mappings, write mode.",
    ),
    th.Property(
        "lookup_batch_size", th.IntegerType(minimum=1, maximum=1000), default=1000,
        description="Candidates validated per SOQL look-up call (at most 1,000).",
    ),
    th.Property(
        "bulk_batch_size", th.IntegerType(minimum=1, maximum=10_000), default=10_000,
        description="Records per Bulk API batch (at most 10,000; batches are also kept "
                    "under 10 MB).",
    ),
    th.Property(
        "bulk_api", th.StringType, default="1.0", allowed_values=["1.0", "2.0"],
        description="Bulk API for the writes. 1.0 (default): batches of one open job, each "
                    "answered on its own, so every STATE settles at the least calls. 2.0: "
                    "each batch is its own ingest job (CSV upload, UploadComplete, results "
                    "matched back to the records): the same outcomes, about twice the Bulk calls.",
    ),
    th.Property(
        "max_api_share", th.NumberType(exclusive_minimum=0, maximum=1), default=0.25,
        description="Refuse to write when a drain's estimated API calls exceed this share "
                    "of the remaining daily API requests (as Salesforce's Sforce-Limit-Info "
                    "response header reports them).",
    ),
    th.Property(
        "fail_on_rejects", th.NumberType(minimum=0), default=0.01,
        description="Fail the run (after writing every outcome) when rejected records "
                    "exceed this share of the input (a value below 1) or this count (1 "
                    "or more).",
    ),
    th.Property(
        "max_record_retries", th.IntegerType(minimum=0, maximum=10), default=3,
        description="Retries of a record after a transient failure such as "
                    "UNABLE_TO_LOCK_ROW.",
    ),
    th.Property(
        "retry_backoff", th.NumberType(minimum=0), default=2.0,
        description="Seconds before the first retry round of transient failures; doubles "
                    "each round (capped at 60).",
    ),
    th.Property(
        "concurrency_mode", th.StringType(allowed_values=["Parallel", "Serial"]),
        default="Parallel",
        description="Bulk job concurrency: Parallel (Salesforce processes several batches "
                    "at once) or Serial (one batch at a time: slower, no lock contention "
                    "between batches). Rows that fail UNABLE_TO_LOCK_ROW in a Parallel job "
                    "are retried in a Serial job.",
    ),
    th.Property(
        "group_by_parent", th.BooleanType, default=True,
        description="Cut Bulk batches so that each parent record's children share a batch "
                    "(Contacts by AccountId, read in the match look-up), and hold a child "
                    "back while its parent is in a batch still being processed: avoids "
                    "UNABLE_TO_LOCK_ROW in Parallel jobs. Off: batches follow input order.",
    ),
    th.Property(
        "output_dir", th.StringType, default=DEFAULT_OUTPUT_DIR,
        description="Where rejects.jsonl, unmatched.jsonl, report.json and report.md are "
                    "written (replaced on every run).",
    ),
    th.Property(
        "poll_initial", th.NumberType(exclusive_minimum=0), default=0.5,
        description="Seconds before the first Bulk batch status poll.",
    ),
    th.Property(
        "poll_max", th.NumberType(exclusive_minimum=0), default=10.0,
        description="Longest wait between two Bulk status polls (the wait grows up to it); "
                    "while records keep arriving, finished batches are looked for at most "
                    "this often.",
    ),
    th.Property(
        "poll_timeout", th.NumberType(exclusive_minimum=0), default=3600.0,
        description="Give up on a Bulk job whose batches are not finished after this many "
                    "seconds.",
    ),
    th.Property(
        "batch_size_rows", th.IntegerType(minimum=1), default=DEFAULT_BATCH_SIZE_ROWS,
        description="Input records per drain (looked up and handed to Bulk together); "
                    "bounds memory. Bulk batches fill across drains; every record before a "
                    "STATE message has its outcome when the STATE is emitted.",
    ),
    th.Property(
        "dry_run", th.BooleanType, default=False,
        description="Look up, map and check every record and write the report of what a "
                    "real run would update, create or reject (with a sample of field "
                    "changes, old → new), without any write: no Bulk job.",
    ),
    th.Property(
        "fingerprint_db", th.StringType, default=DEFAULT_FINGERPRINT_DB,
        description="SQLite file remembering what was last written to each CRM record, so "
                    "records whose mapped values have not changed are skipped (reported as "
                    "unchanged). Relocatable: cache its folder between CI runs.",
    ),
    th.Property(
        "full_refresh", th.BooleanType, default=False,
        description="Send every matched record even when its fingerprint says it is "
                    "unchanged (and rewrite the fingerprints), e.g. after someone edited "
                    "the CRM records by hand.",
    ),
)


SETTING_DEFAULTS: dict[str, Any] = {
    name: spec.get("default") for name, spec in TARGET_SETTINGS.to_dict()["properties"].items()
}


class TargetConfigError(Exception):
    """A setting or the mapping file is unusable; the message names it."""


# Errors that end a run with one actionable line instead of a traceback.
FATAL_ERRORS = (
    SalesforceError, PreflightError, ApiBudgetError, TargetConfigError, RejectThresholdError,
    FingerprintStoreError, JournalError, RecordsWithoutSchemaException, InvalidInputLine,
    BatchFileError,
)


def _config_schema() -> dict[str, Any]:
    schema = CONNECTION_SETTINGS.to_dict()
    schema["properties"].update(TARGET_SETTINGS.to_dict()["properties"])
    return schema


def load_mapping(path_setting: str) -> Any:
    """The forward mapping, or one error naming the setting, the file and every problem."""
    path = Path(path_setting)
    if not path.is_file():
        raise TargetConfigError(
            f"mapping_file: {path} does not exist (working directory {Path.cwd()}); write "
            f"the example mappings with `{MAPPING_COMMAND} init transforms` (in Meltano: "
            "`meltano invoke target-salesforce-crm:init-mapping`) or set mapping_file to "
            "your forward mapping"
        )
    try:
        return load_forward_mapping(path)
    except MappingError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        raise TargetConfigError(
            f"mapping_file {path} is invalid: " + "; ".join(one_line(p) for p in problems)
        ) from None


class TargetSalesforceCRM(TolerantTarget, Target):
    """Singer target writing mapped streams to Salesforce CRM objects."""

    name = "target-salesforce-crm"
    capabilities = [*Target.capabilities, PluginCapabilities.BATCH]
    config_jsonschema = _config_schema()
    default_sink_class = MappedSink

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Sinks share one Salesforce session and the Lead step depends on the Contact step,
        # so drains run one after another.
        self.max_parallelism = 1
        check_credential_urls(self.config)  # before any input: nothing leaves in cleartext
        if self.setting("concurrency_mode") == "Serial" and self.setting("bulk_api") == "2.0":
            raise TargetConfigError(
                "concurrency_mode: Serial needs bulk_api 1.0 (Bulk API 2.0 ingest jobs always "
                "run in parallel); set one of them back to its default")
        self.mapping = load_mapping(str(self.setting("mapping_file")))
        self.output_dir = Path(str(self.setting("output_dir")))
        self.run = SyncRun(
            self.mapping, self.run_settings(), logger=self.logger,
            connect=self.create_client, bulk_for=self.create_bulk,
        )
        cast(TolerantReader, self.message_reader).on_unreadable = self.run.unreadable

    def run_settings(self) -> RunSettings:
        return RunSettings(
            output_dir=self.output_dir,
            fingerprint_db=Path(str(self.setting("fingerprint_db"))),
            lookup_batch_size=int(self.setting("lookup_batch_size")),
            bulk_batch_size=int(self.setting("bulk_batch_size")),
            max_api_share=float(self.setting("max_api_share")),
            max_record_retries=int(self.setting("max_record_retries")),
            retry_backoff=float(self.setting("retry_backoff")),
            poll_max=float(self.setting("poll_max")),
            dry_run=bool(self.setting("dry_run")),
            full_refresh=bool(self.setting("full_refresh")),
            bulk_api=str(self.setting("bulk_api")),
            concurrency_mode=str(self.setting("concurrency_mode")),
            group_by_parent=bool(self.setting("group_by_parent")),
        )

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Number settings from environment variables first become numbers.

        singer-sdk converts integers, booleans and arrays from `--config ENV` (how the
        `target-salesforce-crm:test` Meltano command gets its settings) but leaves numbers as
        text, so `max_api_share` or `fail_on_rejects` would fail validation.
        """
        for name, schema in self.config_jsonschema["properties"].items():
            value = self._config.get(name)
            declared = schema.get("type", [])
            if isinstance(value, str) and "number" in (declared if isinstance(declared, list)
                                                       else [declared]):
                try:
                    self._config[name] = float(value)
                except ValueError:
                    continue  # left as text: validation names the setting
        return super()._validate_config(raise_errors=raise_errors)

    def setting(self, name: str) -> Any:
        """A target setting; its declared default also when the value is explicitly null."""
        value = self.config.get(name)
        return SETTING_DEFAULTS[name] if value is None else value

    def get_sink_class(self, stream_name: str) -> type[MappedSink] | type[IgnoredSink]:
        return MappedSink if self.mapping.for_stream(stream_name) else IgnoredSink

    def create_client(self) -> Any:
        """The Salesforce session; a seam for tests and for a future dry-run mode."""
        from target_salesforce_crm.client import SalesforceClient

        return SalesforceClient(dict(self.config), logger=self.logger, plugin_name=self.name)

    def create_bulk(self, client: Any) -> Any:
        from target_salesforce_crm.target.bulk import BulkClient
        from target_salesforce_crm.target.bulk2 import Bulk2Client

        bulk_class = Bulk2Client if self.setting("bulk_api") == "2.0" else BulkClient
        return bulk_class(
            client,
            poll_initial=float(self.setting("poll_initial")),
            poll_max=float(self.setting("poll_max")),
            poll_timeout=float(self.setting("poll_timeout")),
        )

    def listen(self, file_input: Any = None) -> None:
        """Read the input; the report says "running" until the run ends, "failed" if it dies.

        A run that stops on input (a RECORD before its SCHEMA, a SCHEMA without properties)
        or on a signal leaves a failed report, never the previous run's.
        """
        try:
            self.run.start()
            super().listen(file_input)
        except BaseException as exc:
            self.run.fail(exc)
            raise

    def _process_batch_message(self, message_dict: dict) -> None:
        """Each line of each BATCH file is read as a RECORD line is and takes the RECORD path
        (`crm_sync_mapping.singer_batch`); a file that cannot be read fails the run."""
        reader = cast(TolerantReader, self.message_reader)
        for record_message in batch_record_messages(message_dict, self.config,
                                                    reader.on_unreadable):
            self._process_record_message(record_message)

    def _write_state_message(self, state: dict) -> None:
        """A STATE promises an outcome for every record before it: settle first.

        singer-sdk calls this after draining every sink (end of input, or records older
        than its maximum age); the writes still queued or unanswered are finished here.
        """
        try:
            self.run.settle()
        except BaseException as exc:
            self.run.fail(exc)
            raise
        super()._write_state_message(state)

    def process_endofpipe(self) -> None:
        try:
            super().process_endofpipe()
            self.run.settle(close=True)
            if CONNECTION_TEST_STREAM in self.run.report.streams:
                self.run.connection_test()
        except BaseException as exc:
            self.run.fail(exc)
            raise
        self.run.finish(float(self.setting("fail_on_rejects")))

    def test_connection(self) -> str:
        """Authenticate, read the API budget and run the full preflight; write nothing."""
        return self.run.connection_test()

    @classmethod
    def invoke(
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: Any = None,
        file_input: Any = None,
        test: bool = False,
    ) -> None:
        """Run; a known failure ends with one actionable log line and exit code 1."""
        try:
            if test and not about:
                cls._invoke_test(config)
                return
            super().invoke(
                about=about, about_format=about_format, config=config, file_input=file_input,
            )
        except FATAL_ERRORS as exc:
            cls.logger.error("%s", one_line(str(exc)))
            sys.exit(1)

    @classmethod
    def _invoke_test(cls, config: Any) -> None:
        """`--test`: the connection check without reading stdin (a plugin command runs it)."""
        cls.print_version(print_fn=cls.logger.info)
        target = cls(
            config=config.config if config else None,
            validate_config=True,
            parse_env_config=bool(config and config.parse_env),
        )
        target.test_connection()
        sys.exit(0)

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """singer-sdk's target command plus `--test` (as singer-sdk taps have it)."""
        command = super().get_singer_command()
        command.params.append(click.Option(
            ["--test"], is_flag=True, default=False,
            help="Test the connection: authenticate, check the API budget and run the "
                 "preflight for every enabled object of the mapping; write nothing, read "
                 "no input. Exit code 0 when it passes, 1 with the reason when not.",
        ))
        return command
