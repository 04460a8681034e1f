"""Medians of repeated runs and the rates derived from them.

Each metric is the median over runs on its own (a run's wall and CPU need not come from the
same repetition); peak RSS also keeps its maximum, since a memory budget is about the worst
run.
"""

from __future__ import annotations

from statistics import median
from typing import Any

USAGE_KEYS = ("wall_s", "user_s", "sys_s", "cpu_s", "peak_rss_mb", "runqueue_s", "net_wall_s",
              "sandbox_cpu_s")


def median_usage(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the usage figures the runs have (run-queue wait may be unknown)."""
    summary: dict[str, Any] = {}
    for key in USAGE_KEYS:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            summary[key] = round(median(values), 3)
    summary["peak_rss_max_mb"] = max(run["peak_rss_mb"] for run in runs)
    return summary


def with_rates(summary: dict[str, Any], records: int) -> dict[str, Any]:
    """Records per second of wall time, of net wall time and of CPU time."""
    summary["records_per_s"] = rate(records, summary["wall_s"])
    summary["net_records_per_s"] = rate(records, summary.get("net_wall_s", summary["wall_s"]))
    summary["records_per_cpu_s"] = rate(records, summary["cpu_s"])
    return summary


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return round(median(float(run[key]) for run in runs), 3)


def rate(records: int, seconds: float) -> float:
    """Records per second; 0 when nothing was measured rather than a division error."""
    return round(records / seconds, 1) if seconds > 0 else 0.0


def ratio(ours: float, floor: float) -> float | None:
    return round(ours / floor, 3) if floor else None
