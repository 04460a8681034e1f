"""`bench/locks.py` end to end at a tiny size: every mode ran and wrote every Contact.

Nothing here looks at a time: what is checked is that input order really contended in the
sandbox (lock failures, then retries in a Serial job), that no lock failure reached the
rejects file, and that the results file and the README block are complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_the_lock_bench_compares_the_three_modes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "locks.py"), "--contacts", "300",
         "--accounts", "15", "--batch-size", "50", "--record-ms", "4", "--lock-wait", "0.05",
         "--results-dir", str(tmp_path / "results"), "--readme", str(tmp_path / "README.md"),
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    [file] = (tmp_path / "results").glob("*-300.json")
    result = json.loads(file.read_text())
    modes = result["modes"]
    assert list(modes) == ["input order", "grouped", "serial"]
    assert all(mode["contacts_written"] == mode["updated"] == 300 for mode in modes.values())
    assert all(mode["lock_rejects"] == 0 for mode in modes.values())
    assert modes["input order"]["lock_retried"] > 0
    assert modes["input order"]["bulk_jobs"] == 2  # the Serial job for the retries
    assert (modes["grouped"]["lock_retried"], modes["serial"]["lock_retried"]) == (0, 0)
    assert [goal["goal"] for goal in result["goals"]] == [
        "0 lock failures reach the rejects file", "every contact written in every mode",
        "grouped parallel faster than serial"]
    readme = (tmp_path / "README.md").read_text()
    assert "| input order |" in readme
    assert "| serial |" in readme
    assert "<!-- locks:end -->" in readme
