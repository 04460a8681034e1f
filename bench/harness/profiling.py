"""Where a plugin's time goes: one extra run under py-spy, summarised by function.

Opt-in (`--profile`): py-spy samples the plugin from outside (no code change, little
overhead) and writes collapsed stacks; this module turns them into the shares a report
needs: per function, the share of samples spent in it (self) and under it (inclusive), the
biggest first. Profiled runs are never the measured ones.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness import plugins

SAMPLE_RATE = 100
TOP = 15
CODE_PACKAGES = ("target_salesforce_crm/", "tap_personalization/", "crm_sync_mapping/",
                 "singer_sdk/")
ENTRY_POINTS = frozenset({"<module>", "main", "cli", "invoke", "listen", "__call__",
                          "_process_lines", "process_lines", "sync_all", "run"})
# Innermost functions that mean the process is waiting, not computing.
IDLE_FUNCTIONS = frozenset({"select", "poll", "sleep", "wait", "recv", "recv_into", "read",
                            "readinto", "accept", "waitid", "wait4"})


def py_spy() -> Path:
    path = plugins.BIN / "py-spy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: --profile needs py-spy, which "
                                "`make install` puts into .venv (requirements-dev.txt)")
    return path


def sampler(pid: int, out: Path) -> list[str]:
    """py-spy attached to `pid`; idle time included (--idle), so waiting on the server shows."""
    return [str(py_spy()), "record", "--idle", "-r", str(SAMPLE_RATE), "--format", "raw",
            "-o", str(out), "--pid", str(pid)]


def _function(frame: str) -> str:
    """`name (…/site-packages/pkg/module.py:123)` → `pkg/module.py:name`."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{plugins.REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


def _interesting(function: str) -> bool:
    """Functions of the plugins, the mapping and singer-sdk, minus the entry points."""
    path, _, name = function.rpartition(":")
    return (any(package in path for package in CODE_PACKAGES)
            and name.rsplit(".", 1)[-1] not in ENTRY_POINTS)


def summarise(raw: Path, top: int = TOP) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if frames[-1].partition(" (")[0].rsplit(".", 1)[-1] in IDLE_FUNCTIONS:
            idle += count
        own[_function(frames[-1])] += count
        for function in {_function(frame) for frame in frames}:
            under[function] += count
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": name, "share": round(count / total, 3)}
                for name, count in counter.most_common(top)]

    # Entry points (`main`, `listen`, …) sit under nearly every sample and say nothing.
    for name in [name for name in under if not _interesting(name)]:
        del under[name]
    return {"samples": total, "idle_share": round(idle / total, 3), "self": shares(own),
            "inclusive": shares(under)}
