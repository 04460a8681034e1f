"""The JSON Schema that editors use agrees with the loader and ships with the package."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from crm_sync_mapping import check_text, mapping_schema
from crm_sync_mapping.paths import PathError, parse_path
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = [
    ROOT / "transforms" / "personalization-to-crm.yml",
    ROOT / "transforms" / "crm-to-personalization.yml",
    *sorted((ROOT / "tests" / "fixtures" / "mappings" / "valid").glob("*.yml")),
]
SCHEMA_COMMENT = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def test_schema_is_package_data_and_a_valid_2020_12_schema() -> None:
    shipped = resources.files("crm_sync_mapping").joinpath("mapping.schema.json")
    assert shipped.is_file()
    Draft202012Validator.check_schema(mapping_schema())


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda path: path.name)
def test_mapping_files_point_editors_at_the_schema_and_validate(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    match = SCHEMA_COMMENT.search(text)
    assert match is not None
    target = (path.parent / match.group(1)).resolve()
    assert target == (ROOT / "transforms" / "crm_sync_mapping" / "mapping.schema.json")
    data = YAML(typ="safe").load(text)
    assert list(Draft202012Validator(mapping_schema()).iter_errors(data)) == []
    assert check_text(text, str(path)).problems == []


@pytest.mark.parametrize("path", [
    "id", "attributes.plan", "segmentMembership[].name", "list[0].field", "a-b.$c",
    "a..b", "a[x]", "1a", "a b", "a.", "[0].x", "a[]b",
])
def test_schema_path_pattern_agrees_with_the_parser(path: str) -> None:
    pattern = mapping_schema()["$defs"]["sourcePath"]["pattern"]
    try:
        parse_path(path)
        parsed = True
    except PathError:
        parsed = False
    assert bool(re.search(pattern, path)) is parsed


def test_the_schema_reports_a_typo_like_an_editor_would() -> None:
    data = {"version": 1, "direction": "crm-to-personalization", "objects": {
        "Contact": {"stream": "contacts", "target": "user", "identity": [
            {"attribute": "emailAddress", "source": "Email"}], "atributes": {}}}}
    errors = list(Draft202012Validator(mapping_schema()).iter_errors(data))
    assert sorted(error.validator for error in errors) == ["additionalProperties", "required"]
