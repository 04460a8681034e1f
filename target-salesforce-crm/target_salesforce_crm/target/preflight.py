"""Checks against `describe` and the API allowance before anything is written.

Object level, once per object and run: permissions (object and field-level security),
match fields usable in a WHERE, value types the mapping produces, picklist values its
value maps produce, everything a create needs. All problems are gathered into ONE error,
each naming the object, the field and the permission to grant, because an administrator
fixes them in one sitting.

Record level, before each send: every value against the field's type, length and
restricted picklist, so a value Salesforce would refuse is rejected here with a distinct
`PRECHECK_*` code instead of costing a batch row.

API budget: the remaining daily API requests, from the `Sforce-Limit-Info` header Salesforce
puts on every response (the preflight's describe comes first, so no call is spent on it),
against an estimate per drain.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from crm_sync_mapping.paths import parse_path

from target_salesforce_crm.errors import SalesforceError

PERMISSION_SET = "the integration user's permission set"

TEXT_TYPES = frozenset({
    "string", "textarea", "email", "url", "phone", "picklist", "multipicklist", "combobox",
    "encryptedstring", "id", "reference",
})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})
DATETIME_TYPES = frozenset({"datetime", "date"})

# What a mapped value may land in, by the kind of value the mapping's conversions produce.
COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    "number": NUMBER_TYPES,
    "integer": NUMBER_TYPES,
    "datetime": frozenset({"datetime"}),
    "date": DATETIME_TYPES,
    "boolean": frozenset({"boolean"}),
    "text": TEXT_TYPES,
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PreflightError(Exception):
    """Every problem found, in one line; the run has not written anything."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"Preflight failed ({count}): " + "; ".join(problems))


class ApiBudgetError(Exception):
    """The run would use more of the daily API allowance than `max_api_share` permits."""


class LimitsClient(Protocol):
    api_usage: tuple[int, int] | None
    api_calls: Mapping[str, int]

    def limits(self) -> dict[str, Any]: ...


# -- object level -------------------------------------------------------------------------


