"""target-personalization: CRM fields and campaign membership into Personalization.

Streams of tap-salesforce-crm that the reverse mapping names become user and account
attributes and segment membership changes, delivered as ETL feed files (the nightly default)
or through the Event API; any other stream is counted and reported as ignored. Settings are
declared here once; meltano.yml repeats their names, types, defaults and descriptions. Every
run first proves URL, CA and API token with one harmless read, and checks every setting and
the mapping file before that, listing all problems at once.

Two operator features: `dry_run` does everything up to the write and reports what a run
would change (see `sync`), and `--test` checks the connection and the feed destination and
exits (see `connection_test`), added to singer-sdk's click command in `get_singer_command`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import click
from crm_sync_mapping import MappingError, ReverseMapping, load_reverse_mapping
from crm_sync_mapping.singer_batch import BatchFileError, batch_record_messages
from crm_sync_mapping.singer_input import TolerantReader, TolerantTarget
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.target_base import Target

from tap_personalization.errors import PersonalizationError, plain_errors
from tap_personalization.mapping_init import COMMAND as MAPPING_COMMAND
from tap_personalization.settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    config_problems,
)
from tap_personalization.target.changes import DEFAULT_IDENTITY_ATTRIBUTES, mapping_problems
from tap_personalization.target.connection_test import check_connection
from tap_personalization.target.delivery import (
    DEFAULT_SFTP_PATH,
    DEFAULT_SFTP_PORT,
    destination_problems,
)
from tap_personalization.target.events import DEFAULT_ACTION, DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from tap_personalization.target.fingerprints import DEFAULT_FINGERPRINT_DB
from tap_personalization.target.sinks import IgnoredSink, MappedSink
from tap_personalization.target.sync import DEFAULT_SAMPLE_SIZE, SyncRun
from tap_personalization.target.writes import ETL_FEED, EVENT_API

DEFAULT_MAPPING_FILE = "transforms/crm-to-personalization.yml"
DEFAULT_OUTPUT_DIR = "output/target-personalization"
DEFAULT_FAIL_ON_REJECTS = 0.01

CONFIG_SCHEMA = th.PropertiesList(
    th.Property("base_url", th.StringType, description=(
        "API host, https://{account}.{instance}.evergage.com; takes precedence over account "
        "+ instance.")),
    th.Property("account", th.StringType, description=(
        "Personalization account name (the first label of the host name).")),
    th.Property("instance", th.StringType, description=(
        "Instance such as us-5; older us-1 accounts have none.")),
    th.Property("dataset", th.StringType, required=True, description=(
        "Dataset to write into (e.g. engage).")),
    th.Property("api_key_id", th.StringType, required=True, description=(
        'API token id (Settings > Security > API Tokens), with "Can access API" (connection '
        'check and identity check) and, for event_api, "Can send events".')),
    th.Property("api_key_secret", th.StringType, required=True, secret=True,
                description="API token secret."),
    th.Property("ca_bundle", th.StringType, description=(
        "Path of a PEM CA bundle to trust instead of the system CAs (e.g. the sandbox CA); "
        "verification is never turned off.")),
    th.Property("request_timeout", th.IntegerType(minimum=1), default=DEFAULT_REQUEST_TIMEOUT,
                description="Seconds to wait for one HTTP response."),
    th.Property("max_retries", th.IntegerType(minimum=1), default=DEFAULT_MAX_RETRIES,
                description=(
                    "Attempts for one request or SFTP delivery (the first included) on 429, "
                    "5xx, busy Event API replies (code 3) and connection failures.")),
    th.Property("mapping_file", th.StringType, default=DEFAULT_MAPPING_FILE, description=(
        "Reverse mapping (crm-to-personalization YAML): CRM objects to user/account "
        "attributes, campaigns to segments; relative to the working directory.")),
    th.Property("delivery", th.StringType, default=ETL_FEED,
                allowed_values=[ETL_FEED, EVENT_API], description=(
                    "etl_feed: CSV feed files into the inbound folder (nightly, bulk); "
                    "event_api: one Event API call per user (small deltas). Accounts and "
                    "segment membership always go as feed files.")),
    th.Property("feed_dir", th.StringType, description=(
        "Local inbound folder for feed files (e.g. the sandbox's "
        ".sandbox/personalization/inbound); use this or sftp_host.")),
    th.Property("sftp_host", th.StringType, description=(
        "SFTP host of the dataset's inbound folder (sftp.{instance}.evergage.com).")),
    th.Property("sftp_port", th.IntegerType(minimum=1, maximum=65535), default=DEFAULT_SFTP_PORT,
                description="SFTP port."),
    th.Property("sftp_username", th.StringType, description="SFTP user name."),
    th.Property("sftp_password", th.StringType, secret=True, description=(
        "SFTP password (or use a private key).")),
    th.Property("sftp_private_key", th.StringType, secret=True, description=(
        "SFTP private key (OpenSSH or PEM text).")),
    th.Property("sftp_private_key_path", th.StringType, description=(
        "Path of the SFTP private key file (instead of sftp_private_key).")),
    th.Property("sftp_private_key_passphrase", th.StringType, secret=True, description=(
        "Passphrase of an encrypted SFTP private key.")),
    th.Property("sftp_known_hosts", th.StringType, description=(
        "Path of a known_hosts file holding the SFTP server's host key.")),
    th.Property("sftp_host_key_fingerprint", th.StringType, description=(
        "SHA-256 fingerprint of the SFTP host key (SHA256:..., as ssh-keygen -lf prints it), "
        "instead of sftp_known_hosts. The host key is always checked.")),
    th.Property("sftp_path", th.StringType, default=DEFAULT_SFTP_PATH, description=(
        "Inbound folder on the SFTP server; {dataset} is replaced by the dataset.")),
    th.Property("gzip", th.BooleanType, default=False, description=(
        "Write feed files gzip-compressed (.csv.gz).")),
    th.Property("event_concurrency", th.IntegerType(minimum=1, maximum=MAX_CONCURRENCY),
                default=DEFAULT_CONCURRENCY, description=(
                    "Event API calls in flight at once (event_api).")),
    th.Property("event_action", th.StringType, default=DEFAULT_ACTION, description=(
        "The action name of the events sent (event_api).")),
    th.Property("identity_attributes", th.ArrayType(th.StringType),
                default=list(DEFAULT_IDENTITY_ATTRIBUTES), description=(
                    "The dataset's user identity attributes; the mapping's user identity "
                    "rules must use these.")),
    th.Property("page_size", th.IntegerType(minimum=1), default=DEFAULT_PAGE_SIZE,
                description=(
                    "Users or accounts per export page when the identity check reads the "
                    "exports.")),
    th.Property("output_dir", th.StringType, default=DEFAULT_OUTPUT_DIR, description=(
        "Where rejects.jsonl, report.json and report.md are written (replaced every run).")),
    th.Property("fail_on_rejects", th.NumberType(minimum=0), default=DEFAULT_FAIL_ON_REJECTS,
                description=(
                    "Fail the run (after every outcome is written) when rejected records "
                    "exceed this share of the input (below 1) or this count (1 or more); "
                    "unmatched records do not count.")),
    th.Property("dry_run", th.BooleanType, default=False, description=(
        "Map and check identities as usual (same export reads) but deliver no feed file, "
        "send no event and emit no STATE; the report says what a run would write, with a "
        "sample of old -> new values.")),
    th.Property("fingerprint_db", th.StringType, default=DEFAULT_FINGERPRINT_DB, description=(
        "SQLite file remembering, per user or account and attribute (and segment "
        "membership), the value Personalization last confirmed (event errorCode 0, or its "
        "feed file in the processed folder), so values that did not change are not sent "
        "again (reported as unchanged). Relocatable: cache its folder between CI runs.")),
    th.Property("full_refresh", th.BooleanType, default=False, description=(
        "Send every value even when the fingerprints say Personalization already has it "
        "(and record them again), e.g. after someone edited users in Personalization.")),
    th.Property("dry_run_sample_size", th.IntegerType(minimum=0), default=DEFAULT_SAMPLE_SIZE,
                description=(
                    "Users whose attribute changes (current -> new value) a dry run's report "
                    "shows.")),
).to_dict()


def load_mapping(config: dict[str, Any]) -> tuple[ReverseMapping | None, list[str]]:
    """The reverse mapping, or the problems naming the setting, the file and each line."""
    path = Path(str(config.get("mapping_file") or DEFAULT_MAPPING_FILE))
    if not path.is_file():
        return None, [f"Setting mapping_file: {path} does not exist (working directory "
                      f"{Path.cwd()}); write the example mappings with `{MAPPING_COMMAND} "
                      "init transforms` (in Meltano: `meltano invoke "
                      "target-personalization:init-mapping`) or point it at your "
                      "crm-to-personalization mapping."]
    try:
        mapping = load_reverse_mapping(path)
    except MappingError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        return None, [f"mapping_file: {' '.join(str(p).split())}" for p in problems]
    return mapping, []


def delivery_problems(config: dict[str, Any], mapping: ReverseMapping | None) -> list[str]:
    """A destination for every feed the run may write."""
    problems = destination_problems(config)
    has_destination = bool(config.get("feed_dir") or config.get("sftp_host"))
    if has_destination:
        return problems
    if str(config.get("delivery") or ETL_FEED) == ETL_FEED:
        problems.append("Set feed_dir (a local inbound folder) or sftp_host for delivery "
                        "etl_feed.")
    elif mapping is not None:
        needs = [obj.sobject for obj in mapping.objects if obj.enabled and obj.target == "account"]
        if mapping.segments is not None:
            needs.append("segments")
        if needs:
            problems.append(
                f"delivery event_api still sends {', '.join(needs)} as feed files (the Event API "
                "has no segment operation and changes accounts only with a user): set feed_dir "
                "or sftp_host, or disable them in the mapping file.")
    return problems


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


class TargetPersonalization(TolerantTarget, Target):
    """Singer target writing CRM records to Personalization users, accounts and segments."""

    name = "target-personalization"
    package_name = "tap-personalization"  # the distribution that ships both plugins
    capabilities = [*Target.capabilities, PluginCapabilities.BATCH]
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = MappedSink

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = dict(self.config)
        config.setdefault("output_dir", DEFAULT_OUTPUT_DIR)
        mapping, problems = load_mapping(config)
        problems = [*config_problems(config), *problems]
        identity_attributes = tuple(config.get("identity_attributes")
                                    or DEFAULT_IDENTITY_ATTRIBUTES)
        if mapping is not None:
            problems += mapping_problems(mapping, identity_attributes)
        problems += delivery_problems(config, mapping)
        if problems and kwargs.get("validate_config", True):
            raise ConfigValidationError("Config validation failed", errors=problems)
        if mapping is None:  # only without validation (e.g. --about): nothing will run
            mapping = ReverseMapping(Path(str(config.get("mapping_file"))), ())
        # Sinks share one run (writers, index, report); their records come one at a time.
        self.max_parallelism = 1
        self.run = SyncRun(config, mapping, identity_attributes, logger=self.logger)
        cast(TolerantReader, self.message_reader).on_unreadable = self.run.unreadable

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Number settings from environment variables first become numbers.

        singer-sdk converts integers, booleans and arrays from `--config ENV` (how the
        `target-personalization:test` command gets its settings) but leaves numbers as text,
        so `fail_on_rejects` would fail validation.
        """
        for name, schema in self.config_jsonschema["properties"].items():
            value = self._config.get(name)
            if isinstance(value, str) and "number" in _types(schema):
                try:
                    self._config[name] = float(value)
                except ValueError:
                    continue  # left as text: validation names the setting
        return super()._validate_config(raise_errors=raise_errors)

    def get_sink_class(self, stream_name: str) -> type[MappedSink] | type[IgnoredSink]:
        return MappedSink if self.run.mapper.is_mapped(stream_name) else IgnoredSink

    def listen(self, file_input: Any = None) -> None:
        """Check the connection first, then read; a failed run still writes its report."""
        try:
            self.run.start()
            self.run.check_connection()
            super().listen(file_input)
        except BaseException as exc:
            self.run.fail(exc)
            raise

    def _process_batch_message(self, message_dict: dict) -> None:
        """Each line of each BATCH file is read as a RECORD line is and takes the RECORD path
        (`crm_sync_mapping.singer_batch`); a file that cannot be read fails the run."""
        reader = cast(TolerantReader, self.message_reader)
        try:
            for record_message in batch_record_messages(message_dict, self.config,
                                                        reader.on_unreadable):
                self._process_record_message(record_message)
        except BatchFileError as exc:
            raise PersonalizationError(str(exc)) from None

    def _write_state_message(self, state: dict) -> None:
        """STATE only after every earlier record has its outcome and its file is delivered.

        A dry run emits none: the bookmark would make the next real run skip these records.
        """
        self.run.checkpoint()
        if not self.run.dry_run:
            super()._write_state_message(state)

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self.run.finish(float(self.config.get("fail_on_rejects", DEFAULT_FAIL_ON_REJECTS)))

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """singer-sdk's command (--about, --config, --input, ...) plus --test."""
        command = super().get_singer_command()
        command.params.append(click.Option(
            ["--test"], is_flag=True, default=False,
            help=("Check the connection (one harmless read) and the feed destination, then "
                  "exit; reads no input and writes nothing.")))
        return command

    @classmethod
    def invoke(cls, *args: Any, test: bool = False, **kwargs: Any) -> None:
        if test and not kwargs.get("about"):
            cls.connection_test(kwargs.get("config"))
            return
        with plain_errors(cls.logger):
            super().invoke(*args, **kwargs)

    @classmethod
    def connection_test(cls, config_input: Any) -> None:
        """Print one line, "Connection test passed: ..." (exit 0) or what to fix (exit 1)."""
        try:
            target = cls(
                config=getattr(config_input, "config", None),
                parse_env_config=bool(getattr(config_input, "parse_env", False)),
                validate_config=True,
            )
            message = check_connection(dict(target.config), cls.logger)
        except ConfigValidationError as exc:
            problems = " ".join(" ".join(str(p).split()) for p in exc.errors) or str(exc)
            click.echo(f"Connection test failed: {problems}", err=True)
            sys.exit(1)
        except PersonalizationError as exc:
            click.echo(f"Connection test failed: {' '.join(str(exc).split())}", err=True)
            sys.exit(1)
        click.echo(message)
