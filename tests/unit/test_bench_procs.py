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


def _running_with(marker: str) -> list[str]:
    """Command lines of live processes that contain `marker` (Popen returns after exec)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        if marker in args:
            found.append(args)
    return found


def test_a_profiler_that_cannot_start_stops_the_profiled_plugins(tmp_path: Path) -> None:
    plugins_seen: list[int] = []
    marker = f"sampler-{tmp_path.name}"

    def second_sampler_missing(pid: int, out: Path) -> list[str]:
        plugins_seen.append(pid)
        if len(plugins_seen) == 2:
            raise FileNotFoundError("py-spy is missing")
        return [sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"]

    with pytest.raises(FileNotFoundError, match="py-spy is missing"):
        procs.profiled([SLEEPER, SLEEPER], logs=[tmp_path / "a.log", tmp_path / "b.log"],
                       samples=[tmp_path / "a.txt", tmp_path / "b.txt"],
                       sampler=second_sampler_missing)

    assert len(plugins_seen) == 2  # both plugins were started before the second sampler
    assert all(_gone(pid) for pid in plugins_seen)
    assert _running_with(marker) == []  # nor is the first sampler left behind


def test_profile_without_py_spy_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plugins, "BIN", tmp_path)

    with pytest.raises(SystemExit) as exited:
        cli.main(["--size", "200", "--profile", "--work-dir", str(tmp_path / "work")])

    assert exited.value.code == 2
    assert f"{tmp_path / 'py-spy'} is missing: --profile needs py-spy" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
