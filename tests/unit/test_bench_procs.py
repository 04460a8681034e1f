"""The benchmark harness never leaves a plugin running behind a failed start.

A child left running keeps writing to the sandboxes while later paths are measured (a
missing py-spy once left a target updating contacts during the tap and reverse paths).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from harness import cli, plugins, procs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_profiler_that_cannot_start_stops_the_profiled_plugins(tmp_path: Path) -> None:
    pids: list[int] = []

    def missing_sampler(pid: int, out: Path) -> list[str]:
        pids.append(pid)
        raise FileNotFoundError("py-spy is missing")

    with pytest.raises(FileNotFoundError, match="py-spy is missing"):
        procs.profiled([SLEEPER, SLEEPER], logs=[tmp_path / "a.log", tmp_path / "b.log"],
                       samples=[tmp_path / "a.txt", tmp_path / "b.txt"],
                       sampler=missing_sampler)

    assert len(pids) == 1  # the first sampler failed; both plugins had been started
    assert _gone(pids[0])


def test_profile_without_py_spy_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plugins, "BIN", tmp_path)

    with pytest.raises(SystemExit) as exited:
        cli.main(["--size", "200", "--profile", "--work-dir", str(tmp_path / "work")])

    assert exited.value.code == 2
    assert f"{tmp_path / 'py-spy'} is missing: --profile needs py-spy" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