def _fields(describe: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Described fields by lower-cased name: Salesforce field names ignore case."""
    return {str(f["name"]).lower(): f for f in describe.get("fields", [])}


def _hidden(sobject: str, name: str, access: str = "Read and Edit") -> str:
    return (
        f"{sobject}.{name} is missing or hidden from the integration user: create it or grant "
        f"{access} on {sobject}.{name} (field-level security) to {PERMISSION_SET}"
    )


_KIND_OF_CONVERSION = {
    "number": "number", "round": "number", "integer": "integer",
    "epoch_ms_to_datetime": "datetime", "iso_datetime": "datetime", "epoch_ms_to_date": "date",
    "string": "text", "trim": "text", "lowercase": "text", "uppercase": "text",
    "truncate": "text", "join": "text",
}


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "text"


def value_kind(field_mapping: Any) -> str | None:
    """The kind of value a field mapping produces, from its last typing conversion.

    `None` when no conversion fixes the type: the raw source value is sent, and only the
    record-level check can judge it.
    """
    kind: str | None = None
    for conversion in getattr(field_mapping, "conversions", ()) or ():
        if conversion.name == "value_map":
            kinds = {_kind_of_value(v) for _k, v in conversion.value_map if v is not None}
            kind = kinds.pop() if len(kinds) == 1 else "text"
        else:
            kind = _KIND_OF_CONVERSION.get(conversion.name, kind)
    return kind


def value_map_values(field_mapping: Any) -> set[str]:
    """Values a `value_map` conversion can produce (checked against picklists)."""
    produced: set[str] = set()
    for conversion in getattr(field_mapping, "conversions", ()) or ():
        if conversion.name != "value_map":
            continue
        produced.update(str(v) for _k, v in conversion.value_map if v is not None)
        if conversion.has_default and conversion.default not in (None, "keep"):
            produced.add(str(conversion.default))
    return produced


def check_object(describe: Mapping[str, Any], mapping: Any) -> list[str]:
    """Problems that would make writing `mapping.sobject` fail, each with its remedy."""
    sobject = mapping.sobject
    problems: list[str] = []
    fields = _fields(describe)
    upsert = mapping.write.mode == "upsert"
    if not describe.get("queryable", True):
        problems.append(f"grant Read on {sobject} (object permission) to {PERMISSION_SET}")
    if not describe.get("updateable"):
        problems.append(f"grant Edit on {sobject} (object permission) to {PERMISSION_SET}")
    if upsert and not describe.get("createable"):
        problems.append(
            f"grant Create on {sobject} (object permission) to {PERMISSION_SET}: "
            "the mapping's write mode is upsert"
        )
    problems += _check_match_fields(sobject, fields, mapping)
    written: set[str] = set()
    for field_mapping in mapping.fields:
        written.add(field_mapping.target)
        problems += _check_written_field(sobject, fields, field_mapping, create=False)
    if upsert:
        problems += _check_upsert(sobject, fields, mapping, written)
    return problems


def _check_match_fields(sobject: str, fields: Mapping[str, Any], mapping: Any) -> list[str]:
    problems: list[str] = []
    for rule in mapping.match:
        if not getattr(rule, "enabled", True):
            continue
        names = [rule.field]
        if rule.fuzzy is not None and rule.fuzzy.tie_breaker_field:
            names.append(rule.fuzzy.tie_breaker_field)
        for name in names:
            described = fields.get(name.lower())
            if described is None:
                problems.append(_hidden(sobject, name, "Read"))
            elif name == rule.field and not described.get("filterable", True):
                problems.append(
                    f"{sobject}.{name} cannot be used to match: it is not filterable in SOQL; "
                    "choose another match field"
                )
    if mapping.exclude_converted and "isconverted" not in fields:
        problems.append(_hidden(sobject, "IsConverted", "Read"))
    return problems


def _check_written_field(
    sobject: str, fields: Mapping[str, Any], field_mapping: Any, *, create: bool
) -> list[str]:
    name = field_mapping.target
    described = fields.get(name.lower())
    if described is None:
        return [_hidden(sobject, name)]
    problems: list[str] = []
    if create and not described.get("createable"):
        problems.append(
            f"grant Edit on {sobject}.{name} to {PERMISSION_SET}: it is set when creating "
            f"a {sobject}"
        )
    if not create and not described.get("updateable"):
        problems.append(f"grant Edit on {sobject}.{name} to {PERMISSION_SET}")
    kind = value_kind(field_mapping)
    crm_type = str(described.get("type"))
    if kind is not None and crm_type not in COMPATIBLE_TYPES[kind]:
        problems.append(
            f"{sobject}.{name} is a {crm_type} field but the mapping writes {kind} values "
            f"(from {field_mapping.source}); map it to a field of type "
            + "/".join(sorted(COMPATIBLE_TYPES[kind] - {"id", "reference"}))
        )
    default = field_mapping.default if field_mapping.has_default else None
    length = described.get("length")
    if (isinstance(default, str) and crm_type in TEXT_TYPES and isinstance(length, int)
            and 0 < length < len(default)):
        problems.append(
            f"{sobject}.{name} holds {length} characters but the mapping's default for it is "
            f"{len(default)}: every record without a value would be refused; shorten the "
            "default"
        )
    produced = value_map_values(field_mapping)
    if produced and crm_type in {"picklist", "multipicklist"}:
        known = {str(v.get("value")) for v in described.get("picklistValues", [])
                 if v.get("active", True)}
        unknown = sorted(produced - known)
        if unknown:
            problems.append(
                f"{sobject}.{name} has no picklist value {', '.join(map(repr, unknown))} "
                "that the mapping's value_map produces: add the value to the picklist or "
                "change the value_map"
            )
    return problems


def _check_upsert(
    sobject: str, fields: Mapping[str, Any], mapping: Any, written: set[str]
) -> list[str]:
    problems: list[str] = []
    external_id = mapping.write.external_id
    described = fields.get(external_id.lower())
    if described is None:
        problems.append(_hidden(sobject, external_id))
    elif not (described.get("externalId") or described.get("idLookup")):
        problems.append(
            f"{sobject}.{external_id} is not an External ID field: mark it External ID "
            "(and Unique) or choose another write.external_id"
        )
    provided = {name.lower() for name in written} | {external_id.lower()}
    for default in mapping.write.create_defaults:
        provided.add(default.target.lower())
        problems += _check_written_field(sobject, fields, default, create=True)
    for key, field in fields.items():
        required = (
            field.get("createable") and not field.get("nillable", True)
            and not field.get("defaultedOnCreate") and field.get("type") != "boolean"
        )
        name = field["name"]
        if required and key not in provided:
            problems.append(
                f"{sobject}.{name} is required to create a {sobject}: add it to "
                "write.create_defaults in the mapping"
            )
    return problems


def check_objects(
    describes: Mapping[str, Mapping[str, Any]], mappings: Iterable[Any],
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Raise one `PreflightError` listing every problem of every object.

    `schemas` (stream → the tap's SCHEMA) lets a raw source value be judged before any
    record is: text sent as is into a Number field would be refused row by row.
    """
    problems: list[str] = []
    for mapping in mappings:
        describe = describes[mapping.sobject]
        problems += check_object(describe, mapping)
        schema = (schemas or {}).get(mapping.stream)
        if schema is not None:
            problems += check_source_types(describe, mapping, schema)
    if problems:
        raise PreflightError(problems)


def check_source_types(describe: Mapping[str, Any], mapping: Any,
                       schema: Mapping[str, Any]) -> list[str]:
    """Fields that send a raw source value the stream's schema says can never fit."""
    fields = _fields(describe)
    problems: list[str] = []
    for field_mapping in mapping.fields:
        described = fields.get(field_mapping.target.lower())
        if described is None or field_mapping.is_literal or value_kind(field_mapping):
            continue
        crm_type = str(described.get("type"))
        kinds = source_kinds(schema, field_mapping.source)
        if crm_type in NUMBER_TYPES and kinds and not kinds & {"number", "integer"}:
            problems.append(
                f"{mapping.sobject}.{field_mapping.target} is a {crm_type} field but its "
                f"source {field_mapping.source} is {'/'.join(sorted(kinds))} in stream "
                f"'{mapping.stream}''s schema: add `convert: [number]` to the field in the "
                "mapping file, or map a numeric property"
            )
    return problems


def source_kinds(schema: Mapping[str, Any], source: str) -> set[str]:
    """JSON types (null left out) the schema allows at a source path; empty when unknown."""
    node: Any = schema
    for step in parse_path(source).steps:
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or step.name not in properties:
            return set()
        node = properties[step.name]
        if step.index is not None:
            node = node.get("items") if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping) or "anyOf" in node or "oneOf" in node:
        return set()
    declared = node.get("type")
    kinds = {declared} if isinstance(declared, str) else set(declared or [])
    return {str(kind) for kind in kinds} - {"null"}


