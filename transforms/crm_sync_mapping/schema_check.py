"""Structural validation against mapping.schema.json, with messages written for people.

The same schema drives editors (through the `# yaml-language-server: $schema=` comment),
so structure is defined once. jsonschema's own messages ("Additional properties are not
allowed ('feilds' was unexpected)") are rewritten into "unknown key 'feilds' under
objects.Contact (did you mean 'fields'?)", placed at the line of the offending key.
Schema nodes may carry `x-hint` (appended to the message) and `x-kind` (what a value is).
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from crm_sync_mapping.document import Document, Path_, describe_path
from crm_sync_mapping.paths import PathError, parse_path

_TYPE_NAMES = {
    "string": "text", "integer": "a whole number", "number": "a number",
    "boolean": "true or false", "object": "a map (key: value)", "array": "a list",
    "null": "empty",
}


@cache
def mapping_schema() -> dict[str, Any]:
    """The JSON Schema shipped with the package."""
    text = resources.files("crm_sync_mapping").joinpath("mapping.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(mapping_schema())


def check_schema(document: Document) -> None:
    """Add one problem per schema violation to the document."""
    for error in _validator().iter_errors(document.data):
        _report(error, document)


def suggest(word: str, choices: Any) -> str:
    """' (did you mean 'x'?)' when a choice is close to the word, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _TYPE_NAMES["object" if isinstance(value, dict) else "array"]
    return repr(value)


def _report(error: ValidationError, document: Document) -> None:
    path: Path_ = tuple(error.absolute_path)
    where = describe_path(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = f"; {schema['x-hint']}" if "x-hint" in schema else ""
    kind = error.validator
    value = error.instance

    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        for extra in sorted(set(value) - set(allowed)):
            tip = suggest(extra, allowed) or f" (allowed: {', '.join(allowed)})"
            document.problem(
                document.key_at((*path, extra)), f"unknown key '{extra}' under {where}{tip}"
            )
        return
    if kind == "required":
        missing = [name for name in error.validator_value if name not in value]
        for name in missing:
            document.problem(
                document.key_at(path), f"missing required key '{name}' under {where}{hint}"
            )
        return
    if kind == "propertyNames":
        document.problem(document.key_at((*path, value)), (
            f"'{value}' under {where} is not a valid name (letters, digits and _, "
            "starting with a letter)"
        ))
        return
    document.problem(document.value_at(path), _value_message(error, where, schema, hint))


def _value_message(error: ValidationError, where: str, schema: dict[str, Any], hint: str) -> str:
    kind = error.validator
    value = error.instance
    expected = error.validator_value
    if kind == "type":
        names = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        return f"{where} must be {wanted}, got {_shown(value)}{hint}"
    if kind == "enum":
        return _enum_message(error, where)
    if kind == "const":
        if error.absolute_path and error.absolute_path[-1] == "version":
            return f"unsupported version {_shown(value)}: this loader reads version {expected}"
        return f"{where} must be {expected!r}, got {_shown(value)}"
    if kind == "pattern":
        return _pattern_message(value, where, schema)
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
                 "exclusiveMaximum": "less than"}[kind]
        return f"{where} must be {words} {expected}, got {_shown(value)}{hint}"
    if kind in ("minProperties", "minItems", "minLength"):
        return f"{where} must not be empty{hint}"
    if kind == "maxProperties":
        return f"{where} has {len(value)} keys where {expected} is allowed{hint}"
    return f"{where}: {error.message}{hint}"


def _enum_message(error: ValidationError, where: str) -> str:
    value = error.instance
    choices = [str(choice) for choice in error.validator_value]
    path = list(error.absolute_path)
    parent = path[-2] if len(path) >= 2 else None
    if parent == "convert":
        thing = "conversion"
        extra = "; or a map: {round: n}, {truncate: n}, {join: sep}, {value_map: {...}}"
    elif parent == "normalize":
        thing = "normaliser"
        extra = ""
    else:
        return (f"{where} must be one of {', '.join(choices)}, got {_shown(value)}"
                f"{suggest(value, choices)}")
    return (f"unknown {thing} {_shown(value)} in {where}{suggest(value, choices)}; "
            f"known: {', '.join(choices)}{extra}")


def _pattern_message(value: Any, where: str, schema: dict[str, Any]) -> str:
    kind = schema.get("x-kind")
    if kind == "source path":
        try:
            parse_path(value)
        except PathError as problem:
            return f"{where}: {problem}"
    if kind == "CRM field":
        return (f"{where}: '{value}' is not a CRM field (letters, digits and _, or a "
                "relationship path such as Account.Name)")
    return (f"{where}: '{value}' is not a valid name (letters, digits and _, starting "
            "with a letter)")
