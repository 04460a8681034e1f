"""`crm_field:` blocks: how a custom field the mapping writes is defined in Salesforce.

The sync never creates fields itself (that needs "Modify All Data"); instead
`salesforce-crm-metadata` turns these declarations into a metadata package an administrator
deploys. Types therefore come from what the file declares, never from guessing at values,
and everything Salesforce would refuse on deploy is refused here first, with file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm_sync_mapping.document import Document, Path_, describe_path

FIELD_TYPES = ("Text", "Number", "DateTime", "Date", "Checkbox", "Picklist", "LongTextArea",
               "Email", "Url")

# Which keys mean something for which type; anything else is a mistake worth naming.
APPLIES_TO: dict[str, frozenset[str]] = {
    "length": frozenset({"Text", "LongTextArea"}),
    "precision": frozenset({"Number"}),
    "scale": frozenset({"Number"}),
    "visible_lines": frozenset({"LongTextArea"}),
    "values": frozenset({"Picklist"}),
    "restricted": frozenset({"Picklist"}),
    "external_id": frozenset({"Text", "Number", "Email"}),
    "unique": frozenset({"Text", "Number", "Email"}),
    "default_value": frozenset({"Checkbox"}),
}
REQUIRED_BY_TYPE: dict[str, tuple[str, ...]] = {
    "Text": ("length",),
    "Number": ("precision",),
    "LongTextArea": ("length",),
}
LENGTH_RANGE = {"Text": (1, 255), "LongTextArea": (256, 131_072)}
DEFAULT_VISIBLE_LINES = 3
MAX_NAME = 40  # characters before the __c suffix (so a label made from it fits 40 too)

# The kind of value the last typing conversion produces, and the field types that take it.
_KIND_OF_CONVERSION = {
    "number": "number", "round": "number", "integer": "number",
    "epoch_ms_to_datetime": "datetime", "iso_datetime": "datetime", "epoch_ms_to_date": "date",
    "string": "text", "trim": "text", "lowercase": "text", "uppercase": "text",
    "truncate": "text", "join": "text",
}
_TYPES_FOR_KIND = {
    "number": frozenset({"Number"}),
    "datetime": frozenset({"DateTime"}),
    "date": frozenset({"Date", "DateTime"}),
    "text": frozenset({"Text", "LongTextArea", "Email", "Url", "Picklist"}),
}
Report = Callable[[str | None, str], None]  # (key or None for the block, message)
_NAME = re.compile(r"^[A-Za-z](?!.*__)[A-Za-z0-9_]*[A-Za-z0-9]$|^[A-Za-z]$")


@dataclass(frozen=True)
class CrmField:
    """A custom field definition, complete: picklist values are filled from the value_map."""

    type: str
    label: str
    description: str | None = None
    help_text: str | None = None
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    visible_lines: int | None = None
    values: tuple[str, ...] = ()
    restricted: bool = True
    external_id: bool = False
    unique: bool = False
    default_value: bool = False


def default_label(name: str) -> str:
    """`Personalization_Engagement_Score__c` -> `Personalization Engagement Score`."""
    return name.removesuffix("__c").replace("_", " ").strip()


def value_map_outputs(convert: Any) -> list[str]:
    """Values the `value_map` conversions of a `convert:` list write, in file order, once each."""
    produced: list[str] = []
    for step in convert if isinstance(convert, list) else []:
        if not isinstance(step, dict) or not isinstance(step.get("value_map"), dict):
            continue
        outputs = list(step["value_map"].values())
        if step.get("default") not in (None, "keep"):
            outputs.append(step["default"])
        for value in outputs:
            if value is not None and str(value) not in produced:
                produced.append(str(value))
    return produced


def build_crm_field(name: str, spec: dict[str, Any] | None, convert: Any = ()) -> CrmField | None:
    """The model of a checked `crm_field:` block (None when the field declares none)."""
    if spec is None:
        return None
    kind = spec["type"]
    values = tuple(spec.get("values") or value_map_outputs(convert))
    return CrmField(
        type=kind,
        label=spec.get("label") or default_label(name),
        description=spec.get("description"),
        help_text=spec.get("help_text"),
        length=spec.get("length"),
        precision=spec.get("precision"),
        scale=spec.get("scale", 0) if kind == "Number" else None,
        visible_lines=spec.get("visible_lines", DEFAULT_VISIBLE_LINES)
        if kind == "LongTextArea" else None,
        values=values if kind == "Picklist" else (),
        restricted=bool(spec.get("restricted", True)),
        external_id=bool(spec.get("external_id", False)),
        unique=bool(spec.get("unique", False)),
        default_value=bool(spec.get("default_value", False)),
    )


# -- checks (run after the schema check, on whatever is well-formed) ----------------------


def check_crm_fields(spec: dict[str, Any], path: Path_, document: Document, *,
                     forward: bool = True) -> None:
    """Every `crm_field:` of one object.

    Forward: under fields, create_defaults and match rules (the CRM field is the key or
    `field`). Reverse: under identity rules and attributes (the CRM field is `source`); the
    conversions there shape Personalization values, so they say nothing about the field.
    """
    declared: dict[str, tuple[Path_, dict[str, Any]]] = {}
    write = spec.get("write")
    external_id = write.get("external_id") if isinstance(write, dict) and forward else None
    found = _declarations(spec, path) if forward else _reverse_declarations(spec, path)
    for at, target, mapping in found:
        block = mapping.get("crm_field")
        if not isinstance(block, dict):
            continue
        field_path = (*at, "crm_field")
        _check_block(target, block, mapping if forward else {}, field_path, document)
        if isinstance(external_id, str) and target.lower() == external_id.lower():
            _check_external_id(block, field_path, document)
        earlier = declared.get(target.lower())
        if earlier is not None and earlier[1] != block:
            document.problem(document.key_at(field_path), (
                f"{describe_path(field_path)} differs from the crm_field of '{target}' at "
                f"{describe_path(earlier[0])}: declare the field once (or identically)"
            ))
        declared.setdefault(target.lower(), (field_path, block))


def _check_external_id(block: dict[str, Any], at: Path_, document: Document) -> None:
    """Upsert needs an External ID field, which only some types can be."""
    kind = block.get("type")
    if kind in FIELD_TYPES and kind not in APPLIES_TO["external_id"]:
        document.problem(document.value_at((*at, "type")), (
            f"{describe_path((*at, 'type'))}: write.external_id must be an External ID "
            f"field, which a {kind} field cannot be (use Text, Number or Email)"
        ))
    elif block.get("external_id") is False:
        document.problem(document.value_at((*at, "external_id")), (
            f"{describe_path((*at, 'external_id'))}: this field is write.external_id, so it "
            "is an External ID field: remove 'external_id: false'"
        ))


def _declarations(spec: dict[str, Any], path: Path_) -> list[tuple[Path_, str, dict[str, Any]]]:
    found: list[tuple[Path_, str, dict[str, Any]]] = []
    fields = spec.get("fields")
    if isinstance(fields, dict):
        found += [((*path, "fields", name), name, value) for name, value in fields.items()
                  if isinstance(value, dict)]
    write = spec.get("write")
    defaults = write.get("create_defaults") if isinstance(write, dict) else None
    if isinstance(defaults, dict):
        found += [((*path, "write", "create_defaults", name), name, value)
                  for name, value in defaults.items() if isinstance(value, dict)]
    match = spec.get("match")
    for index, rule in enumerate(match if isinstance(match, list) else []):
        if isinstance(rule, dict) and isinstance(rule.get("field"), str):
            found.append(((*path, "match", index), rule["field"], rule))
    return found


def _reverse_declarations(spec: dict[str, Any],
                          path: Path_) -> list[tuple[Path_, str, dict[str, Any]]]:
    found: list[tuple[Path_, str, dict[str, Any]]] = []
    identity = spec.get("identity")
    for index, rule in enumerate(identity if isinstance(identity, list) else []):
        if isinstance(rule, dict) and isinstance(rule.get("source"), str):
            found.append(((*path, "identity", index), rule["source"], rule))
    attributes = spec.get("attributes")
    if isinstance(attributes, dict):
        found += [((*path, "attributes", name), value["source"], value)
                  for name, value in attributes.items()
                  if isinstance(value, dict) and isinstance(value.get("source"), str)]
    return found


def _check_block(name: str, block: dict[str, Any], mapping: dict[str, Any], at: Path_,
                 document: Document) -> None:
    where = describe_path(at)

    def problem(key: str | None, message: str) -> None:
        position = document.value_at((*at, key)) if key else document.key_at(at)
        document.problem(position, f"{where}{'.' + key if key else ''}: {message}")

    if "." in name:
        problem(None, f"'{name}' is a field of a related object; declare crm_field where "
                      "that object's own field is mapped")
        return
    if not name.endswith("__c"):
        problem(None, f"'{name}' is a standard field; crm_field describes custom fields "
                      "(names ending in __c) only: remove it")
        return
    bare = name.removesuffix("__c")
    if len(bare) > MAX_NAME or not _NAME.match(bare):
        problem(None, f"'{name}' is not a valid custom field name: at most {MAX_NAME} "
                      "characters before __c, starting with a letter, no double underscore, "
                      "not ending with an underscore")
    kind = block.get("type")
    if kind not in FIELD_TYPES:
        return  # reported by the schema check
    for key in sorted(set(block) & set(APPLIES_TO)):
        if kind not in APPLIES_TO[key]:
            problem(key, f"does not apply to type {kind} (only to "
                         f"{', '.join(sorted(APPLIES_TO[key]))})")
    for key in REQUIRED_BY_TYPE.get(kind, ()):
        if key not in block:
            problem(None, f"type {kind} needs '{key}'" + _range_hint(kind, key))
    _check_sizes(kind, block, problem)
    if kind == "Picklist":
        _check_picklist(block, mapping, problem)
    _check_conversions(kind, block, mapping, problem)
    if "default" in mapping:
        _check_default(kind, block, mapping["default"], (*at[:-1], "default"), document)


def _check_default(kind: str, block: dict[str, Any], default: Any, at: Path_,
                   document: Document) -> None:
    """A `default:` is sent as is in place of a missing value: it must fit the field."""
    problem: str | None = None
    length = block.get("length")
    if isinstance(default, str) and isinstance(length, int) and len(default) > length:
        problem = (f"is {len(default)} characters, more than the field's length {length}: "
                   "every record would be refused with it")
    elif kind in _TYPES_FOR_KIND["number"] and default is not None and (
            isinstance(default, bool) or not isinstance(default, int | float)):
        problem = f"is {type(default).__name__}, but a {kind} field takes a number"
    if problem is not None:
        document.problem(document.value_at(at), f"{describe_path(at)}: {problem}")


def _range_hint(kind: str, key: str) -> str:
    if key == "length":
        low, high = LENGTH_RANGE[kind]
        return f" ({low}-{high})"
    return " (1-18 digits in total)" if key == "precision" else ""


def _check_sizes(kind: str, block: dict[str, Any], problem: Report) -> None:
    length = block.get("length")
    if kind in LENGTH_RANGE and isinstance(length, int):
        low, high = LENGTH_RANGE[kind]
        if not low <= length <= high:
            problem("length", f"a {kind} field holds {low} to {high} characters, got {length}")
    precision, scale = block.get("precision"), block.get("scale")
    if kind == "Number" and isinstance(precision, int) and isinstance(scale, int) \
            and scale > precision:
        problem("scale", f"{scale} decimal places do not fit a precision of {precision} digits "
                         "(precision counts all digits, scale the ones after the point)")


def _check_picklist(block: dict[str, Any], mapping: dict[str, Any], problem: Report) -> None:
    produced = value_map_outputs(mapping.get("convert"))
    values = block.get("values")
    if not isinstance(values, list):
        if not produced:
            problem(None, "type Picklist needs 'values' (or a value_map under convert to take "
                          "them from)")
        return
    listed = {str(value) for value in values}
    if len(listed) != len(values):
        problem("values", "lists a value twice")
    missing = [value for value in produced if value not in listed]
    if missing:
        problem("values", f"the value_map writes {', '.join(map(repr, missing))}, which "
                          "values does not list: add them or change the value_map")


def _check_conversions(kind: str, block: dict[str, Any], mapping: dict[str, Any],
                       problem: Report) -> None:
    convert = mapping.get("convert")
    steps = convert if isinstance(convert, list) else []
    produces: str | None = None
    for step in steps:
        name = None
        if isinstance(step, str):
            name = step
        elif isinstance(step, dict) and step:
            name = "value_map" if "value_map" in step else next(iter(step))
        if name == "value_map":
            produces = "text"
        elif isinstance(name, str):
            produces = _KIND_OF_CONVERSION.get(name, produces)
        if isinstance(step, dict) and isinstance(step.get("truncate"), int) \
                and isinstance(block.get("length"), int) and step["truncate"] > block["length"]:
            problem("length", f"{{truncate: {step['truncate']}}} under convert keeps more "
                              f"characters than the field's length {block['length']}")
    if produces is not None and kind not in _TYPES_FOR_KIND[produces]:
        allowed = "/".join(sorted(_TYPES_FOR_KIND[produces]))
        problem("type", f"the conversions write {produces} values, which a {kind} field does "
                        f"not take (use {allowed})")
