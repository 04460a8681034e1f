"""The plugins' own `--about`, asked once per test process (each answer takes a second)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any


@cache
def about(executable: str) -> dict[str, Any]:
    """`<plugin> --about --format=json` from the environment the tests run in."""
    script = Path(sys.executable).parent / executable
    answer = subprocess.run([str(script), "--about", "--format=json"], capture_output=True,
                            text=True, check=True, timeout=120)
    return dict(json.loads(answer.stdout))
