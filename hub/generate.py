"""Meltano Hub plugin definitions (`hub/<type>/<plugin>.yml`), written from the plugins.

`make hub` runs this. Each file is what Meltano Hub lists and what
`meltano add --from-ref <file>` reads: the setting names, descriptions, kinds, defaults and
secrets come from the plugin's own `--about`; labels, values, capabilities, commands and
settings groups from this project's meltano.yml (where a test checks them against the
plugin); the rest (label, description, keywords) from `PLUGINS` below.
tests/unit/test_hub_definitions.py fails when a committed file differs from what this writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "hub"
VARIANT = "personalization-crm-sync"
HEADER = ("# Meltano Hub plugin definition; written by hub/generate.py (`make hub`) from the "
          "plugin's --about\n# and meltano.yml: do not edit by hand. See README, "
          '"Use it in your own Meltano project".\n')
# Settings singer-sdk adds to every plugin; Meltano declares them itself from the
# capabilities (stream maps, flattening, batch, ...), so a definition leaves them out.
SDK_BUILTINS = frozenset({
    "stream_maps", "stream_map_config", "faker_config", "flattening_enabled",
    "flattening_max_depth", "flattening_max_key_length", "flattening_separator", "batch_config",
    "add_record_metadata", "load_method", "validate_records",
    "process_activate_version_messages", "hard_delete", "default_target_schema",
})
WORDS = {"url": "URL", "api": "API", "id": "ID", "ca": "CA", "sftp": "SFTP", "db": "DB"}
PLUGINS: dict[str, dict[str, Any]] = {
    "tap-personalization": {
        "plugin_type": "extractors", "distribution": "tap-personalization",
        "label": "Marketing Cloud Personalization",
        "description": "Users, accounts, segments and segment membership from Salesforce "
                       "Marketing Cloud Personalization (Evergage) export APIs.",
        "keywords": ["meltano_sdk", "salesforce", "personalization", "evergage"],
    },
    "target-personalization": {
        "plugin_type": "loaders", "distribution": "tap-personalization",
        "label": "Marketing Cloud Personalization",
        "description": "CRM fields and campaign membership into Marketing Cloud "
                       "Personalization user and account attributes and segments, as ETL "
                       "feed files or through the Event API.",
        "keywords": ["meltano_sdk", "salesforce", "personalization", "evergage"],
    },
    "tap-salesforce-crm": {
        "plugin_type": "extractors", "distribution": "target-salesforce-crm",
        "label": "Salesforce CRM",
        "description": "Contacts, leads, accounts and campaign members from Salesforce CRM, "
                       "incrementally by SystemModstamp; the fields the mapping file names.",
        "keywords": ["meltano_sdk", "salesforce", "crm"],
    },
    "target-salesforce-crm": {
        "plugin_type": "loaders", "distribution": "target-salesforce-crm",
        "label": "Salesforce CRM",
        "description": "Records onto Salesforce CRM contacts, leads and accounts: matched "
                       "by SOQL look-up, written with the Bulk API, every record's outcome "
                       "reported.",
        "keywords": ["meltano_sdk", "salesforce", "crm", "reverse-etl"],
    },
}


def about(name: str) -> dict[str, Any]:
    """`<plugin> --about --format=json`, from the environment this Python runs in."""
    executable = Path(sys.executable).parent / name
    answer = subprocess.run([str(executable), "--about", "--format=json"], check=True,
                            capture_output=True, text=True, timeout=120)
    return dict(json.loads(answer.stdout))


def meltano_plugin(name: str) -> dict[str, Any]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    kind = PLUGINS[name]["plugin_type"]
    return dict(next(p for p in project["plugins"][kind] if p["name"] == name))


def kind_of(spec: dict[str, Any]) -> str:
    """The Meltano setting kind of a JSON Schema property."""
    declared = spec.get("type", "string")
    types = [t for t in ([declared] if isinstance(declared, str) else declared) if t != "null"]
    if spec.get("enum"):
        return "options"
    first = types[0] if types else "string"
    if first == "string" and spec.get("format") in ("date-time", "date"):
        return "date_iso8601"
    return {"number": "decimal"}.get(first, first)


def label_of(name: str) -> str:
    return " ".join(WORDS.get(word, word.capitalize()) for word in name.split("_"))


def setting(declared: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": declared["name"],
        "label": declared.get("label") or label_of(declared["name"]),
        "description": " ".join(str(spec.get("description", "")).split()),
        "kind": kind_of(spec),
    }
    value = declared.get("value", spec.get("default"))
    if value is not None:
        entry["value"] = value
    if entry["kind"] == "options":
        entry["options"] = declared.get("options") or [
            {"label": option, "value": option} for option in spec["enum"]]
    if spec.get("secret") or spec.get("writeOnly"):
        entry["sensitive"] = True
    return entry


def version_of(distribution: str) -> str:
    pyproject = tomllib.loads((ROOT / distribution / "pyproject.toml").read_text())
    return str(pyproject["project"]["version"])


def definition(name: str, plugin_about: dict[str, Any], plugin: dict[str, Any]) -> dict[str, Any]:
    """The Hub definition of one plugin."""
    meta = PLUGINS[name]
    properties = plugin_about["settings"]["properties"]
    result: dict[str, Any] = {
        "name": name,
        "variant": VARIANT,
        "label": meta["label"],
        "description": meta["description"],
        "namespace": plugin["namespace"],
        # Not on PyPI yet: replace pip_url with a wheel, a path or a git URL until it is
        # (docs/architecture.md, "Packaging": the name is unclaimed there).
        "pip_url": f"{meta['distribution']}=={version_of(meta['distribution'])}",
        "executable": plugin["executable"],
        "capabilities": list(plugin["capabilities"]),
        "commands": plugin.get("commands", {}),
        "settings_group_validation": plugin.get("settings_group_validation", []),
        "settings": [setting(declared, properties[declared["name"]])
                     for declared in plugin["settings"]
                     if declared["name"] not in SDK_BUILTINS],
        "docs": f"https://hub.meltano.com/{meta['plugin_type']}/{name}--{VARIANT}",
        "keywords": meta["keywords"],
        "maintenance_status": "active",
    }
    if not result["commands"]:
        del result["commands"]
    if not result["settings_group_validation"]:
        del result["settings_group_validation"]
    return result


def path_of(name: str) -> Path:
    return HUB / PLUGINS[name]["plugin_type"] / f"{name}.yml"


def render(definition_: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(definition_, sort_keys=False, width=100, allow_unicode=True)


def main() -> None:
    for name in PLUGINS:
        path = path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(definition(name, about(name), meltano_plugin(name))),
                        encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
