"""Path 1 and its floors: the `users` stream into target-salesforce-crm, target-csv, a parser.

Two target runs per repetition: a first sync (Salesforce data restored to the seed, so
every matched contact is written) and right after it a re-run of the same input, where
nothing changed and the target should only look up. The consumers run interleaved (target,
re-run, target-csv, parse, target, …) so a change in machine load hits all of them alike.
For the target, the Salesforce sandbox's own CPU time during the run is subtracted to give
the plugin's net time: the emulator's SQLite work stands in for Salesforce's servers, which
a real run does not pay for on this machine.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from emulators import defaults

from harness import minimum, plugins, procs, profiling
from harness.bulk_timing import bulk_timing
from harness.context import Context
from harness.sandbox import Server
from harness.stats import median_usage, ratio, with_rates

PARSE_FLOOR = Path(__file__).with_name("parse_floor.py")
WRITTEN = "Personalization_User_Id__c != null"


def _written_contacts(sf: Server) -> int:
    """Contacts the sync wrote (they carry the Personalization user id), per the sandbox."""
    return len(sf.admin("GET", "records/Contact", params={"fields": "Id", "where": WRITTEN}))


def _target_command(ctx: Context, output: Path) -> list[str]:
    """The target's command line on a fresh output folder, with a full daily API allowance."""
    sf = ctx.salesforce
    shutil.rmtree(output, ignore_errors=True)
    config = plugins.write_config(
        ctx.scratch / "target-salesforce-crm.json",
        plugins.target_salesforce_config(sf.url, sf.ca_bundle, output))
    sf.admin("POST", "limits",
             json={"DailyApiRequests": {"Remaining": defaults.SF_DAILY_API_REQUESTS}})
    return [str(plugins.executable("target-salesforce-crm")), "--config", str(config)]


def _target_run(ctx: Context, index: int, label: str) -> dict[str, Any]:
    sf = ctx.salesforce
    output = ctx.scratch / f"target-out-{label}-{index}"
    command = _target_command(ctx, output)
    sf.clear_ledger()
    cpu_before = sf.cpu_seconds()
    usage = procs.run(command, stdin=ctx.users_stream.path,
                      log=ctx.scratch / f"target-salesforce-crm-{label}-{index}.log")
    sandbox_cpu = round(sf.cpu_seconds() - cpu_before, 3)
    ledger = sf.ledger()
    report = json.loads((output / "report.json").read_text())
    return {
        **usage.as_json(server_s=sandbox_cpu), "sandbox_cpu_s": sandbox_cpu,
        "api_calls": dict(ledger["by_kind"]), "calls": ledger["calls"],
        "bulk": bulk_timing(sf.url, sf.ca_bundle, ledger["calls"]),
        "report": {"status": report.get("status"), "objects": report.get("objects", {})},
    }


def _csv_run(ctx: Context, index: int) -> dict[str, Any]:
    folder = ctx.scratch / f"csv-out-{index}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    config = plugins.write_config(ctx.scratch / "target-csv.json", {"output_path": str(folder)})
    usage = procs.run([str(plugins.target_csv()), "--config", str(config)],
                      stdin=ctx.users_stream.path, log=ctx.scratch / f"target-csv-{index}.log")
    rows = 0
    for written in folder.glob("*.csv"):
        with written.open("rb") as handle:
            rows += sum(1 for _ in handle) - 1  # header
    shutil.rmtree(folder)
    return {**usage.as_json(), "rows_written": rows}


def _parse_run(ctx: Context, index: int) -> dict[str, Any]:
    out = ctx.scratch / f"parse-{index}.json"
    usage = procs.run([sys.executable, str(PARSE_FLOOR), str(ctx.users_stream.path)], stdout=out,
                      log=ctx.scratch / f"parse-{index}.log")
    return {**usage.as_json(), "records": json.loads(out.read_text())["records"]}


def _calls(run: dict[str, Any], candidates: int, matched: int) -> dict[str, Any]:
    return minimum.compare(run["api_calls"],
                           minimum.target_minimum({"Contact": candidates}, {"Contact": matched}),
                           run["calls"])


