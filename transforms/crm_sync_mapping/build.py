"""Turn checked plain data into the immutable model (only called on a file without problems)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_sync_mapping.conversions import Conversion, map_key
from crm_sync_mapping.crm_field import build_crm_field
from crm_sync_mapping.model import (
    NULL_SKIP,
    FieldMapping,
    ForwardMapping,
    FuzzyRule,
    IdentityRule,
    MatchRule,
    ObjectMapping,
    ReverseMapping,
    ReverseObjectMapping,
    SegmentMapping,
    WriteMode,
)


def build_conversion(spec: str | dict[str, Any]) -> Conversion:
    """One `convert:` item: a name, or a one-key map with its argument."""
    if isinstance(spec, str):
        return Conversion(spec)
    if "value_map" in spec:
        pairs = tuple((map_key(key), value) for key, value in spec["value_map"].items())
        return Conversion(
            "value_map", value_map=pairs, default=spec.get("default"),
            has_default="default" in spec,
        )
    ((name, argument),) = spec.items()
    return Conversion(name, argument)


def build_field(target: str, spec: Any, null_policy: str, *, reverse: bool = False
                ) -> FieldMapping:
    """A field mapping; a bare scalar (only allowed in create_defaults) is a literal.

    In the reverse direction the CRM field is the source, and the conversions shape the
    Personalization value, so neither names nor fills the field's `crm_field`.
    """
    if not isinstance(spec, dict):
        return FieldMapping(target, "", (), null_policy, default=spec, has_default=True)
    return FieldMapping(
        target=target,
        source=spec["source"],
        conversions=tuple(build_conversion(step) for step in spec.get("convert", ())),
        null_policy=spec.get("null_policy", null_policy),
        default=spec.get("default"),
        has_default="default" in spec,
        crm_field=build_crm_field(spec["source"], spec.get("crm_field"))
        if reverse else build_crm_field(target, spec.get("crm_field"), spec.get("convert", ())),
    )


def _match_rule(spec: dict[str, Any]) -> MatchRule:
    fuzzy = None
    if "fuzzy" in spec:
        tie = spec["fuzzy"].get("tie_breaker") or {}
        fuzzy = FuzzyRule(
            min_score=float(spec["fuzzy"]["min_score"]),
            tie_breaker_source=tie.get("source"),
            tie_breaker_field=tie.get("field"),
        )
    return MatchRule(
        field=spec["field"],
        source=spec["source"],
        normalize=tuple(spec.get("normalize", ())),
        fuzzy=fuzzy,
        enabled=spec.get("enabled", True),
        crm_field=build_crm_field(spec["field"], spec.get("crm_field")),
    )


def _object(sobject: str, spec: dict[str, Any], null_policy: str) -> ObjectMapping:
    write = spec.get("write", {})
    return ObjectMapping(
        sobject=sobject,
        stream=spec["stream"],
        key=spec.get("key", "id"),
        enabled=spec.get("enabled", True),
        write=WriteMode(
            mode=write.get("mode", "update"),
            external_id=write.get("external_id"),
            create_defaults=tuple(
                build_field(target, value, null_policy)
                for target, value in write.get("create_defaults", {}).items()
            ),
        ),
        ambiguity=spec.get("ambiguity", "reject"),
        match=tuple(_match_rule(rule) for rule in spec.get("match", ())),
        fields=tuple(
            build_field(target, value, null_policy)
            for target, value in spec["fields"].items()
        ),
        only_unmatched_by=spec.get("only_unmatched_by"),
        exclude_converted=spec.get("exclude_converted", False),
    )


def build_forward(path: Path, data: dict[str, Any]) -> ForwardMapping:
    """The personalization-to-crm model."""
    null_policy = data.get("defaults", {}).get("null_policy", NULL_SKIP)
    return ForwardMapping(
        path=path,
        objects=tuple(
            _object(name, spec, null_policy) for name, spec in data["objects"].items()
        ),
    )


def _reverse_object(sobject: str, spec: dict[str, Any], null_policy: str) -> ReverseObjectMapping:
    return ReverseObjectMapping(
        sobject=sobject,
        stream=spec["stream"],
        target=spec["target"],
        identity=tuple(
            IdentityRule(rule["attribute"], rule["source"], tuple(rule.get("normalize", ())),
                         build_crm_field(rule["source"], rule.get("crm_field")))
            for rule in spec["identity"]
        ),
        attributes=tuple(
            build_field(name, value, null_policy, reverse=True)
            for name, value in spec["attributes"].items()
        ),
        skip_converted=spec.get("skip_converted", False),
        enabled=spec.get("enabled", True),
    )


def build_reverse(path: Path, data: dict[str, Any]) -> ReverseMapping:
    """The crm-to-personalization model."""
    null_policy = data.get("defaults", {}).get("null_policy", NULL_SKIP)
    segments = None
    if "segments" in data:
        segments = SegmentMapping(
            stream=data["segments"]["stream"],
            campaigns=tuple(
                (entry["campaign"], entry["segment"]) for entry in data["segments"]["campaigns"]
            ),
        )
    return ReverseMapping(
        path=path,
        objects=tuple(
            _reverse_object(name, spec, null_policy) for name, spec in data["objects"].items()
        ),
        segments=segments,
    )
