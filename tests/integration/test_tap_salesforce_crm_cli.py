"""tap-salesforce-crm from the command line, as Meltano runs it: a refused credential ends
discovery (which Meltano runs before every sync) and a sync with one actionable line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from emulators import defaults

ROOT = Path(__file__).resolve().parents[2]
TAP = Path(sys.executable).parent / "tap-salesforce-crm"


@pytest.mark.parametrize(("flags", "prefix"), [(["--discover"], "Discovery failed: "),
                                               ([], "Sync failed: "),
                                               (["--test"], "Connection test failed: ")])
def test_a_refused_credential_is_one_actionable_line(
    salesforce_sandbox: Any, tmp_path: Path, flags: list[str], prefix: str,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "auth_url": salesforce_sandbox.url, "ca_bundle": salesforce_sandbox.ca_bundle,
        "client_id": defaults.SF_CLIENT_ID, "client_secret": "not-the-secret",
        "mapping_file": str(ROOT / "transforms" / "crm-to-personalization.yml"),
    }))
    result = subprocess.run([str(TAP), "--config", str(config), *flags], capture_output=True,
                            text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    assert "not-the-secret" not in output
    lines = [line for line in output.splitlines() if prefix in line]
    assert len(lines) == 1
    assert "client_id/client_secret" in lines[0]
    assert "meltano invoke tap-salesforce-crm:test" in lines[0]
