"""The bench README with a `bulk_api` measurement: its side-by-side table and goal, and the
newest measurement of each path combined when a later file holds only some paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import goals, readme


def _side(api: str, calls: int, wall: float) -> dict[str, Any]:
    return {"wall_s": wall, "net_wall_s": wall / 2, "cpu_s": 1.0, "sandbox_cpu_s": 0.5,
            "peak_rss_max_mb": 80, "api_calls_total": calls,
            "api_calls": {"bulk_batch": 10, "bulk_job": calls - 10},
            "outcome": {"updated": 900, "unmatched": 100, "rejected": 0, "bulk_batches": 10,
                        "bulk_api": api}}


def _bulk_api(same: bool) -> dict[str, Any]:
    return {"status": "ok", "records": 1000, "bulk_1_0": _side("1.0", 30, 10.0),
            "bulk_2_0": _side("2.0", 60, 12.0), "same_outcomes": same,
            "ratios": {"calls_2_vs_1": 2.0, "wall_2_vs_1": 1.2, "net_2_vs_1": 1.2},
            "measured_at": "2026-12-06T00:00:00Z", "repeat": 1, "load_before": [0.1]}


def _tap() -> dict[str, Any]:
    usage = {"wall_s": 1.0, "sandbox_cpu_s": 0.2, "cpu_s": 0.5, "records_per_s": 1000.0,
             "peak_rss_max_mb": 50}
    return {"status": "ok", "records": 1000, "tap_personalization": usage,
            "bare_http": {"cpu_s": 0.2, "records_per_s": 1500.0},
            "ratios": {"vs_bare_wall": 0.7, "vs_bare_net": 0.4, "vs_bare_cpu": 0.4},
            "api_calls": {"actual_total": 2, "minimum_total": 2, "at_minimum": True},
            "measured_at": "2026-12-05T00:00:00Z", "repeat": 1, "load_before": [0.1]}


def _file(folder: Path, name: str, paths: dict[str, Any]) -> None:
    machine = {"cpu": "x", "cores": 2, "memory_gb": 1, "python": "3.11", "platform": "y"}
    (folder / name).write_text(json.dumps({
        "schema": goals.SCHEMA, "size": 1000, "seed": 42, "machine": machine,
        "paths": paths, "goals": goals.per_size(1000, paths)}))


def test_bulk_api_table_goal_and_paths_combined_across_files(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    _file(results, "2026-12-05-1k.json", {"tap": _tap(), "bulk_api": _bulk_api(False)})
    _file(results, "2026-12-06-1k.json", {"bulk_api": _bulk_api(True)})

    readme.write(tmp_path / "README.md", results)

    text = (tmp_path / "README.md").read_text()
    details = text.split("### History", 1)[0]
    assert "`results/2026-12-05-1k.json`, `results/2026-12-06-1k.json`" in details
    assert "| 1,000 | tap-personalization >= 0.5x bare HTTP loop |" in details  # older file
    assert ("| 1,000 | target-salesforce-crm Bulk 2.0 writes what Bulk 1.0 writes "
            "| 60 vs 30 calls | met |") in details  # the newer file's measurement
    table = details.split("### Bulk API 1.0 against 2.0", 1)[1].split("###", 1)[0]
    assert "| 1,000 | 1.0 | 10.0 | 5.0 |" in table
    assert "| 1,000 | 2.0 | 12.0 | 6.0 |" in table
    assert table.count("| yes |") == 2