# -- record level ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueProblem:
    code: str
    field: str
    message: str


class ValueChecker:
    """Validates outgoing values against one object's describe."""

    def __init__(self, sobject: str, describe: Mapping[str, Any]) -> None:
        self.sobject = sobject
        self.fields = _fields(describe)

    def check(self, payload: Mapping[str, Any]) -> list[ValueProblem]:
        problems: list[ValueProblem] = []
        for name, value in payload.items():
            described = self.fields.get(name.lower())
            if described is None or name.lower() == "id":
                continue
            problem = self._check_value(name, described, value)
            if problem is not None:
                problems.append(problem)
        return problems

    def check_create(self, payload: Mapping[str, Any]) -> list[ValueProblem]:
        """Fields Salesforce requires on create that the payload leaves empty."""
        given = {name.lower(): value for name, value in payload.items()}
        return [
            ValueProblem("PRECHECK_REQUIRED_FIELD_MISSING", field["name"],
                         f"{self.sobject}.{field['name']} is required to create a {self.sobject}")
            for key, field in self.fields.items()
            if field.get("createable") and not field.get("nillable", True)
            and not field.get("defaultedOnCreate") and field.get("type") != "boolean"
            and given.get(key) in (None, "")
        ]

    def _check_value(self, name: str, field: Mapping[str, Any], value: Any) -> ValueProblem | None:
        crm_type = str(field.get("type"))
        label = f"{self.sobject}.{name}"
        if value is None:
            if not field.get("nillable", True):
                return ValueProblem("PRECHECK_REQUIRED_FIELD_MISSING", name,
                                    f"{label} cannot be empty")
            return None
        if crm_type in TEXT_TYPES:
            return self._check_text(name, label, field, value)
        if crm_type in NUMBER_TYPES:
            return self._check_number(name, label, field, value)
        if crm_type == "boolean" and not isinstance(value, bool):
            return ValueProblem("PRECHECK_INVALID_TYPE", name,
                                f"{label} expects true/false, got {value!r}")
        if crm_type in DATETIME_TYPES:
            return self._check_datetime(name, label, crm_type, value)
        return None

    def _check_text(
        self, name: str, label: str, field: Mapping[str, Any], value: Any
    ) -> ValueProblem | None:
        if not isinstance(value, str):
            return ValueProblem("PRECHECK_INVALID_TYPE", name,
                                f"{label} expects text, got {type(value).__name__}")
        length = int(field.get("length") or 0)
        if length and len(value) > length:
            return ValueProblem("PRECHECK_STRING_TOO_LONG", name,
                                f"{label} holds at most {length} characters, got {len(value)}")
        crm_type = field.get("type")
        if crm_type == "email" and not _EMAIL.match(value):
            return ValueProblem("PRECHECK_INVALID_EMAIL_ADDRESS", name,
                                f"{label}: {value!r} is not an e-mail address")
        if crm_type in {"picklist", "multipicklist"} and field.get("restrictedPicklist"):
            allowed = {str(v.get("value")) for v in field.get("picklistValues", [])
                       if v.get("active", True)}
            chosen = value.split(";") if crm_type == "multipicklist" else [value]
            bad = [v for v in chosen if v not in allowed]
            if bad:
                return ValueProblem(
                    "PRECHECK_INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", name,
                    f"{label}: {bad[0]!r} is not one of {', '.join(sorted(allowed))}",
                )
        return None

    def _check_number(
        self, name: str, label: str, field: Mapping[str, Any], value: Any
    ) -> ValueProblem | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ValueProblem("PRECHECK_INVALID_TYPE", name,
                                f"{label} expects a number, got {type(value).__name__}")
        if not math.isfinite(value):
            return ValueProblem("PRECHECK_INVALID_TYPE", name, f"{label}: {value} is not finite")
        if field.get("type") in {"int", "long"}:
            if not float(value).is_integer():
                return ValueProblem("PRECHECK_INVALID_TYPE", name,
                                    f"{label} expects a whole number, got {value}")
            digits = int(field.get("digits") or 0)
        else:
            digits = int(field.get("precision") or 0) - int(field.get("scale") or 0)
        if digits > 0 and abs(value) >= 10 ** digits:
            return ValueProblem("PRECHECK_NUMBER_OUTSIDE_VALID_RANGE", name,
                                f"{label} allows {digits} digits before the point, got {value}")
        return None

    @staticmethod
    def _check_datetime(name: str, label: str, crm_type: str, value: Any) -> ValueProblem | None:
        if isinstance(value, dt.date):
            return None
        if isinstance(value, str):
            if crm_type == "date" and _DATE.match(value):
                return None
            try:
                dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return None
        return ValueProblem("PRECHECK_INVALID_TYPE", name,
                            f"{label} expects an ISO 8601 {crm_type}, got {value!r}")


