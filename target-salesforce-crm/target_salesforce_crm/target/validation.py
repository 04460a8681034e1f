"""A record's arrival: its schema verdict, the properties a drain keeps, plain JSON values.

The first step of the flow (validate → match → map and diff → write → settle → report).
A record that breaks its stream's schema is not an error of the run: it is held with its
problem and becomes an `INVALID_RECORD` reject when its drain is decided.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fastjsonschema
from crm_sync_mapping.paths import parse_path
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks.core import JSONSchemaValidator

from target_salesforce_crm.target.outcomes import INVALID_RECORD, STAGE_INPUT, Reject, SourceRef

if TYPE_CHECKING:
    from target_salesforce_crm.target.ledger import OutcomeLedger

# Schema keywords only jsonschema handles as singer-sdk means them (see `compiled_check`).
_JSONSCHEMA_ONLY = (
    "$ref", "$dynamicRef", "$recursiveRef", "prefixItems", "unevaluatedProperties",
    "unevaluatedItems", "dependentRequired", "dependentSchemas",
)


@dataclass(slots=True)
class Pending:
    """A record of the current drain, with the schema problem found on arrival.

    `record` holds only the properties the mapping reads (see `read_properties`).
    """

    position: int
    record: dict[str, Any]
    problem: str | None = None


class RecordingValidator(JSONSchemaValidator):
    """Schema validation that reports instead of stopping the run.

    A record that breaks its stream's schema becomes a reject naming its key (nothing is
    lost and the rest of the run goes on); the sink collects the reason right after
    validation, which the SDK runs immediately before `process_record`.

    jsonschema walks the schema for every record (about 85 µs each, a third of the
    target's CPU); a compiled `fastjsonschema` check takes about 4 µs. So the compiled
    check lets the valid records through, and jsonschema, as singer-sdk configures it,
    judges the rest: the verdict and the reason in the reject stay jsonschema's.
    """

    problem: str | None = None

    def __init__(self, schema: dict[str, Any], *, validate_formats: bool = False) -> None:
        super().__init__(schema, validate_formats=validate_formats)
        self._passes = None if validate_formats else compiled_check(schema)

    def validate(self, record: dict) -> None:
        if self._passes is not None and self._passes(record):
            return
        try:
            super().validate(record)
        except InvalidRecord as exc:
            self.problem = f"it does not match the stream's schema ({exc.error_message})"

    def take_problem(self) -> str | None:
        problem, self.problem = self.problem, None
        return problem


def schema_valid(
    stream: str, objects: Sequence[Any], records: Sequence[Pending], drain: int,
    ledger: OutcomeLedger,
) -> list[Pending]:
    """The drain's records that passed their schema; the others become INVALID_RECORD."""
    valid: list[Pending] = []
    for pending in records:
        if pending.problem is None:
            valid.append(pending)
            continue
        key = _any_key(objects, pending)
        ledger.invalid(Reject(
            SourceRef(stream, key, pending.position, drain), None, INVALID_RECORD,
            f"record {key} of stream '{stream}' is unusable: {pending.problem}", STAGE_INPUT,
        ))
    return valid


def _any_key(objects: Sequence[Any], pending: Pending) -> str:
    for om in objects:
        key = om.record_key(pending.record)
        if key is not None:
            return key
    return f"#{pending.position + 1}"


def compiled_check(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """True for a record the schema surely accepts; None when only jsonschema may decide.

    Compiled without defaults (the record is never changed) and without formats (as
    singer-sdk validates by default). Left to jsonschema: a schema with references (it
    never fetches a remote one), with keywords of draft 2020-12 that fastjsonschema does not
    know (it would let through what they forbid), and one it cannot compile.
    """
    text = json.dumps(schema)
    if any(f'"{keyword}"' in text for keyword in _JSONSCHEMA_ONLY):
        return None
    try:
        check = fastjsonschema.compile(schema, use_default=False, use_formats=False,
                                       detailed_exceptions=False)
    except Exception:  # any schema it cannot compile: jsonschema alone still validates
        return None

    def passes(record: dict[str, Any]) -> bool:
        try:
            check(record)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return passes


def missing_keys(record: dict[str, Any], key_properties: Sequence[str]) -> str | None:
    """Why a record breaks the Singer spec for its stream's key_properties, or None.

    singer-sdk raises `MissingKeyPropertiesError` and stops the run; here the record is
    held like any other invalid record and becomes an INVALID_RECORD reject.
    """
    missing = [name for name in key_properties if name not in record]
    if not missing:
        return None
    return (f"it has no {', '.join(repr(name) for name in missing)} (the stream's "
            "key_properties)")


def read_properties(objects: Sequence[Any]) -> frozenset[str]:
    """Top-level properties the mapping of a stream reads: all a drain needs to keep.

    Keys, match rules (disabled ones too: an upsert reads its external id through them),
    fuzzy tie-breakers, mapped fields and create defaults. The rest of a record (display
    names, geo, extra keys) is dropped on arrival, after validation.
    """
    sources: list[str] = []
    for om in objects:
        sources.append(om.key)
        for rule in om.match:
            sources.append(rule.source)
            if rule.fuzzy is not None and rule.fuzzy.tie_breaker_source:
                sources.append(rule.fuzzy.tie_breaker_source)
        sources += [f.source for f in (*om.fields, *om.write.create_defaults) if f.source]
    return frozenset(parse_path(source).steps[0].name for source in sources)


def plain_record(record: dict[str, Any]) -> dict[str, Any]:
    """Undo the SDK's parsing so the mapping sees JSON values, as the tap emitted them.

    singer-sdk reads JSON numbers as `Decimal` and turns top-level date/date-time strings
    into Python objects; the mapping file's conversions (`number`, `round`, `iso_datetime`)
    work on plain JSON numbers and ISO text.
    """
    plain: dict[str, Any] = {}
    for name, value in record.items():
        plain[name] = value.isoformat() if isinstance(value, dt.date) else _plain(value)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