def _bulk(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "polls": [run["api_calls"].get("bulk_poll", 0) for run in runs],
        "server_batch_s": [run["bulk"]["server_batch_s"] for run in runs],
        "notice_latency_s": [run["bulk"]["notice_latency_s"] for run in runs],
        "jobs": runs[0]["bulk"]["jobs"], "batches": runs[0]["bulk"]["batches"],
    }


def _contact(run: dict[str, Any]) -> dict[str, Any]:
    return run["report"]["objects"].get("Contact", {})


def run(ctx: Context) -> dict[str, Any]:
    records, candidates = ctx.users_stream.records, ctx.users_stream.with_email
    first_runs, reruns, csv_runs, parse_runs = [], [], [], []
    written_before = written_after = 0
    for index in range(ctx.repeat):
        if index:
            ctx.servers.restore("salesforce")  # the seed again: a true first sync each time
        else:
            written_before = _written_contacts(ctx.salesforce)
        first_runs.append(_target_run(ctx, index, "first"))
        if index == 0:
            written_after = _written_contacts(ctx.salesforce)
        reruns.append(_target_run(ctx, index, "rerun"))
        csv_runs.append(_csv_run(ctx, index))
        parse_runs.append(_parse_run(ctx, index))

    target = with_rates(median_usage(first_runs), records)
    rerun = with_rates(median_usage(reruns), records)
    csv = with_rates(median_usage(csv_runs), records)
    parse = with_rates(median_usage(parse_runs), records)
    contact, rerun_contact = _contact(first_runs[0]), _contact(reruns[0])
    matched = int(contact.get("matched", 0))
    calls = _calls(first_runs[0], candidates, matched)
    calls_rerun = _calls(reruns[0], candidates, int(rerun_contact.get("updated", 0)))
    for run_result in (*first_runs, *reruns):
        del run_result["calls"]  # thousands of lines at 1M; the summaries keep the counts
    return {
        "status": "ok",
        "records": records,
        "outcome": {
            "report_status": first_runs[0]["report"]["status"],
            "candidates": contact.get("candidates"), "matched": matched,
            "updated": contact.get("updated"), "unmatched": contact.get("unmatched"),
            "ambiguous": contact.get("ambiguous"), "rejected": contact.get("rejected"),
            "rerun_updated": rerun_contact.get("updated"),
            "rerun_unchanged": rerun_contact.get("unchanged"),
            "sandbox_contacts_written_before": written_before,
            "sandbox_contacts_written_after": written_after,
            "csv_rows_written": csv_runs[0]["rows_written"],
            "parse_records": parse_runs[0]["records"],
        },
        "target_salesforce_crm": target,
        "target_salesforce_crm_rerun": rerun,
        "target_csv": csv,
        "parse": parse,
        "ratios": {
            "vs_target_csv_wall": ratio(target["records_per_s"], csv["records_per_s"]),
            "vs_target_csv_net": ratio(target["net_records_per_s"], csv["net_records_per_s"]),
            "vs_target_csv_cpu": ratio(target["records_per_cpu_s"], csv["records_per_cpu_s"]),
            "vs_parse_wall": ratio(target["records_per_s"], parse["records_per_s"]),
            "vs_parse_net": ratio(target["net_records_per_s"], parse["net_records_per_s"]),
            "rerun_vs_target_csv_net": ratio(rerun["net_records_per_s"],
                                             csv["net_records_per_s"]),
        },
        "api_calls": calls,
        "api_calls_rerun": calls_rerun,
        "bulk": _bulk(first_runs),
        "runs": {"target_salesforce_crm": first_runs, "target_salesforce_crm_rerun": reruns,
                 "target_csv": csv_runs, "parse": parse_runs},
    }


def profile(ctx: Context) -> dict[str, Any]:
    """One first sync and one re-run under py-spy."""
    summaries = {}
    ctx.servers.restore("salesforce")
    for label in ("first", "rerun"):
        raw = ctx.scratch / f"profile-target-{label}.txt"
        command = _target_command(ctx, ctx.scratch / f"target-out-profile-{label}")
        procs.profiled([command], logs=[ctx.scratch / f"profile-target-{label}.log"],
                       samples=[raw], sampler=profiling.sampler, stdin=ctx.users_stream.path)
        name = "target-salesforce-crm" + (" (re-run)" if label == "rerun" else "")
        summaries[name] = profiling.summarise(raw)
    return summaries
