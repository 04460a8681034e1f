"""Checks that need more than one value at a time, which JSON Schema cannot express.

They run after the schema check on whatever parts are well-formed, so one run reports
every problem: a file with a typo in Contact and a bad reference in Lead shows both.
"""

from __future__ import annotations

from typing import Any

from crm_sync_mapping.crm_field import check_crm_fields
from crm_sync_mapping.document import Document, Path_, describe_path
from crm_sync_mapping.paths import PathError, parse_path
from crm_sync_mapping.schema_check import suggest

MAX_IDENTITY_RULES = 5  # Personalization feeds take at most 5 identity columns


def _items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_semantics(document: Document) -> None:
    """Add cross-field problems of either direction to the document."""
    data = document.data
    if not isinstance(data, dict):
        return
    if data.get("direction") == "personalization-to-crm":
        _check_forward(data, document)
    elif data.get("direction") == "crm-to-personalization":
        _check_reverse(data, document)


def _projects_list(source: Any) -> bool:
    try:
        return isinstance(source, str) and parse_path(source).projects_list
    except PathError:
        return False  # already reported by the schema check


def _check_forward(data: dict[str, Any], document: Document) -> None:
    objects = data.get("objects")
    names = [name for name, _ in _items(objects)]
    for position, (name, spec) in enumerate(_items(objects)):
        if not isinstance(spec, dict):
            continue
        path: Path_ = ("objects", name)
        _check_fields(spec, path, document)
        _check_match(spec, path, document)
        _check_write(spec, path, document)
        check_crm_fields(spec, path, document)
        _check_only_unmatched_by(spec, path, names[:position], objects, document)
        key = spec.get("key")
        if _projects_list(key):
            document.problem(document.value_at((*path, "key")), (
                f"{describe_path((*path, 'key'))}: '{key}' gives a list; the key must be one "
                "value per record (use list[0].field)"
            ))


def _check_fields(spec: dict[str, Any], path: Path_, document: Document) -> None:
    seen: dict[str, str] = {}
    groups = [("fields", _items(spec.get("fields")))]
    write = spec.get("write")
    if isinstance(write, dict):
        groups.append(("create_defaults", _items(write.get("create_defaults"))))
    for group, entries in groups:
        base = (*path, group) if group == "fields" else (*path, "write", group)
        for target, mapping in entries:
            lowered = target.lower()
            if lowered in seen:
                document.problem(document.key_at((*base, target)), (
                    f"CRM field '{target}' under {describe_path(base)} is already mapped as "
                    f"'{seen[lowered]}' (Salesforce field names ignore case): keep one"
                ))
            else:
                seen[lowered] = target
            if isinstance(mapping, dict):
                _check_list_source(mapping, (*base, target), document)


def _check_list_source(mapping: dict[str, Any], path: Path_, document: Document) -> None:
    """A projected list must be joined: a CRM field holds one value."""
    convert = _list(mapping.get("convert"))
    joined = any(isinstance(step, dict) and "join" in step for step in convert)
    if _projects_list(mapping.get("source")) and not joined:
        document.problem(document.value_at((*path, "source")), (
            f"{describe_path((*path, 'source'))}: '{mapping['source']}' gives a list; add "
            "{join: ';'} to convert so it fits one field"
        ))


def _check_match(spec: dict[str, Any], path: Path_, document: Document) -> None:
    rules = _list(spec.get("match"))
    for index, rule in enumerate(rules):
        if isinstance(rule, dict) and _projects_list(rule.get("source")):
            at = (*path, "match", index, "source")
            document.problem(document.value_at(at), (
                f"{describe_path(at)}: '{rule['source']}' gives a list; a match rule "
                "compares one value"
            ))
    write = spec.get("write")
    mode = write.get("mode", "update") if isinstance(write, dict) else "update"
    enabled = [rule for rule in rules if isinstance(rule, dict) and rule.get("enabled", True)]
    if mode == "update" and spec.get("enabled", True) and not enabled:
        document.problem(document.key_at(path), (
            f"{describe_path(path)} has no enabled match rule: with write mode update no "
            "record could be found to update (add a match rule or use mode upsert)"
        ))


