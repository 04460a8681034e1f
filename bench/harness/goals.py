"""The product's performance claims, checked against one size's results and across sizes.

Per size: throughput against target-csv, API calls against the theoretical minimum, peak
RSS under the budget, tap rate against a bare HTTP loop. Across sizes (growth): time per
record stays level (linear time), peak RSS stays level from 100k up (flat memory), and polls
follow the sandbox's processing time rather than the record count.
"""

from __future__ import annotations

from typing import Any

SCHEMA = 3  # version of the results files; bump when a field's meaning changes
THROUGHPUT_FLOOR = 0.5
RSS_BUDGET_MB = 300.0
RSS_BUDGET_SIZE = 1_000_000
FLAT_FROM_SIZE = 100_000
FLAT_TOLERANCE = 0.15  # peak RSS may grow this share from 100k to 1M and still be "flat"
LINEAR_TOLERANCE = 0.30  # time per record may grow this share across sizes


def _goal(name: str, value: Any, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"goal": name, "value": value, "met": met, "note": note}


def _excess(calls: dict[str, Any]) -> str:
    if not calls["excess"]:
        return ""
    return "excess: " + ", ".join(f"{kind} {count:+d}" for kind, count in calls["excess"].items())


def _ok(paths: dict[str, Any], name: str) -> dict[str, Any] | None:
    result = paths.get(name)
    return result if result and result.get("status") == "ok" else None


def peak_rss(paths: dict[str, Any]) -> dict[str, float]:
    """Each plugin's largest peak RSS over the runs of its path (MB)."""
    peaks: dict[str, float] = {}
    if target := _ok(paths, "target"):
        peaks["target-salesforce-crm"] = max(
            target["target_salesforce_crm"]["peak_rss_max_mb"],
            target["target_salesforce_crm_rerun"]["peak_rss_max_mb"])
    if tap := _ok(paths, "tap"):
        peaks["tap-personalization"] = tap["tap_personalization"]["peak_rss_max_mb"]
    if reverse := _ok(paths, "reverse"):
        peaks["tap-salesforce-crm"] = reverse["tap_salesforce_crm"]["peak_rss_max_mb"]
        peaks["target-personalization"] = reverse["target_personalization"]["peak_rss_max_mb"]
    return peaks


