"""Path 3: tap-personalization exporting every user, against a bare `requests` loop.

The tap writes to a file (page cache, cheaper than a consuming process) whose RECORD lines
are counted after the clock stopped; the bare loop asks for the same pages with the same
page size. Both are measured from outside, the tap with `users` as its only stream.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from emulators import defaults

from harness import minimum, plugins, procs, profiling
from harness.context import Context
from harness.stats import median_usage, ratio, with_rates

BARE_HTTP = Path(__file__).with_name("bare_http.py")
RECORD_PREFIX = b'{"type":"RECORD"'


def _catalog(ctx: Context, config: Path) -> Path:
    discovered = ctx.scratch / "tap-discovered.json"
    procs.run([str(plugins.executable("tap-personalization")), "--config", str(config),
               "--discover"], stdout=discovered, log=ctx.scratch / "tap-discover.log")
    catalog = ctx.scratch / "tap-catalog.json"
    catalog.write_text(json.dumps(plugins.users_only_catalog(json.loads(discovered.read_text()))))
    return catalog


def _count_records(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.startswith(RECORD_PREFIX))


def _tap_run(ctx: Context, config: Path, catalog: Path, index: int) -> dict[str, Any]:
    pzn = ctx.personalization
    out = ctx.scratch / "tap-out.jsonl"
    pzn.clear_ledger()
    cpu_before = pzn.cpu_seconds()
    usage = procs.run([str(plugins.executable("tap-personalization")), "--config", str(config),
                       "--catalog", str(catalog)], stdout=out,
                      log=ctx.scratch / f"tap-personalization-{index}.log")
    sandbox_cpu = round(pzn.cpu_seconds() - cpu_before, 3)
    calls = dict(pzn.ledger(limit=0)["by_kind"])
    records = _count_records(out)
    out.unlink()
    return {**usage.as_json(server_s=sandbox_cpu), "sandbox_cpu_s": sandbox_cpu,
            "records": records, "api_calls": calls}


def _bare_run(ctx: Context, index: int) -> dict[str, Any]:
    pzn = ctx.personalization
    out = ctx.scratch / f"bare-{index}.json"
    env = {"BENCH_PZN_API_KEY_SECRET": defaults.PZN_API_KEY_SECRET}
    pzn.clear_ledger()
    cpu_before = pzn.cpu_seconds()
    usage = procs.run([sys.executable, str(BARE_HTTP), pzn.url, defaults.PZN_DATASET,
                       defaults.PZN_API_KEY_ID, pzn.ca_bundle, str(plugins.PAGE_SIZE)],
                      stdout=out, env=env, log=ctx.scratch / f"bare-http-{index}.log")
    sandbox_cpu = round(pzn.cpu_seconds() - cpu_before, 3)
    answer = json.loads(out.read_text())
    return {**usage.as_json(server_s=sandbox_cpu), "sandbox_cpu_s": sandbox_cpu, **answer,
            "api_calls": dict(pzn.ledger(limit=0)["by_kind"])}


def run(ctx: Context) -> dict[str, Any]:
    pzn = ctx.personalization
    config = plugins.write_config(ctx.scratch / "tap-personalization.json",
                                  plugins.tap_personalization_config(pzn.url, pzn.ca_bundle))
    catalog = _catalog(ctx, config)
    tap_runs, bare_runs = [], []
    for index in range(ctx.repeat):
        tap_runs.append(_tap_run(ctx, config, catalog, index))
        bare_runs.append(_bare_run(ctx, index))
    users = ctx.seeded.counts["users"]
    tap = with_rates(median_usage(tap_runs), users)
    bare = with_rates(median_usage(bare_runs), users)
    return {
        "status": "ok",
        "records": users,
        "outcome": {"tap_records": tap_runs[0]["records"],
                    "bare_records": bare_runs[0]["records"], "bare_pages": bare_runs[0]["pages"]},
        "tap_personalization": tap,
        "bare_http": bare,
        "ratios": {
            "vs_bare_wall": ratio(tap["records_per_s"], bare["records_per_s"]),
            "vs_bare_net": ratio(tap["net_records_per_s"], bare["net_records_per_s"]),
            "vs_bare_cpu": ratio(tap["records_per_cpu_s"], bare["records_per_cpu_s"]),
        },
        "api_calls": minimum.compare(tap_runs[0]["api_calls"],
                                     minimum.tap_minimum(users, plugins.PAGE_SIZE)),
        "runs": {"tap_personalization": tap_runs, "bare_http": bare_runs},
    }


def profile(ctx: Context) -> dict[str, Any]:
    pzn = ctx.personalization
    config = plugins.write_config(ctx.scratch / "tap-personalization.json",
                                  plugins.tap_personalization_config(pzn.url, pzn.ca_bundle))
    raw = ctx.scratch / "profile-tap.txt"
    command = [str(plugins.executable("tap-personalization")), "--config", str(config),
               "--catalog", str(_catalog(ctx, config))]
    procs.profiled([command], logs=[ctx.scratch / "profile-tap.log"], samples=[raw],
                   sampler=profiling.sampler)
    return {"tap-personalization": profiling.summarise(raw)}
