"""The loaded mapping: immutable objects the taps and targets work from.

The loader builds these only from a file that passed every check, so the code using them
never re-validates: a `FieldMapping` always has a readable path and known conversions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_sync_mapping.conversions import Conversion, ConversionError, InvalidValue, apply_all
from crm_sync_mapping.crm_field import CrmField
from crm_sync_mapping.normalize import apply_normalizers
from crm_sync_mapping.paths import SourcePath, parse_path

NULL_SKIP = "skip"    # a missing value is not sent: the CRM keeps what it has
NULL_CLEAR = "clear"  # a missing value is written as null: the CRM value is emptied


def _parsed(source: str) -> SourcePath | None:
    return parse_path(source) if source else None


@dataclass(frozen=True)
class FieldMapping:
    """One target field (CRM field or Personalization attribute) and where its value comes from.

    `source` is empty for a literal (a create default such as `Company: "[not provided]"`);
    `default` (when `has_default`) replaces a value that is missing after conversion.
    `crm_field` is the declared Salesforce definition of a custom target field, if any.
    """

    target: str
    source: str
    conversions: tuple[Conversion, ...] = ()
    null_policy: str = NULL_SKIP
    default: Any = None
    has_default: bool = False
    crm_field: CrmField | None = None
    _path: SourcePath | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path", _parsed(self.source))

    @property
    def is_literal(self) -> bool:
        """True for a fixed value that reads nothing from the record."""
        return self._path is None

    def value(self, record: Mapping[str, Any]) -> Any:
        """Extracted and converted value; `None` when the record has none.

        Raises ConversionError(target, reason) for a value the conversions reject.
        """
        if self._path is None:
            return self.default
        try:
            value = apply_all(self.conversions, self._path.read(record))
        except InvalidValue as problem:
            raise ConversionError(self.target, f"{problem} (source {self.source})") from None
        if (value is None or value == []) and self.has_default:
            return self.default
        return value


@dataclass(frozen=True)
class FuzzyRule:
    """Similarity matching for names that differ in more than formatting.

    `min_score` is on the 0-100 scale of rapidfuzz; the tie breaker compares another pair
    of values (e.g. the account's domain with Website) when several CRM records score alike.
    """

    min_score: float
    tie_breaker_source: str | None = None
    tie_breaker_field: str | None = None


@dataclass(frozen=True)
class MatchRule:
    """How an input record finds its CRM record: a CRM field equal to a normalised source value."""

    field: str
    source: str
    normalize: tuple[str, ...] = ()
    fuzzy: FuzzyRule | None = None
    enabled: bool = True
    crm_field: CrmField | None = None
    _path: SourcePath | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path", parse_path(self.source))

    def key(self, record: Mapping[str, Any]) -> str | None:
        """Normalised source value; `None` when missing or blank (the rule cannot match)."""
        assert self._path is not None
        return apply_normalizers(self._path.read(record), self.normalize)

    def normalize_crm(self, value: str | None) -> str | None:
        """The same normaliser applied to a CRM value, so both sides compare alike."""
        return apply_normalizers(value, self.normalize)


@dataclass(frozen=True)
class WriteMode:
    """update: only records found by matching; upsert: create the rest on `external_id`."""

    mode: str = "update"
    external_id: str | None = None
    create_defaults: tuple[FieldMapping, ...] = ()


def _map_fields(
    fields: tuple[FieldMapping, ...], record: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for mapping in fields:
        try:
            value = mapping.value(record)
        except ConversionError as error:
            problems.append(str(error))
            continue
        if value is not None:
            values[mapping.target] = value
        elif mapping.null_policy == NULL_CLEAR:
            values[mapping.target] = None
    return values, problems


@dataclass(frozen=True)
class ObjectMapping:
    """Everything about writing one CRM object from one stream."""

    sobject: str
    stream: str
    key: str = "id"
    enabled: bool = True
    write: WriteMode = field(default_factory=WriteMode)
    ambiguity: str = "reject"
    match: tuple[MatchRule, ...] = ()
    fields: tuple[FieldMapping, ...] = ()
    only_unmatched_by: str | None = None
    exclude_converted: bool = False
    _key_path: SourcePath | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key_path", parse_path(self.key))

    def record_key(self, record: Mapping[str, Any]) -> str | None:
        """The input record's identity for reports and rejects (the `key` path, as text)."""
        assert self._key_path is not None
        return apply_normalizers(self._key_path.read(record), ())

    def enabled_match(self) -> tuple[MatchRule, ...]:
        """Match rules in priority order, without the disabled ones."""
        return tuple(rule for rule in self.match if rule.enabled)

    def map_record(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """CRM values of one input record, and one problem text per field that failed.

        A missing value is left out (null policy skip) or written as None (clear); a field
        that failed conversion is left out and named in the problems, so the caller can
        reject the record with the reason.
        """
        return _map_fields(self.fields, record)

    def create_values(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Extra values for a record that upsert will create (its `create_defaults`)."""
        return _map_fields(self.write.create_defaults, record)

    def crm_fields(self) -> set[str]:
        """Every CRM field written or matched on (what preflight checks with describe)."""
        names = {mapping.target for mapping in self.fields}
        names.update(mapping.target for mapping in self.write.create_defaults)
        names.update(rule.field for rule in self.match)
        names.update(
            rule.fuzzy.tie_breaker_field
            for rule in self.match
            if rule.fuzzy is not None and rule.fuzzy.tie_breaker_field
        )
        if self.write.external_id:
            names.add(self.write.external_id)
        if self.exclude_converted:
            names.add("IsConverted")
        return names


    def crm_field(self, name: str) -> CrmField | None:
        """The declared definition of a custom field, wherever the object declares it."""
        lowered = name.lower()
        for mapping in (*self.fields, *self.write.create_defaults):
            if mapping.target.lower() == lowered and mapping.crm_field is not None:
                return mapping.crm_field
        for rule in self.match:
            if rule.field.lower() == lowered and rule.crm_field is not None:
                return rule.crm_field
        return None


@dataclass(frozen=True)
class ForwardMapping:
    """personalization-to-crm: which streams feed which CRM objects, and how."""

    path: Path
    objects: tuple[ObjectMapping, ...]

    def for_stream(self, stream: str) -> tuple[ObjectMapping, ...]:
        """Enabled objects fed by a stream, in file order (the order they are written in)."""
        return tuple(obj for obj in self.objects if obj.enabled and obj.stream == stream)

    def object(self, sobject: str) -> ObjectMapping:
        """The mapping of one CRM object, enabled or not; KeyError names the known ones."""
        for obj in self.objects:
            if obj.sobject == sobject:
                return obj
        known = ", ".join(obj.sobject for obj in self.objects)
        raise KeyError(f"{self.path}: no object {sobject!r} (the file maps {known})")

    def streams(self) -> set[str]:
        """Streams some enabled object reads."""
        return {obj.stream for obj in self.objects if obj.enabled}


@dataclass(frozen=True)
class IdentityRule:
    """How a CRM record finds its Personalization user or account: an identity attribute."""

    attribute: str
    source: str
    normalize: tuple[str, ...] = ()
    crm_field: CrmField | None = None
    _path: SourcePath | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path", parse_path(self.source))

    def key(self, record: Mapping[str, Any]) -> str | None:
        """Normalised identity value; `None` when the CRM record has none."""
        assert self._path is not None
        return apply_normalizers(self._path.read(record), self.normalize)


@dataclass(frozen=True)
class ReverseObjectMapping:
    """One CRM object read by the tap and sent to Personalization users or accounts."""

    sobject: str
    stream: str
    target: str
    identity: tuple[IdentityRule, ...]
    attributes: tuple[FieldMapping, ...]
    skip_converted: bool = False
    enabled: bool = True

    def crm_fields(self) -> set[str]:
        """Every CRM field to read: identity, attributes, and IsConverted when it matters."""
        names = {"Id"}
        names.update(rule.source for rule in self.identity)
        names.update(mapping.source for mapping in self.attributes if mapping.source)
        if self.skip_converted:
            names.add("IsConverted")
        return names

    def crm_field(self, name: str) -> CrmField | None:
        """The declared definition of a custom field the tap reads, if the file gives one."""
        lowered = name.lower()
        for rule in self.identity:
            if rule.source.lower() == lowered and rule.crm_field is not None:
                return rule.crm_field
        for mapping in self.attributes:
            if mapping.source.lower() == lowered and mapping.crm_field is not None:
                return mapping.crm_field
        return None

    def identities(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(attribute, value) pairs that identify the record, in priority order."""
        pairs = []
        for rule in self.identity:
            key = rule.key(record)
            if key is not None:
                pairs.append((rule.attribute, key))
        return pairs

    def map_record(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Attribute values of one CRM record, and one problem text per failed attribute."""
        return _map_fields(self.attributes, record)


@dataclass(frozen=True)
class SegmentMapping:
    """Campaign membership shared as segment membership: (campaign name or id, segment id)."""

    stream: str
    campaigns: tuple[tuple[str, str], ...]

    def segment_for(self, campaign_id: str, campaign_name: str | None) -> str | None:
        """Segment a campaign feeds, looked up by id first, then by name."""
        for campaign, segment in self.campaigns:
            if campaign == campaign_id:
                return segment
        for campaign, segment in self.campaigns:
            if campaign_name is not None and campaign == campaign_name:
                return segment
        return None


@dataclass(frozen=True)
class ReverseMapping:
    """crm-to-personalization: CRM objects → user/account attributes, campaigns → segments."""

    path: Path
    objects: tuple[ReverseObjectMapping, ...]
    segments: SegmentMapping | None = None

    def for_stream(self, stream: str) -> tuple[ReverseObjectMapping, ...]:
        """Enabled objects fed by a stream, in file order."""
        return tuple(obj for obj in self.objects if obj.enabled and obj.stream == stream)

    def object(self, sobject: str) -> ReverseObjectMapping | None:
        """The mapping of one CRM object, or None when the file does not read it."""
        for obj in self.objects:
            if obj.sobject == sobject:
                return obj
        return None