def _check_write(spec: dict[str, Any], path: Path_, document: Document) -> None:
    write = spec.get("write")
    if not isinstance(write, dict) or write.get("mode") != "upsert":
        return
    external_id = write.get("external_id")
    fields = spec.get("fields")
    if (
        isinstance(external_id, str)
        and isinstance(fields, dict)
        and external_id.lower() not in {name.lower() for name in fields}
    ):
        at = (*path, "write", "external_id")
        document.problem(document.value_at(at), (
            f"{describe_path(at)} '{external_id}' is not mapped under "
            f"{describe_path((*path, 'fields'))}: upsert needs its value in every record"
        ))


def _check_only_unmatched_by(
    spec: dict[str, Any], path: Path_, earlier: list[str], objects: Any, document: Document
) -> None:
    other = spec.get("only_unmatched_by")
    if not isinstance(other, str):
        return
    at = (*path, "only_unmatched_by")
    where = document.value_at(at)
    names = [name for name, _ in _items(objects)]
    if other == path[-1]:
        document.problem(where, f"{describe_path(at)} cannot name the object itself")
    elif other not in names:
        document.problem(where, (
            f"{describe_path(at)} names '{other}', which is not under objects"
            f"{suggest(other, names)}"
        ))
    elif other not in earlier:
        document.problem(where, (
            f"{describe_path(at)} names '{other}', which comes later in the file: move "
            f"{other} above {path[-1]} (objects are matched in file order)"
        ))
    else:
        other_stream = objects[other].get("stream") if isinstance(objects[other], dict) else None
        if other_stream is not None and other_stream != spec.get("stream"):
            document.problem(where, (
                f"{describe_path(at)} names '{other}', fed by stream '{other_stream}', but "
                f"{path[-1]} reads stream '{spec.get('stream')}': both must read the same stream"
            ))


def _check_reverse(data: dict[str, Any], document: Document) -> None:
    for name, spec in _items(data.get("objects")):
        if not isinstance(spec, dict):
            continue
        path: Path_ = ("objects", name)
        check_crm_fields(spec, path, document, forward=False)
        rules = [rule for rule in _list(spec.get("identity")) if isinstance(rule, dict)]
        attributes = [rule.get("attribute") for rule in rules]
        if len(rules) > MAX_IDENTITY_RULES:
            document.problem(document.key_at((*path, "identity")), (
                f"{describe_path((*path, 'identity'))} has {len(rules)} rules; Personalization "
                f"feeds take at most {MAX_IDENTITY_RULES} identity columns"
            ))
        for index, attribute in enumerate(attributes):
            if attribute in attributes[:index]:
                at = (*path, "identity", index, "attribute")
                document.problem(document.value_at(at), (
                    f"{describe_path(at)}: identity attribute '{attribute}' is listed twice"
                ))
        if spec.get("target") == "account" and rules and "accountId" not in attributes:
            document.problem(document.key_at((*path, "identity")), (
                f"{describe_path((*path, 'identity'))}: target account needs an identity rule "
                "with attribute accountId (account feeds are keyed by it)"
            ))
    segments = data.get("segments")
    if isinstance(segments, dict):
        seen: set[str] = set()
        for index, entry in enumerate(_list(segments.get("campaigns"))):
            campaign = entry.get("campaign") if isinstance(entry, dict) else None
            if not isinstance(campaign, str):
                continue
            if campaign in seen:
                at = ("segments", "campaigns", index, "campaign")
                document.problem(document.value_at(at), (
                    f"{describe_path(at)}: campaign '{campaign}' is listed twice; give each "
                    "campaign one segment"
                ))
            seen.add(campaign)