# -- API budget -----------------------------------------------------------------------------


def estimate_calls(records: int, objects: int, lookup_batch_size: int, bulk_batch_size: int,
                   *, bulk_api: str = "1.0") -> int:
    """Upper bound of one drain's calls: every record a candidate of every object."""
    if records <= 0:
        return 0
    lookups = math.ceil(records / lookup_batch_size)
    batches = math.ceil(records / bulk_batch_size)
    # 1.0: create + close per job; per batch: add, about two polls, result.
    # 2.0: per batch (an ingest job): create, upload, close, about two polls, two results.
    per_batch = 7 if bulk_api == "2.0" else 4
    return objects * (lookups + 2 + per_batch * batches)


class ApiBudget:
    """Refuses a drain whose estimate exceeds `max_share` of the requests still available.

    The figure is the `Sforce-Limit-Info` header of the latest response (`used/max`). When
    no response carried it (a proxy that strips headers), the budget does not guess: it
    reads `limits` once, says so in the log, and counts its own calls down from there; if
    that is refused too, the run stops before writing.
    """

    def __init__(self, max_share: float, logger: logging.Logger | None = None) -> None:
        self.max_share = max_share
        self.logger = logger or logging.getLogger(__name__)
        self.remaining: int | None = None
        self.maximum: int | None = None
        # Without the header: (remaining per `limits`, calls this client had made then).
        self._asked: tuple[int, int] | None = None

    def current(self, client: LimitsClient) -> int:
        """Daily API requests still available, as of the latest response."""
        if client.api_usage is not None:
            used, maximum = client.api_usage
            self.remaining, self.maximum = max(maximum - used, 0), maximum
            return self.remaining
        if self._asked is None:
            self.logger.warning(
                "Salesforce responses carry no Sforce-Limit-Info header (a proxy may strip "
                "it): reading the daily API allowance from the limits resource instead")
            try:
                daily = client.limits().get("DailyApiRequests", {})
            except SalesforceError as exc:
                raise ApiBudgetError(
                    "cannot tell how many daily API requests remain: Salesforce's responses "
                    "carry no Sforce-Limit-Info header (let it through the proxy) and the "
                    "limits resource answered: " + str(exc) + " (it needs View Setup and "
                    "Configuration)") from None
            self.maximum = int(daily["Max"]) if daily.get("Max") is not None else None
            self._asked = (int(daily.get("Remaining", 0)), sum(client.api_calls.values()))
        remaining, calls_then = self._asked
        self.remaining = max(remaining - (sum(client.api_calls.values()) - calls_then), 0)
        return self.remaining

    def check(self, client: LimitsClient, estimate: int) -> None:
        remaining = self.current(client)
        allowed = math.floor(self.max_share * remaining)
        if estimate > allowed:
            raise ApiBudgetError(
                f"about {estimate} API calls needed but max_api_share {self.max_share} of the "
                f"{remaining} daily API requests remaining allows {allowed}: run later, "
                "raise max_api_share, or send fewer records per run"
            )