def per_size(size: int, paths: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    if target := _ok(paths, "target"):
        ratios = target["ratios"]
        goals.append(_goal(
            "target-salesforce-crm >= 0.5x target-csv throughput", ratios["vs_target_csv_net"],
            ratios["vs_target_csv_net"] is not None
            and ratios["vs_target_csv_net"] >= THROUGHPUT_FLOOR,
            f"net of run-queue wait and sandbox CPU; wall {ratios['vs_target_csv_wall']}x, "
            f"CPU {ratios['vs_target_csv_cpu']}x"))
        for label, key in (("", "api_calls"), (" (re-run, nothing changed)",
                                                 "api_calls_rerun")):
            calls = target[key]
            goals.append(_goal(
                f"target-salesforce-crm API calls = minimum + polls{label}",
                f"{calls['actual_total'] - calls['polls']} vs {calls['minimum_total']} "
                f"(+{calls['polls']} polls)",
                calls["at_minimum"], _excess(calls)))
    if tap := _ok(paths, "tap"):
        ratio = tap["ratios"]["vs_bare_wall"]
        goals.append(_goal("tap-personalization >= 0.5x bare HTTP loop", ratio,
                           ratio is not None and ratio >= THROUGHPUT_FLOOR,
                           f"net {tap['ratios']['vs_bare_net']}x"))
        calls = tap["api_calls"]
        goals.append(_goal("tap-personalization API calls = minimum",
                           f"{calls['actual_total']} vs {calls['minimum_total']}",
                           calls["at_minimum"]))
    if reverse := _ok(paths, "reverse"):
        calls = reverse["api_calls"]["salesforce"]
        goals.append(_goal(
            "tap-salesforce-crm API calls = minimum",
            f"{calls['actual_total']} vs {calls['minimum_total']}", calls["at_minimum"],
            _excess(calls)))
        goals += _echo_goals(reverse.get("echo"))
    if bulk_api := _ok(paths, "bulk_api"):
        goals.append(_goal(
            "target-salesforce-crm Bulk 2.0 writes what Bulk 1.0 writes",
            f"{bulk_api['bulk_2_0']['api_calls_total']} vs "
            f"{bulk_api['bulk_1_0']['api_calls_total']} calls",
            bulk_api["same_outcomes"],
            f"wall {bulk_api['ratios']['wall_2_vs_1']}x of 1.0's"))
    for plugin, peak in peak_rss(paths).items():
        binding = size >= RSS_BUDGET_SIZE
        goals.append(_goal(f"{plugin} peak RSS < 300 MB", f"{peak:.0f} MB",
                           peak < RSS_BUDGET_MB,
                           "" if binding else "the budget is set for 1M records"))
    return goals


def _echo_goals(echo: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Two-way sync without echoes: nothing re-sent after a forward sync, exactly the changes."""
    if not echo:
        return []
    after, feed, events = echo["after_forward"], echo["changed_feed"], echo["changed_events"]
    written = echo["forward_sync"]["contacts_written"]
    changed = echo["changed_per_step"]
    return [
        _goal("target-personalization after a forward sync: 0 feed rows, 0 events",
              f"{after['feed_rows']} rows, {after['events']} events",
              echo["met"]["after_forward_nothing_sent"],
              f"forward sync wrote {written:,} contacts; {after['unchanged_records']:,} "
              "records unchanged"),
        _goal("target-personalization sends exactly the changed records",
              f"{feed['feed_rows']} rows / {events['events']} events for {changed} + "
              f"{changed} changed contacts",
              echo["met"]["changed_feed_exact"] and echo["met"]["changed_events_exact"],
              "feed run, then event_api run"),
    ]


def _series(results: dict[int, dict[str, Any]], path: str,
            pick: Any) -> dict[int, float]:
    series = {}
    for size, result in sorted(results.items()):
        section = _ok(result["paths"], path)
        if section:
            series[size] = pick(section)
    return series


def growth(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per plugin: µs per record and peak RSS by size, and whether each stays level."""
    metrics = {
        "target-salesforce-crm": ("target", lambda s: s["target_salesforce_crm"]),
        "target-csv": ("target", lambda s: s["target_csv"]),
        "tap-personalization": ("tap", lambda s: s["tap_personalization"]),
        "tap-salesforce-crm": ("reverse", lambda s: s["tap_salesforce_crm"]),
        "target-personalization": ("reverse", lambda s: s["target_personalization"]),
    }
    table: dict[str, Any] = {}
    for plugin, (path, pick) in metrics.items():
        cpu_us = _series(results, path, lambda s, pick=pick:
                         pick(s)["cpu_s"] / s["records"] * 1e6)
        wall_us = _series(results, path, lambda s, pick=pick:
                          pick(s)["wall_s"] / s["records"] * 1e6)
        rss = _series(results, path, lambda s, pick=pick: pick(s)["peak_rss_max_mb"])
        if not rss:
            continue
        table[plugin] = {
            "cpu_us_per_record": {size: round(v, 1) for size, v in cpu_us.items()},
            "wall_us_per_record": {size: round(v, 1) for size, v in wall_us.items()},
            "peak_rss_mb": rss,
            "linear_time": _level(cpu_us, LINEAR_TOLERANCE,
                                  FLAT_FROM_SIZE if FLAT_FROM_SIZE in cpu_us else min(cpu_us)),
            "flat_memory": _level(rss, FLAT_TOLERANCE, FLAT_FROM_SIZE),
        }
    table["target-salesforce-crm polls"] = {
        "polls": _series(results, "target", lambda s: s["api_calls"]["polls"]),
        "server_batch_s": _series(results, "target",
                                  lambda s: s["bulk"]["server_batch_s"][0]),
        "records": _series(results, "target", lambda s: s["records"]),
    }
    return table


def _level(series: dict[int, float], tolerance: float, from_size: int) -> bool | None:
    """True when the largest size's value is within `tolerance` of the value at from_size."""
    if from_size not in series or max(series) == from_size:
        return None
    return series[max(series)] <= series[from_size] * (1 + tolerance)
