"""How long the sandbox itself spent on Bulk batches, read back through the Bulk API.

After a measured run the harness authenticates like any client (client credentials) and
lists each job's batches: `createdDate` → `systemModstamp` of a finished batch is the time
the server held it (queue + processing). Joined with the ledger's timestamps it also shows
how long the plugin took to notice a finished job (its polling latency). These calls are
made after the run's ledger was read, so they never count against the plugin.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import requests
from emulators import defaults

API_VERSION = "59.0"
_JOB_PATH = re.compile(r"/services/async/[^/]+/job/(?P<job>[A-Za-z0-9]{15,18})")


def _when(text: str) -> float:
    """Epoch seconds of a Bulk date (…+0000) or a ledger timestamp (…Z)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text.replace("+0000", "+00:00")).timestamp()


def job_ids(calls: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for call in calls:
        match = _JOB_PATH.match(call["path"])
        if match:
            seen.setdefault(match["job"], None)
    return list(seen)


def _session(url: str, ca_bundle: str) -> str:
    answer = requests.post(f"{url}/services/oauth2/token", timeout=60, verify=ca_bundle,
                           data={"grant_type": "client_credentials"},
                           auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET))
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def bulk_timing(url: str, ca_bundle: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Server time on batches and the plugin's notice latency, for the jobs in `calls`."""
    jobs = job_ids(calls)
    if not jobs:
        return {"jobs": 0, "batches": 0, "server_batch_s": 0.0, "notice_latency_s": 0.0}
    token = _session(url, ca_bundle)
    intervals: list[tuple[float, float]] = []
    done: dict[str, float] = {}  # job -> when the server finished its last batch
    states: dict[str, int] = {}
    for job in jobs:
        answer = requests.get(f"{url}/services/async/{API_VERSION}/job/{job}/batch",
                              headers={"X-SFDC-Session": token}, verify=ca_bundle, timeout=60)
        answer.raise_for_status()
        for batch in answer.json()["batchInfo"]:
            states[batch["state"]] = states.get(batch["state"], 0) + 1
            start, stop = _when(batch["createdDate"]), _when(batch["systemModstamp"])
            intervals.append((start, stop))
            done[job] = max(done.get(job, stop), stop)
    # Per job: from the server finishing its last batch to the plugin's next call about
    # that job (a poll or a result fetch) = how long the plugin took to notice.
    latencies = []
    for call in calls:
        match = _JOB_PATH.match(call["path"])
        if match and match["job"] in done and _when(call["at"]) >= done[match["job"]]:
            latencies.append(_when(call["at"]) - done.pop(match["job"]))
    return {
        "jobs": len(jobs), "batches": len(intervals), "batch_states": states,
        "server_batch_s": round(_union_seconds(intervals), 3),
        "notice_latency_s": round(sum(latencies), 3),
        "notice_latency_max_s": round(max(latencies, default=0.0), 3),
    }
