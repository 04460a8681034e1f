"""CRM records → what Personalization should change: user or account attributes, segment deltas.

This is the mapping step of target-personalization and knows nothing about delivery: it turns
one input record into one decision per mapped object, so every record ends in exactly one
place (a change, a skip with its reason, or a refusal with its reason).

Decisions where the product had to choose:
- A deleted CRM contact, lead or account (`IsDeleted`) changes nothing in Personalization and
  is counted as skipped. A Personalization user is a visitor profile that lives on without
  the CRM record, and most deletions are merges: the surviving record carries the data and
  arrives as an update, while clearing the user found through the loser's e-mail would wipe
  what the survivor just set.
- A deleted campaign member removes the user from the campaign's segment (`Remove`).
- A converted lead is skipped when its object has `skip_converted`: its contact carries the
  data from then on.
- A text value of only blanks is treated as no value (the null policy applies): feeds refuse
  such cells and an attribute of blanks helps no personalisation rule.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crm_sync_mapping import ReverseMapping, ReverseObjectMapping
from crm_sync_mapping.model import NULL_CLEAR

#: Attribute names the API accepts (the docs are silent: the strict reading).
ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_VALUE_BYTES = 1024
ACCOUNT_ID_ATTRIBUTE = "accountId"
DEFAULT_IDENTITY_ATTRIBUTES = ("emailAddress", "sfcrmContactId", "sfcrmLeadId")
#: Campaign members name their person by one of these CRM ids, the contact first.
MEMBER_IDENTITIES = (("ContactId", "sfcrmContactId"), ("LeadId", "sfcrmLeadId"))
SEGMENTS_OBJECT = "segments"

# Outcomes. "unmatched": Personalization has no counterpart (normal: not every CRM person is
# a web visitor); "rejected": the record or Personalization's answer needs a person's fix.
UNMATCHED = "unmatched"
REJECTED = "rejected"

# Reasons (stable codes for reports and rejects.jsonl).
SKIP_DELETED = "deleted"
SKIP_CONVERTED = "converted_lead"
SKIP_CAMPAIGN_NOT_MAPPED = "campaign_not_mapped"
SKIP_NOTHING_TO_WRITE = "nothing_to_write"
NO_IDENTITY = "no_identity"
UNKNOWN_IDENTITY = "unknown_identity"
AMBIGUOUS_IDENTITY = "ambiguous_identity"
CONFLICTING_IDENTITY = "conflicting_identity"
INVALID_ACCOUNT_ID = "invalid_account_id"
VALUE_TOO_LONG = "value_too_long"
INVALID_VALUE = "invalid_value"
INVALID_ATTRIBUTE_NAME = "invalid_attribute_name"
CONVERSION_FAILED = "conversion_failed"
INVALID_RECORD = "invalid_record"
UNREADABLE_LINE = "unreadable_line"  # an input line that is not a Singer message
API_REJECTED = "api_rejected"


@dataclass(frozen=True)
class UserChange:
    """Attribute values for the user that `identities` find (value None: clear it).

    `normalizers` names, per identity value, the normalisers of its rule: the identity check
    compares Personalization's values through the same ones.
    """

    stream: str
    sobject: str
    key: str
    identities: tuple[tuple[str, str], ...]
    values: dict[str, Any]
    normalizers: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class AccountChange:
    """Attribute values for one existing Personalization account."""

    stream: str
    sobject: str
    key: str
    account_id: str
    values: dict[str, Any]


@dataclass(frozen=True)
class SegmentChange:
    """One membership change: the person (by CRM id identities) joins or leaves a segment."""

    stream: str
    key: str
    segment_id: str
    update: str
    identities: tuple[tuple[str, str], ...]
    sobject: str = SEGMENTS_OBJECT


@dataclass(frozen=True)
class Skip:
    """A record that needs no change, for a stated reason."""

    stream: str
    sobject: str
    key: str
    reason: str


@dataclass(frozen=True)
class Refusal:
    """A record that cannot be applied: unmatched or rejected, with a one-line message."""

    stream: str
    sobject: str
    key: str
    outcome: str
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


Decision = UserChange | AccountChange | SegmentChange | Skip | Refusal


class ValueProblem(ValueError):
    """A value Personalization would refuse; `reason` is the report code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def plain(value: Any) -> Any:
    """Undo singer-sdk's parsing (Decimal numbers, datetime objects) back to JSON values."""
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {name: plain(item) for name, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def value_text(value: Any) -> str:
    """A scalar as Personalization reads it in a feed cell (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def checked_value(attribute: str, value: Any) -> Any:
    """A scalar Personalization accepts, None for no value; ValueProblem otherwise."""
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, dict | list):
        raise ValueProblem(
            INVALID_VALUE, f"attribute {attribute}: a {type(value).__name__} is not a text, "
            "number or boolean (add a join or string conversion in the mapping)")
    if isinstance(value, float) and value != value:  # NaN has no JSON or feed form
        raise ValueProblem(INVALID_VALUE, f"attribute {attribute}: NaN is not a number")
    size = len(value_text(value).encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise ValueProblem(
            VALUE_TOO_LONG, f"attribute {attribute}: value is {size} bytes, Personalization "
            f"takes at most {MAX_VALUE_BYTES} (add a truncate conversion in the mapping)")
    return value


def record_key(record: Mapping[str, Any]) -> str:
    """The CRM Id naming a record in reports; a record without one is still reported."""
    value = record.get("Id")
    return str(value) if value not in (None, "") else "(no Id)"


def campaign_name(record: Mapping[str, Any]) -> str | None:
    """`Campaign: {Name}` as the tap emits it, or a flattened `CampaignName`."""
    nested = record.get("Campaign")
    if isinstance(nested, Mapping) and nested.get("Name"):
        return str(nested["Name"])
    flat = record.get("CampaignName")
    return str(flat) if flat else None


class RecordMapper:
    """Turns the records of mapped streams into decisions, per the reverse mapping."""

    def __init__(self, mapping: ReverseMapping, identity_attributes: tuple[str, ...]) -> None:
        self.mapping = mapping
        self.identity_attributes = identity_attributes

    def is_mapped(self, stream: str) -> bool:
        segments = self.mapping.segments
        return bool(self.mapping.for_stream(stream)) or (
            segments is not None and segments.stream == stream
        )

    def objects_of(self, stream: str) -> list[str]:
        """Names of the objects (and `segments`) a stream feeds, as the report counts them."""
        names = [obj.sobject for obj in self.mapping.for_stream(stream)]
        segments = self.mapping.segments
        if segments is not None and segments.stream == stream:
            names.append(SEGMENTS_OBJECT)
        return names

    def decide(self, stream: str, record: Mapping[str, Any]) -> list[Decision]:
        """One decision per object the stream feeds (and one for segments, if it feeds them)."""
        decisions: list[Decision] = [
            self._object_decision(stream, obj, record) for obj in self.mapping.for_stream(stream)
        ]
        segments = self.mapping.segments
        if segments is not None and segments.stream == stream:
            decisions.append(self._segment_decision(stream, record))
        return decisions

    def _object_decision(
        self, stream: str, obj: ReverseObjectMapping, record: Mapping[str, Any]
    ) -> Decision:
        key = record_key(record)
        if record.get("IsDeleted") is True:
            return Skip(stream, obj.sobject, key, SKIP_DELETED)
        if obj.skip_converted and record.get("IsConverted") is True:
            return Skip(stream, obj.sobject, key, SKIP_CONVERTED)
        try:
            values = self._values(obj, record)
        except ValueProblem as problem:
            return Refusal(stream, obj.sobject, key, REJECTED, problem.reason, str(problem))
        if obj.target == "account":
            return self._account(stream, obj, record, key, values)
        identities: list[tuple[str, str]] = []
        normalizers: list[tuple[str, ...]] = []
        for rule in obj.identity:
            value = rule.key(record)
            if rule.attribute not in self.identity_attributes or value is None:
                continue  # an unknown attribute is refused at start-up
            try:
                checked_value(rule.attribute, value)
            except ValueProblem as problem:
                return Refusal(stream, obj.sobject, key, REJECTED, problem.reason, str(problem))
            identities.append((rule.attribute, value))
            normalizers.append(tuple(rule.normalize))
        if not identities:
            sources = ", ".join(rule.source for rule in obj.identity)
            return Refusal(stream, obj.sobject, key, UNMATCHED, NO_IDENTITY,
                           f"no identity value: {sources} are all empty")
        return UserChange(stream, obj.sobject, key, tuple(identities), values,
                          tuple(normalizers))

    def _values(self, obj: ReverseObjectMapping, record: Mapping[str, Any]) -> dict[str, Any]:
        values, problems = obj.map_record(record)
        if problems:
            raise ValueProblem(CONVERSION_FAILED, "; ".join(problems))
        by_name = {mapping.target: mapping for mapping in obj.attributes}
        checked: dict[str, Any] = {}
        for attribute, value in values.items():
            if not ATTRIBUTE_NAME.match(attribute):
                raise ValueProblem(
                    INVALID_ATTRIBUTE_NAME,
                    f"attribute name {attribute!r} (objects.{obj.sobject}.attributes in the "
                    "mapping file) is not accepted by Personalization: use letters, digits "
                    "and _, starting with a letter, at most 64 characters")
            value = checked_value(attribute, value)
            if value is None:  # blanks count as missing: the field's null policy decides
                mapping = by_name[attribute]
                if mapping.has_default:
                    value = checked_value(attribute, mapping.default)
                elif mapping.null_policy != NULL_CLEAR:
                    continue
            checked[attribute] = value
        return checked

    def _account(
        self, stream: str, obj: ReverseObjectMapping, record: Mapping[str, Any], key: str,
        values: dict[str, Any],
    ) -> Decision:
        account_id = dict(obj.identities(record)).get(ACCOUNT_ID_ATTRIBUTE)
        if account_id is None:
            source = next(r.source for r in obj.identity if r.attribute == ACCOUNT_ID_ATTRIBUTE)
            return Refusal(stream, obj.sobject, key, UNMATCHED, NO_IDENTITY,
                           f"no identity value: {source} is empty")
        if account_id != account_id.lower() or any(ch.isspace() for ch in account_id) \
                or len(account_id) > 120:
            return Refusal(
                stream, obj.sobject, key, REJECTED, INVALID_ACCOUNT_ID,
                f"account id {account_id!r} is not a Personalization account id (lowercase, "
                "no spaces, at most 120 characters); add normalize: [lowercase] or fix the "
                "CRM value")
        return AccountChange(stream, obj.sobject, key, account_id, values)

    def _segment_decision(self, stream: str, record: Mapping[str, Any]) -> Decision:
        segments = self.mapping.segments
        assert segments is not None
        key = record_key(record)
        campaign_id = str(record.get("CampaignId") or "")
        name = campaign_name(record)
        if not campaign_id and name is None:
            return Refusal(stream, SEGMENTS_OBJECT, key, REJECTED, INVALID_RECORD,
                           "campaign member without CampaignId or Campaign.Name")
        segment = segments.segment_for(campaign_id, name)
        if segment is None:
            return Skip(stream, SEGMENTS_OBJECT, key, SKIP_CAMPAIGN_NOT_MAPPED)
        identities = tuple(
            (attribute, str(record[field_name]))
            for field_name, attribute in MEMBER_IDENTITIES
            if record.get(field_name) and attribute in self.identity_attributes
        )
        if not identities:
            return Refusal(stream, SEGMENTS_OBJECT, key, UNMATCHED, NO_IDENTITY,
                           "no identity value: ContactId and LeadId are both empty")
        update = "Remove" if record.get("IsDeleted") is True else "Add"
        return SegmentChange(stream, key, segment, update, identities)


def identity_lookups(
    mapping: ReverseMapping, identity_attributes: tuple[str, ...]
) -> list[tuple[str, tuple[str, ...]]]:
    """Every (attribute, normalisers) pair a user is looked up by: the user objects' identity
    rules, plus the plain CRM ids campaign members name their person by."""
    lookups: dict[tuple[str, tuple[str, ...]], None] = {}
    for obj in mapping.objects:
        if obj.enabled and obj.target == "user":
            lookups.update(((rule.attribute, tuple(rule.normalize)), None)
                           for rule in obj.identity if rule.attribute in identity_attributes)
    if mapping.segments is not None:
        lookups.update(((attribute, ()), None) for _, attribute in MEMBER_IDENTITIES
                       if attribute in identity_attributes)
    return list(lookups)


def mapping_problems(mapping: ReverseMapping, identity_attributes: tuple[str, ...]) -> list[str]:
    """What this target cannot do with a (schema-valid) mapping, one line per problem."""
    problems = []
    user_identities: dict[str, None] = {}
    for obj in mapping.objects:
        if not obj.enabled:
            continue
        if obj.target == "user":
            for rule in obj.identity:
                if rule.attribute not in identity_attributes:
                    problems.append(
                        f"mapping_file {mapping.path}: objects.{obj.sobject}.identity names "
                        f"'{rule.attribute}', which is not an identity attribute of the dataset "
                        f"({', '.join(identity_attributes)}); use one of them or add it to "
                        "setting identity_attributes")
                user_identities[rule.attribute] = None
    if len(user_identities) > 5:
        problems.append(
            f"mapping_file {mapping.path}: user objects use {len(user_identities)} identity "
            "attributes together; a user feed takes at most 5 identity columns")
    return problems
