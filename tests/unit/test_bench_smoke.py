"""The benchmark harness end to end at a tiny size: every section present, counts sane.

Benchmarks are not tests, so nothing here looks at a time or a rate; what is checked is
that each path really moved the records (sandbox counts, ledger counts, feed results) and
that the results file and the README block are complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import readme

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
USERS = 200


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), "--results-dir", str(tmp_path / "results"),
         "--readme", str(tmp_path / "README.md"), "--work-dir", str(tmp_path / "work"), *args],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp_path = tmp_path_factory.mktemp("bench")
    done = _bench(tmp_path, "--size", str(USERS), "--repeat", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    files = list((tmp_path / "results").glob(f"*-{USERS}.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text()), tmp_path


def test_results_file_has_every_section(results: tuple[dict[str, Any], Path]) -> None:
    data, _ = results
    assert data["size"] == USERS
    assert {"cpu", "cores", "python"} <= set(data["machine"])
    assert list(data["paths"]) == ["target", "tap", "reverse"]
    assert all(section["status"] == "ok" for section in data["paths"].values())
    assert data["dataset"]["counts"]["users"] == USERS
    assert data["dataset"]["users_stream"]["records"] == USERS
    goals = {goal["goal"] for goal in data["goals"]}
    assert "target-salesforce-crm >= 0.5x target-csv throughput" in goals
    assert "tap-personalization >= 0.5x bare HTTP loop" in goals
    assert all(goal["met"] in (True, False) for goal in data["goals"])


def test_target_path_wrote_the_matches_and_counted_calls(
        results: tuple[dict[str, Any], Path]) -> None:
    target = results[0]["paths"]["target"]
    outcome = target["outcome"]
    # About 60 % of demo users are CRM contacts; every match is written, as the sandbox shows.
    assert 0.45 * USERS < outcome["matched"] < 0.75 * USERS
    assert outcome["updated"] == outcome["matched"]
    assert outcome["sandbox_contacts_written_before"] == 0
    assert outcome["sandbox_contacts_written_after"] == outcome["matched"]
    assert outcome["csv_rows_written"] == USERS
    assert outcome["parse_records"] == USERS
    calls = target["api_calls"]
    assert calls["minimum"] == {"oauth": 1, "describe": 1, "soap_query": 1, "bulk_job": 2,
                                "bulk_batch": 1, "bulk_result": 1}
    assert calls["actual"]["soap_query"] == 1
    assert calls["actual"]["bulk_batch"] == 1
    assert target["bulk"]["batches"] == 1
    # Each repetition starts from the seed again, so each first sync writes every match.
    firsts = target["runs"]["target_salesforce_crm"]
    assert [run["report"]["objects"]["Contact"]["updated"] for run in firsts] == [
        outcome["matched"]] * 2
    for consumer in ("target_salesforce_crm", "target_salesforce_crm_rerun", "target_csv",
                     "parse"):
        usage = target[consumer]
        assert usage["wall_s"] > 0
        assert usage["cpu_s"] > 0
        assert usage["peak_rss_mb"] > 0


def test_rerun_of_the_same_input_only_looks_up(results: tuple[dict[str, Any], Path]) -> None:
    target = results[0]["paths"]["target"]
    assert target["outcome"]["rerun_updated"] == 0
    assert target["outcome"]["rerun_unchanged"] == target["outcome"]["matched"]
    calls = target["api_calls_rerun"]
    assert calls["actual"]["soap_query"] == 1
    assert [calls["actual"].get(kind, 0) for kind in ("bulk_job", "bulk_batch", "bulk_result",
                                                      "bulk_poll")] == [0, 0, 0, 0]
    assert calls["minimum"]["bulk_batch"] == 0


def test_tap_path_read_every_user_both_ways(results: tuple[dict[str, Any], Path]) -> None:
    tap = results[0]["paths"]["tap"]
    assert tap["outcome"] == {"tap_records": USERS, "bare_records": USERS, "bare_pages": 2}
    assert tap["api_calls"]["actual"] == {"users_export": 2}
    assert tap["api_calls"]["at_minimum"] is True


def test_reverse_path_applied_feed_rows(results: tuple[dict[str, Any], Path]) -> None:
    reverse = results[0]["paths"]["reverse"]
    outcome = reverse["outcome"]
    assert outcome["tap_records"] == sum(outcome["crm_rows"].values()) == reverse["records"]
    assert outcome["feed_files"] >= 1
    assert outcome["feeds_failed"] == 0
    assert outcome["feed_rows_applied"] > 0
    assert reverse["api_calls"]["salesforce"]["actual"]["oauth"] == 1


def test_reverse_path_sends_no_echo_after_a_forward_sync(
        results: tuple[dict[str, Any], Path]) -> None:
    echo = results[0]["paths"]["reverse"]["echo"]
    assert echo["forward_sync"]["contacts_written"] > 0
    assert echo["baseline"]["feed_rows"] > 0
    after = echo["after_forward"]
    assert (after["feed_rows"], after["events"]) == (0, 0)
    assert after["unchanged_records"] == echo["baseline"]["feed_rows"]
    assert after["tap_records"] == echo["baseline"]["tap_records"]  # everything read again
    changed = echo["changed_per_step"]
    assert (echo["changed_feed"]["feed_rows_by_feed"], echo["changed_feed"]["events"]) == (
        {"user": changed}, 0)
    assert (echo["changed_events"]["feed_rows"], echo["changed_events"]["events"]) == (
        0, changed)
    goals = {goal["goal"]: goal["met"] for goal in results[0]["goals"]}
    assert goals["target-personalization after a forward sync: 0 feed rows, 0 events"] is True
    assert goals["target-personalization sends exactly the changed records"] is True


def test_readme_block_lists_the_run(results: tuple[dict[str, Any], Path]) -> None:
    text = (results[1] / "README.md").read_text()
    assert "<!-- results:start" in text
    assert "<!-- results:end -->" in text
    for heading in ("### Goals", "### Target path", "### Tap path", "### Reverse path",
                    "### Growth"):
        assert heading in text
    assert f"| {USERS} | target-salesforce-crm >= 0.5x target-csv throughput |" in text


def test_history_keeps_every_results_file_and_details_only_the_newest(
        results: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    data, _ = results
    older = json.loads(json.dumps(data))
    older["paths"]["target"]["ratios"]["vs_target_csv_net"] = 0.123
    older["paths"]["target"]["api_calls"]["excess"] = {"bulk_job": 38}
    older["goals"][0]["met"] = False
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f"2000-01-01-{USERS}.json").write_text(json.dumps(older))
    (tmp_path / "results" / f"2999-01-01-{USERS}.json").write_text(json.dumps(data))
    met = sum(goal["met"] is True for goal in data["goals"])
    # the smoke run's own timing goals may or may not be met on a loaded machine
    older_met = sum(goal["met"] is True for goal in older["goals"])

    readme.write(tmp_path / "README.md", tmp_path / "results")

    text = (tmp_path / "README.md").read_text()
    history = text.split("### History", 1)[1]
    assert f"| {USERS} | `2000-01-01-{USERS}.json` | {older_met} / {len(data['goals'])} | 0.12x " \
           "| bulk_job +38 |" in history
    assert f"| {USERS} | `2999-01-01-{USERS}.json` | {met} / {len(data['goals'])} |" in history
    assert history.index("2000-01-01") < history.index("2999-01-01")
    details = text.split("### History", 1)[0]
    assert "0.12x" not in details  # the detailed tables show the newest file only
    assert f"`results/2999-01-01-{USERS}.json`" in details


def test_a_run_of_one_path_keeps_the_other_paths_newest_results(
        results: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    data, _ = results
    older = json.loads(json.dumps(data))
    older["paths"]["target"]["ratios"]["vs_target_csv_net"] = 0.123
    reverse_only = {**json.loads(json.dumps(data)), "paths": {"reverse": data["paths"]["reverse"]}}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f"2000-01-01-{USERS}.json").write_text(json.dumps(older))
    (tmp_path / "results" / f"2999-01-01-{USERS}.json").write_text(json.dumps(reverse_only))

    readme.write(tmp_path / "README.md", tmp_path / "results")

    details = (tmp_path / "README.md").read_text().split("### History", 1)[0]
    assert "**0.12x**" in details  # the target path's newest result is the older file's
    assert f"`results/2000-01-01-{USERS}.json`, `results/2999-01-01-{USERS}.json`" in details
    assert "target-salesforce-crm >= 0.5x target-csv throughput | 0.123 |" in details


def test_bad_size_is_a_one_line_error(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--size", "ten")
    assert done.returncode == 2
    assert "--size takes record counts such as 200, 10k, 100k or 1m; got 'ten'" in done.stderr
    assert not (tmp_path / "work").exists()
