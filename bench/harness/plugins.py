"""Where the plugins' executables are and the config JSON each gets for a sandbox run.

The configs differ from production only in URLs and the CA bundle, as the project requires;
credentials are the sandbox's fixed throw-away values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emulators import defaults

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
TARGET_CSV_CANDIDATES = (
    REPO / ".meltano" / "loaders" / "target-csv" / "venv" / "bin" / "target-csv",
    BIN / "target-csv",
)
FORWARD_MAPPING = REPO / "transforms" / "personalization-to-crm.yml"
REVERSE_MAPPING = REPO / "transforms" / "crm-to-personalization.yml"
PAGE_SIZE = 1000  # the tap's default; the bare HTTP loop uses the same


def executable(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (or install the "
                                "plugin's package into .venv) first")
    return path


def target_csv() -> Path:
    for path in TARGET_CSV_CANDIDATES:
        if path.exists():
            return path
    raise FileNotFoundError("target-csv is missing: run `meltano install` (make install), "
                            f"which builds {TARGET_CSV_CANDIDATES[0]}")


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)  # configs hold (throw-away) secrets; keep the habit anyway
    return path


def salesforce_connection(url: str, ca_bundle: str) -> dict[str, Any]:
    return {"auth_url": url, "ca_bundle": ca_bundle, "client_id": defaults.SF_CLIENT_ID,
            "client_secret": defaults.SF_CLIENT_SECRET}


def personalization_connection(url: str, ca_bundle: str) -> dict[str, Any]:
    return {"base_url": url, "dataset": defaults.PZN_DATASET,
            "api_key_id": defaults.PZN_API_KEY_ID,
            "api_key_secret": defaults.PZN_API_KEY_SECRET, "ca_bundle": ca_bundle}


def target_salesforce_config(url: str, ca_bundle: str, output_dir: Path) -> dict[str, Any]:
    """The plugin's defaults (drains, batch sizes, polling) as a nightly run would use them."""
    return {**salesforce_connection(url, ca_bundle), "mapping_file": str(FORWARD_MAPPING),
            "output_dir": str(output_dir)}


def tap_personalization_config(url: str, ca_bundle: str) -> dict[str, Any]:
    return {**personalization_connection(url, ca_bundle), "page_size": PAGE_SIZE}


def tap_salesforce_config(url: str, ca_bundle: str) -> dict[str, Any]:
    return {**salesforce_connection(url, ca_bundle), "mapping_file": str(REVERSE_MAPPING)}


def target_personalization_config(url: str, ca_bundle: str, feed_dir: Path,
                                  output_dir: Path) -> dict[str, Any]:
    return {**personalization_connection(url, ca_bundle), "mapping_file": str(REVERSE_MAPPING),
            "delivery": "etl_feed", "feed_dir": str(feed_dir), "output_dir": str(output_dir)}


def users_only_catalog(discovered: dict[str, Any]) -> dict[str, Any]:
    """The discovered catalog with only `users` selected (the stream the target path reads)."""
    for stream in discovered["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "users"
    return discovered
