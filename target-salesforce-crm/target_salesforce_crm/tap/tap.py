"""tap-salesforce-crm: CRM fields and campaign membership, incrementally, for Personalization.

Which fields are read comes from the reverse mapping file (the fields Personalization is fed)
plus a fixed core per object (Id, IsDeleted, the modification stamp, what identity needs);
their types come from `describe`. With an input catalog (every Meltano sync run) the streams
are built from the catalog's schemas, so a sync makes no describe calls at all.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import click
from crm_sync_mapping import MappingError, load_reverse_mapping
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import Message, RecordMessage

from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import ApiError, SalesforceError
from target_salesforce_crm.mapping_init import COMMAND as MAPPING_COMMAND
from target_salesforce_crm.settings import CONNECTION_SETTINGS
from target_salesforce_crm.tap.schema import (
    FieldAccessError,
    columns_of,
    fields_by_name,
    merge_origins,
    object_schema,
    resolve_fields,
)
from target_salesforce_crm.tap.streams import (
    REPLICATION_KEYS,
    ReadCeiling,
    SalesforceStream,
    StreamPlan,
)

DEFAULT_MAPPING_FILE = "transforms/crm-to-personalization.yml"
DEFAULT_LOOKBACK_MINUTES = 5
TAP_ORIGIN = "the tap's core fields"

# Fields every stream of an object reads, whatever the mapping says: the key, the deletion
# flag, and what the target needs to route a record (e-mail identity, converted leads).
CORE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Contact": ("Id", "Email", "IsDeleted"),
    "Lead": ("Id", "Email", "IsDeleted", "IsConverted", "ConvertedContactId"),
    "Account": ("Id", "IsDeleted"),
    "CampaignMember": (
        "Id", "CampaignId", "Campaign.Name", "ContactId", "LeadId", "Status", "HasResponded",
        "IsDeleted",
    ),
}
SEGMENT_OBJECT = "CampaignMember"
DEFAULT_SEGMENT_STREAM = "campaign_members"


@dataclass(frozen=True)
class StreamSpec:
    """A stream before describe: its object and each field with where it was asked for."""

    name: str
    sobject: str
    fields: Mapping[str, str]


class RecordWriter(MsgSpecWriter):
    """msgspec-encoded Singer messages, RECORDs flushed in bulk with the next SCHEMA or STATE.

    The SDK's writers flush stdout after every record, a system call per record that
    dominated this tap's profile; a STATE is still flushed the moment it is written.
    """

    def write_message(self, message: Message) -> None:
        line = self.format_message(message)
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # stdout replaced by a text stream (tests, notebooks)
            sys.stdout.write(line.decode())
        else:
            binary.write(line)
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()


class TapSalesforceCRM(Tap):
    """Reads Contacts, Leads, Accounts and Campaign Members by `SystemModstamp` bookmark."""

    name = "tap-salesforce-crm"
    package_name = "target-salesforce-crm"  # the distribution that ships both plugins
    #: Several times faster than the default writer, which took most of this tap's time.
    message_writer_class = RecordWriter

    config_jsonschema = th.PropertiesList(
        *CONNECTION_SETTINGS,
        th.Property(
            "mapping_file", th.StringType, default=DEFAULT_MAPPING_FILE,
            description="Reverse mapping (crm-to-personalization) naming the CRM fields to "
                        "read; relative paths are resolved from the working directory.",
        ),
        th.Property(
            "start_date", th.DateTimeType,
            description="Read records modified since this instant on the first run (no "
                        "state); empty reads everything.",
        ),
        th.Property(
            "lookback_minutes", th.IntegerType, default=DEFAULT_LOOKBACK_MINUTES,
            description="Re-read this many minutes before the bookmark, for rows committed "
                        "late or with clock skew; re-read rows are emitted again (targets "
                        "upsert by Id).",
        ),
        th.Property(
            "use_bulk_api", th.BooleanType, default=False,
            description="Read streams without a bookmark (first or full syncs) through a "
                        "Bulk API 2.0 query job instead of REST queryAll; incremental runs "
                        "stay on REST.",
        ),
        th.Property(
            "extra_fields", th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
            description="More CRM fields per stream beyond the mapping, e.g. "
                        '{"contacts": ["Phone", "Account.Name"]}; a relationship field '
                        "becomes a nested object property (Account: {Name}).",
        ),
    ).to_dict()

    @cached_property
    def client(self) -> SalesforceClient:
        """One client (one session, one describe cache) shared by every stream of a run."""
        return SalesforceClient(self.config, logger=self.logger, plugin_name=self.name)

    def discover_streams(self) -> list[Stream]:
        """Streams from the input catalog when given (no describe), else from describe."""
        lookback = self.config.get("lookback_minutes")
        if lookback is not None and int(lookback) < 0:
            raise ConfigValidationError(
                f"lookback_minutes: {lookback} would start after the bookmark and skip rows; "
                "use 0 or more."
            )
        catalog = self.input_catalog
        ceiling = ReadCeiling()  # one for the run: its streams read up to the same moment
        streams: list[Stream] = []
        for spec in self.stream_specs():
            entry = catalog.get_stream(spec.name) if catalog is not None else None
            plan = plan_from_catalog(spec, entry) if entry is not None else self.describe_plan(
                spec
            )
            streams.append(SalesforceStream(self, plan, self.client, ceiling))
        return streams

    def stream_specs(self) -> list[StreamSpec]:
        """The streams the mapping file feeds, with their fields and where each came from."""
        mapping_path = Path(str(self.config.get("mapping_file") or DEFAULT_MAPPING_FILE))
        if not mapping_path.is_file():
            raise ConfigValidationError(
                f"mapping_file: {mapping_path} does not exist (working directory "
                f"{Path.cwd()}); write the example mappings with `{MAPPING_COMMAND} init "
                f"transforms` (in Meltano: `meltano invoke tap-salesforce-crm:init-mapping`) "
                f"or set mapping_file to your crm-to-personalization mapping."
            )
        mapping = load_reverse_mapping(mapping_path)
        origin = f"mapping file {mapping_path}"
        specs: list[StreamSpec] = []
        for obj in mapping.objects:
            core_names = CORE_FIELDS.get(obj.sobject, ("Id", "IsDeleted"))
            core = ((name, TAP_ORIGIN) for name in core_names)
            mapped = ((name, origin) for name in sorted(obj.crm_fields()))
            specs.append(StreamSpec(obj.stream, obj.sobject, merge_origins(core, mapped)))
        if mapping.segments is not None:
            core = ((name, TAP_ORIGIN) for name in CORE_FIELDS[SEGMENT_OBJECT])
            specs.append(StreamSpec(mapping.segments.stream, SEGMENT_OBJECT, merge_origins(core)))
        return self._with_extra_fields(specs)

    def _with_extra_fields(self, specs: list[StreamSpec]) -> list[StreamSpec]:
        extra: Mapping[str, list[str]] = self.config.get("extra_fields") or {}
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ConfigValidationError(
                f"mapping_file: two objects feed the same stream ({', '.join(names)}); give "
                "each object its own stream name."
            )
        unknown = sorted(set(extra) - set(names))
        if unknown:
            raise ConfigValidationError(
                f"extra_fields: unknown stream(s) {', '.join(unknown)}; streams are "
                f"{', '.join(names)}."
            )
        return [
            StreamSpec(spec.name, spec.sobject, merge_origins(
                spec.fields.items(),
                ((name, f"setting extra_fields.{spec.name}") for name in extra.get(spec.name, [])),
            ))
            for spec in specs
        ]

    def describe_plan(self, spec: StreamSpec) -> StreamPlan:
        """Columns and schema of one stream from describe; unreadable fields fail here."""
        describe = self._describe(spec.sobject, spec.name)
        plain = {name: origin for name, origin in spec.fields.items() if "." not in name}
        resolved = resolve_fields(describe, plain)  # every unreadable field in one error
        by_lower = {name.lower(): (name, field) for name, field in resolved.items()}
        fields: dict[str, Mapping[str, Any]] = {}
        for expression, origin in spec.fields.items():
            if "." in expression:
                canonical, parent_field = self._relationship(describe, expression, origin)
            else:
                canonical, parent_field = by_lower[expression.lower()]
            fields[canonical] = parent_field
        present = fields_by_name(describe)
        replication_key = next(
            (str(present[key.lower()]["name"]) for key in REPLICATION_KEYS
             if key.lower() in present),
            None,
        )
        if replication_key is not None:
            fields[replication_key] = present[replication_key.lower()]
        else:
            self.logger.warning(
                "%s has neither SystemModstamp nor LastModifiedDate: stream %s is read in full "
                "every run.", spec.sobject, spec.name,
            )
        return StreamPlan(
            spec.name, spec.sobject, tuple(fields), object_schema(fields), replication_key,
        )

    def _relationship(
        self, describe: Mapping[str, Any], expression: str, origin: str
    ) -> tuple[str, Mapping[str, Any]]:
        """Resolve `Relation.Field` through the reference field whose relationshipName matches."""
        relation, name = expression.split(".", 1)
        reference = next(
            (f for f in describe.get("fields", [])
             if str(f.get("relationshipName") or "").lower() == relation.lower()
             and f.get("referenceTo")),
            None,
        )
        if reference is None or "." in name:
            raise FieldAccessError(
                f"{describe.get('name')} has no readable relationship {relation!r} for "
                f"{expression} (named in {origin}); use one level such as Account.Name, and "
                "grant Read access on the lookup field if it is hidden."
            )
        parent = self._describe(str(reference["referenceTo"][0]), expression)
        (canonical_name, field), = resolve_fields(parent, {name: origin}).items()
        return f"{reference['relationshipName']}.{canonical_name}", field

    def _describe(self, sobject: str, needed_by: str) -> Mapping[str, Any]:
        try:
            return self.client.describe(sobject)
        except ApiError as error:
            if error.code in {"NOT_FOUND", "INVALID_TYPE"}:
                raise FieldAccessError(
                    f"{sobject} (needed by {needed_by}) is not visible to the integration "
                    "user: grant Read on the object in its profile or permission set, or "
                    f"remove it from the mapping file ({error.message})."
                ) from error
            raise

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: failures in one plain line (exit 1) instead of a traceback."""
        try:
            super().cb_test(ctx, param, value)
        except (SalesforceError, MappingError, ConfigValidationError) as error:
            click.echo(f"Connection test failed: {error}", err=True)
            sys.exit(1)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """`--discover` (Meltano runs it before every sync): failures in one plain line."""
        try:
            super().cb_discover(ctx, param, value)
        except (SalesforceError, MappingError) as error:
            click.echo(f"Discovery failed: {error}", err=True)
            sys.exit(1)

    @classmethod
    def invoke(cls, *, about: bool = False, about_format: str | None = None,
               config: Any = None, state: IO[str] | None = None,
               catalog: IO[str] | None = None) -> None:
        """A sync: failures in one plain line (exit 1) instead of a traceback."""
        try:
            super().invoke(about=about, about_format=about_format, config=config, state=state,
                           catalog=catalog)
        except (SalesforceError, MappingError) as error:
            cls.logger.error("Sync failed: %s", error)
            sys.exit(1)


def plan_from_catalog(spec: StreamSpec, entry: Any) -> StreamPlan:
    """Rebuild a stream's columns from its catalog schema, without calling describe.

    Nested object properties stand for relationship fields (`Campaign: {Name}` →
    `Campaign.Name`); every other property is the field of the same name.
    """
    schema = entry.schema.to_dict()
    columns = columns_of(schema)
    replication_key = next((key for key in REPLICATION_KEYS if key in columns), None)
    return StreamPlan(spec.name, spec.sobject, columns, schema, replication_key)
