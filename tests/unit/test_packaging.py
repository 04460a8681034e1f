"""The distributions install alone: what they carry, and what they must not depend on.

Each connector distribution carries the mapping library (tap-personalization/hatch_build.py,
docs/architecture.md "Packaging"), so it needs the library's own dependencies and never
names a distribution of ours that an index could answer instead (dependency confusion).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from crm_sync_mapping import load_forward_mapping, load_reverse_mapping
from crm_sync_mapping.examples import FORWARD, REVERSE, example_text, main
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ("tap-personalization", "target-salesforce-crm")
OURS = {"tap-personalization", "target-salesforce-crm", "crm-sync-mapping", "crm-sync-sandbox"}


def _project(folder: str) -> dict:
    return tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]


def test_packaged_examples_are_the_project_mapping_files() -> None:
    for name in (FORWARD, REVERSE):
        assert example_text(name) == (ROOT / "transforms" / name).read_text(encoding="utf-8"), (
            f"transforms/{name} changed: copy it to transforms/crm_sync_mapping/examples/")


@pytest.mark.parametrize("folder", CONNECTORS)
def test_a_connector_needs_the_mapping_library_dependencies_not_the_library(folder: str) -> None:
    needs = {Requirement(line).name: Requirement(line).specifier
             for line in _project(folder)["dependencies"]}
    for line in _project("transforms")["dependencies"]:
        library = Requirement(line)
        assert needs.get(library.name) == library.specifier, f"{folder} needs {library}"
    assert sorted(set(needs) & OURS) == [], "a name an index could answer instead of ours"


def test_both_connectors_build_with_the_same_hook() -> None:
    hooks = {(ROOT / folder / "hatch_build.py").read_text() for folder in CONNECTORS}
    assert len(hooks) == 1, "tap-personalization/hatch_build.py and target-salesforce-crm/'s differ"


def test_init_writes_examples_that_load_and_keeps_edits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "transforms"
    assert main(["init", str(target)], prog="salesforce-crm-mapping") == 0
    assert load_forward_mapping(target / FORWARD).objects
    assert load_reverse_mapping(target / REVERSE).objects
    assert (target / "mapping.schema.json").is_file()
    assert (target / FORWARD).read_text().startswith(
        "# yaml-language-server: $schema=./mapping.schema.json\n")

    (target / FORWARD).write_text("edited")
    assert main(["init", str(target)], prog="salesforce-crm-mapping") == 1
    assert (target / FORWARD).read_text() == "edited"
    assert "pass --force" in capsys.readouterr().err
    assert main(["init", str(target), "--force"], prog="salesforce-crm-mapping") == 0
    assert (target / FORWARD).read_text() != "edited"


def test_a_missing_mapping_file_says_how_to_get_the_examples(tmp_path: Path) -> None:
    from tap_personalization.target.target import load_mapping as reverse_mapping
    from target_salesforce_crm.target.target import TargetConfigError
    from target_salesforce_crm.target.target import load_mapping as forward_mapping

    with pytest.raises(TargetConfigError) as forward:
        forward_mapping(str(tmp_path / "transforms" / FORWARD))
    assert "`salesforce-crm-mapping init transforms`" in str(forward.value)
    assert "`meltano invoke target-salesforce-crm:init-mapping`" in str(forward.value)
    _, problems = reverse_mapping({"mapping_file": str(tmp_path / REVERSE)})
    assert "`personalization-mapping init transforms`" in problems[0]

