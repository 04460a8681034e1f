"""Path `bulk_api`: the same first sync written through Bulk API 1.0 and through Bulk API 2.0.

Each repetition restores the Salesforce seed before each run, then runs target-salesforce-crm
on the users stream once with `bulk_api: "1.0"` and once with `"2.0"`, each with a fresh
fingerprint file (so both write every matched contact). Reported side by side: wall, net and
CPU time, API calls by kind (from the sandbox's ledger), the outcome counts, and a digest of
the written contact fields, which must be the same for both.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from typing import Any

from emulators import defaults

from harness import plugins, procs
from harness.context import Context
from harness.stats import median_usage, ratio, with_rates

APIS = ("1.0", "2.0")
WRITTEN = "Personalization_User_Id__c != null"
FIELDS = ("Id,Personalization_User_Id__c,Personalization_Engagement_Score__c,"
          "Personalization_First_Activity__c,Personalization_Last_Activity__c")
OUTCOMES = ("candidates", "matched", "updated", "created", "unmatched", "ambiguous",
            "rejected", "bulk_batches")


def _label(api: str) -> str:
    return "bulk_" + api.replace(".", "_")


def _written_digest(ctx: Context) -> dict[str, Any]:
    """How many contacts carry written values, and a digest of those values."""
    rows = ctx.salesforce.admin("GET", "records/Contact",
                                params={"fields": FIELDS, "where": WRITTEN})
    rows.sort(key=lambda row: row["Id"])
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    return {"contacts": len(rows), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _run(ctx: Context, api: str, index: int) -> dict[str, Any]:
    ctx.servers.restore("salesforce")
    sf = ctx.salesforce
    label = f"{_label(api)}-{index}"
    output = ctx.scratch / f"bulk-api-out-{label}"
    shutil.rmtree(output, ignore_errors=True)
    config = {**plugins.target_salesforce_config(sf.url, sf.ca_bundle, output),
              "bulk_api": api,
              "fingerprint_db": str(ctx.scratch / f"bulk-api-fingerprints-{label}.sqlite")}
    path = plugins.write_config(ctx.scratch / f"target-salesforce-crm-{label}.json", config)
    sf.admin("POST", "limits",
             json={"DailyApiRequests": {"Remaining": defaults.SF_DAILY_API_REQUESTS}})
    sf.clear_ledger()
    cpu_before = sf.cpu_seconds()
    usage = procs.run([str(plugins.executable("target-salesforce-crm")), "--config", str(path)],
                      stdin=ctx.users_stream.path,
                      log=ctx.scratch / f"target-salesforce-crm-{label}.log")
    sandbox_cpu = round(sf.cpu_seconds() - cpu_before, 3)
    ledger = sf.ledger()
    report = json.loads((output / "report.json").read_text())
    contact = report.get("objects", {}).get("Contact", {})
    return {
        **usage.as_json(server_s=sandbox_cpu), "sandbox_cpu_s": sandbox_cpu,
        "api_calls": dict(sorted(ledger["by_kind"].items())),
        "api_calls_total": ledger["total"],
        "outcome": {"report_status": report.get("status"), "bulk_api": report.get("bulk_api"),
                    **{name: contact.get(name) for name in OUTCOMES}},
        "written": _written_digest(ctx),
    }


def run(ctx: Context) -> dict[str, Any]:
    records = ctx.users_stream.records
    runs: dict[str, list[dict[str, Any]]] = {api: [] for api in APIS}
    for index in range(ctx.repeat):
        for api in APIS:  # interleaved, so a change in machine load hits both alike
            runs[api].append(_run(ctx, api, index))
    ctx.servers.restore("salesforce")  # the next path starts from the seed
    sides = {}
    for api in APIS:
        first = runs[api][0]
        sides[_label(api)] = {
            **with_rates(median_usage(runs[api]), records),
            "api_calls": first["api_calls"], "api_calls_total": first["api_calls_total"],
            "outcome": first["outcome"], "written": first["written"],
        }
    one, two = sides["bulk_1_0"], sides["bulk_2_0"]
    same = (one["outcome"] | {"bulk_api": None, "bulk_batches": None}
            == two["outcome"] | {"bulk_api": None, "bulk_batches": None}
            and one["written"] == two["written"])
    return {
        "status": "ok",
        "records": records,
        **sides,
        "same_outcomes": same,
        "ratios": {
            "calls_2_vs_1": ratio(two["api_calls_total"], one["api_calls_total"]),
            "wall_2_vs_1": ratio(two["wall_s"], one["wall_s"]),
            "net_2_vs_1": ratio(two["net_wall_s"], one["net_wall_s"]),
        },
        "runs": runs,
    }
