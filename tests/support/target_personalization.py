"""Running target-personalization against the Personalization sandbox, as its tests do."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from emulators import defaults
from tap_personalization.target.target import TargetPersonalization

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "transforms" / "crm-to-personalization.yml"


def inbound_of(sandbox: Any) -> Path:
    """The folder the sandbox picks feed files up from."""
    return Path(sandbox.data_dir) / "personalization" / "inbound"


def config_for(sandbox: Any, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The default reverse mapping, feed files into the sandbox, every reject allowed.

    Fingerprints live next to `output_dir`: runs of one test share them, tests do not.
    """
    config = {
        "base_url": sandbox.url, "dataset": defaults.PZN_DATASET,
        "api_key_id": defaults.PZN_API_KEY_ID, "api_key_secret": defaults.PZN_API_KEY_SECRET,
        "ca_bundle": sandbox.ca_bundle, "mapping_file": str(MAPPING),
        "feed_dir": str(inbound_of(sandbox)), "output_dir": str(output_dir),
        "fingerprint_db": str(Path(output_dir).parent / "fingerprints.sqlite"),
        "fail_on_rejects": 100,
    }
    config.update(overrides)
    return config


def run_target(config: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run like the CLI does; returns the STATE messages written to stdout."""
    out = io.StringIO()
    with redirect_stdout(out):
        TargetPersonalization(config=config).listen(
            io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
