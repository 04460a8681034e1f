"""Path 4: tap-salesforce-crm piped into target-personalization (ETL feed files).

Run as Meltano would run it (`tap | target`), each process measured on its own. The feed
files land in the Personalization sandbox's inbound folder; after the clock stops the
harness has the sandbox process what is left and reads the per-file results, so the
report shows rows applied, not just files written. The tap's record count is the sum of
singer-sdk's `record_count` metrics in its log, checked against the sandbox's row counts.
Every measured run starts from an empty fingerprint file, so each is a true first reverse
sync; what change detection saves on the runs after one is measured by `echo`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from harness import echo, minimum, plugins, procs, profiling
from harness.context import Context
from harness.stats import median_of, median_usage, rate

CRM_OBJECTS = ("Account", "Contact", "Lead", "CampaignMember")
# The reverse mapping names campaigns by name: CampaignMember is read with `Campaign.Name`,
# whose type comes from Campaign's describe.
RELATED_OBJECTS = ("Campaign",)
_METRIC = re.compile(r'METRIC: (\{"type": ?"counter", ?"metric": ?"record_count".*\})\s*$')


def tap_record_count(log: Path) -> int:
    total = 0
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = _METRIC.search(line)
            if match:
                total += int(json.loads(match[1])["value"])
    return total


def _feed_results(ctx: Context, seen: int) -> list[dict[str, Any]]:
    pzn = ctx.personalization
    pzn.admin("POST", "process-inbound")
    return pzn.admin("GET", "feeds")["feeds"][seen:]


def one_run(ctx: Context, label: str, configs: tuple[Path, Path]) -> dict[str, Any]:
    """The pipeline once; Personalization's calls, the feed files it got and their results."""
    sf, pzn = ctx.salesforce, ctx.personalization
    seen = len(pzn.admin("GET", "feeds")["feeds"])
    sf.clear_ledger()
    pzn.clear_ledger()
    sf_cpu, pzn_cpu = sf.cpu_seconds(), pzn.cpu_seconds()
    logs = (ctx.scratch / f"tap-salesforce-crm-{label}.log",
            ctx.scratch / f"target-personalization-{label}.log")
    tap, target = procs.pipeline(*_commands(configs), logs=logs)
    sandbox_cpu = round(sf.cpu_seconds() - sf_cpu + pzn.cpu_seconds() - pzn_cpu, 3)
    sf_ledger = sf.ledger()
    feeds = _feed_results(ctx, seen)
    pzn_calls = dict(pzn.ledger(limit=0)["by_kind"])
    return {
        "wall_s": tap.wall_s, "sandbox_cpu_s": sandbox_cpu,
        # The pipeline ends with the target: its run-queue wait is what load added.
        "net_wall_s": round(max(tap.cpu_s, target.cpu_s,
                                target.wall_s - (target.runqueue_s or 0.0) - sandbox_cpu), 3),
        "tap": tap.as_json(), "target": target.as_json(),
        "tap_records": tap_record_count(logs[0]),
        "salesforce_calls": dict(sf_ledger["by_kind"]), "calls": sf_ledger["calls"],
        "personalization_calls": pzn_calls,
        "feeds": [{key: feed.get(key) for key in ("file", "feed", "status", "rows", "applied",
                                                   "error_count")} for feed in feeds],
    }


def configs(ctx: Context, fingerprint_db: Path, label: str = "",
            **target: Any) -> tuple[Path, Path]:
    """Tap and target configs; the target's report goes to its own folder per `label`."""
    sf, pzn = ctx.salesforce, ctx.personalization
    output = ctx.scratch / f"target-personalization-out{label}"
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir()
    config = plugins.target_personalization_config(
        pzn.url, pzn.ca_bundle, ctx.data_dir / "personalization" / "inbound", output)
    return (
        plugins.write_config(ctx.scratch / "tap-salesforce-crm.json",
                             plugins.tap_salesforce_config(sf.url, sf.ca_bundle)),
        plugins.write_config(ctx.scratch / f"target-personalization{label}.json",
                             {**config, "fingerprint_db": str(fingerprint_db), **target}),
    )


def fresh(path: Path) -> Path:
    """An empty fingerprint file: the run sends everything, as a first sync does."""
    path.unlink(missing_ok=True)
    return path


def _commands(configs: tuple[Path, Path]) -> tuple[list[str], list[str]]:
    return ([str(plugins.executable("tap-salesforce-crm")), "--config", str(configs[0])],
            [str(plugins.executable("target-personalization")), "--config", str(configs[1])])


def run(ctx: Context) -> dict[str, Any]:
    runs = [one_run(ctx, str(index), configs(ctx, fresh(ctx.scratch / "fingerprints.sqlite")))
            for index in range(ctx.repeat)]
    calls = runs[0]["calls"]
    for run_result in runs:
        del run_result["calls"]
    crm_rows = {name: ctx.seeded.counts.get(name, 0) for name in CRM_OBJECTS}
    records = sum(crm_rows.values())
    tap = median_usage([run["tap"] for run in runs])
    target = median_usage([run["target"] for run in runs])
    wall, net = median_of(runs, "wall_s"), median_of(runs, "net_wall_s")
    first = runs[0]
    return {
        "status": "ok",
        "records": records,
        "outcome": {
            "crm_rows": crm_rows, "tap_records": first["tap_records"],
            "feed_files": len(first["feeds"]),
            "feed_rows": sum(feed["rows"] or 0 for feed in first["feeds"]),
            "feed_rows_applied": sum(feed["applied"] or 0 for feed in first["feeds"]),
            "feed_errors": sum(feed["error_count"] or 0 for feed in first["feeds"]),
            "feeds_failed": sum(feed["status"] != "processed" for feed in first["feeds"]),
        },
        "pipeline": {"wall_s": wall, "sandbox_cpu_s": median_of(runs, "sandbox_cpu_s"),
                     "net_wall_s": net, "records_per_s": rate(records, wall),
                     "net_records_per_s": rate(records, net)},
        "tap_salesforce_crm": {**tap, "records_per_cpu_s": rate(records, tap["cpu_s"])},
        "target_personalization": {**target,
                                   "records_per_cpu_s": rate(records, target["cpu_s"])},
        "api_calls": {
            "salesforce": minimum.compare(first["salesforce_calls"],
                                          minimum.crm_read_minimum(crm_rows, RELATED_OBJECTS),
                                          calls),
            "personalization": first["personalization_calls"],
        },
        "runs": runs,
        "echo": echo.run(ctx, lambda label, db, **target: one_run(
            ctx, label, configs(ctx, db, f"-{label}", **target))),
    }


def profile(ctx: Context) -> dict[str, Any]:
    """The pipeline once, both ends under py-spy."""
    tap, target = _commands(configs(ctx, fresh(ctx.scratch / "fingerprints.sqlite")))
    raws = (ctx.scratch / "profile-tap-salesforce-crm.txt",
            ctx.scratch / "profile-target-personalization.txt")
    procs.profiled([tap, target], samples=raws, sampler=profiling.sampler,
                   logs=[ctx.scratch / "profile-tap-salesforce-crm.log",
                         ctx.scratch / "profile-target-personalization.log"])
    ctx.personalization.admin("POST", "process-inbound")
    return {"tap-salesforce-crm": profiling.summarise(raws[0]),
            "target-personalization": profiling.summarise(raws[1])}
