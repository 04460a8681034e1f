"""meltano.yml declares exactly the settings each plugin really has, secrets marked sensitive.

The plugins' own `--about` output is the source of truth; a setting added to a plugin but not
to meltano.yml (or a secret not marked `sensitive`) would leak into logs or be unsettable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.plugins import about

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = {
    "tap-personalization": "extractors",
    "tap-salesforce-crm": "extractors",
    "target-salesforce-crm": "loaders",
    "target-personalization": "loaders",
}
# Settings every singer-sdk plugin gets for free; Meltano passes them through without
# declarations (and documents them itself).
SDK_BUILTINS = {
    "stream_maps", "stream_map_config", "faker_config", "flattening_enabled",
    "flattening_max_depth", "flattening_max_key_length", "flattening_separator", "batch_config",
    "add_record_metadata", "load_method", "validate_records", "batch_size_rows",
    "process_activate_version_messages", "hard_delete", "default_target_schema",
}


def _about(executable: str) -> dict[str, Any]:
    return about(executable)


def _declared(name: str) -> dict[str, dict[str, Any]]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    plugin = next(p for p in project["plugins"][PLUGINS[name]] if p["name"] == name)
    return {setting["name"]: setting for setting in plugin["settings"]}


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_meltano_yml_declares_every_setting_of_the_plugin(name: str) -> None:
    properties = _about(name)["settings"]["properties"]
    real = set(properties) - SDK_BUILTINS
    declared = _declared(name)
    assert sorted(real - set(declared)) == [], "settings missing from meltano.yml"
    unknown = set(declared) - set(properties)
    assert sorted(unknown) == [], "meltano.yml declares settings the plugin lacks"
    secrets = {key for key, spec in properties.items()
               if spec.get("secret") or spec.get("writeOnly")}
    sensitive = {key for key, spec in declared.items() if spec.get("sensitive")}
    assert secrets == sensitive & set(properties)


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_plugin_answers_about_with_its_capabilities(name: str) -> None:
    about = _about(name)
    assert about["name"] == name
    assert "about" in about["capabilities"]
    assert about["settings"]["properties"], "a plugin without settings"
