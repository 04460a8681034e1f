"""The Hub definitions (hub/), meltano.yml and the plugins' own `--about` say the same.

hub/generate.py writes the Hub files from `--about` and meltano.yml, so a committed file
equal to what it writes plus meltano.yml agreeing with `--about` (kinds, defaults, settings
groups, capabilities) keeps all three identical.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.plugins import about
from tap_personalization.settings import SETTINGS_GROUPS as PERSONALIZATION_GROUPS
from target_salesforce_crm.settings import SETTINGS_GROUPS as SALESFORCE_GROUPS

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {"tap-personalization": PERSONALIZATION_GROUPS,
          "target-personalization": PERSONALIZATION_GROUPS,
          "tap-salesforce-crm": SALESFORCE_GROUPS, "target-salesforce-crm": SALESFORCE_GROUPS}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hub_generate", ROOT / "hub" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hub = _generator()


@pytest.fixture(scope="module")
def abouts() -> dict[str, dict[str, Any]]:
    return {name: about(name) for name in hub.PLUGINS}


@pytest.mark.parametrize("name", sorted(hub.PLUGINS))
def test_the_hub_file_is_what_the_plugin_and_meltano_yml_say(
    name: str, abouts: dict[str, dict[str, Any]],
) -> None:
    expected = hub.render(hub.definition(name, abouts[name], hub.meltano_plugin(name)))
    assert hub.path_of(name).read_text(encoding="utf-8") == expected, "run `make hub`"
    assert all(entry["label"] and entry["description"]
               for entry in hub.definition(name, abouts[name], hub.meltano_plugin(name))[
                   "settings"])


@pytest.mark.parametrize("name", sorted(hub.PLUGINS))
def test_meltano_yml_kinds_and_defaults_are_the_plugin_s(
    name: str, abouts: dict[str, dict[str, Any]],
) -> None:
    properties = abouts[name]["settings"]["properties"]
    for declared in hub.meltano_plugin(name)["settings"]:
        spec = properties[declared["name"]]
        assert declared.get("kind", "string") == hub.kind_of(spec), declared["name"]
        value, default = declared.get("value"), spec.get("default")
        if value is not None and default is not None:  # paths are anchored at the project
            assert str(value).removeprefix("$MELTANO_PROJECT_ROOT/") == str(default) or (
                value == default), declared["name"]


@pytest.mark.parametrize("name", sorted(hub.PLUGINS))
def test_settings_groups_and_capabilities_are_the_plugin_s(
    name: str, abouts: dict[str, dict[str, Any]],
) -> None:
    plugin = hub.meltano_plugin(name)
    assert [tuple(group) for group in plugin["settings_group_validation"]] == list(GROUPS[name])
    declared = set(plugin["capabilities"])
    assert declared <= {*abouts[name]["capabilities"], "test"}
    assert "batch" in declared
