"""Parent-record locks: the same load in input order, grouped by Account, and Serial.

A seed where Accounts have many Contacts (`contacts` under `accounts`), and an input that
visits them round-robin (record k is a Contact of Account k mod `accounts`): the order in
which a Personalization export meets them, and the worst one for Salesforce's parent
locks, since every batch holds children of every Account. The Salesforce sandbox processes
batches three at a time, holds a batch's Accounts until it ends (`record_processing_ms` of
server time per record stands for triggers and flows) and fails a contending row after
`lock_wait_seconds`. Each mode starts from the same seed, one after another:

- input order: `group_by_parent: false`, Parallel job (what the target did before);
- grouped: the defaults (batches cut by AccountId, a child waits while its Account is in
  a running batch), Parallel;
- serial: `concurrency_mode: Serial` (one batch at a time).
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulators import defaults
from emulators.tls import ensure_certificates

from harness import plugins, procs
from harness.sandbox import Sandboxes, Server

SEED_CHUNK = 5_000
MODES: dict[str, dict[str, Any]] = {
    "input order": {"group_by_parent": False},
    "grouped": {},
    "serial": {"concurrency_mode": "Serial"},
}
SCHEMA = {"type": "object", "properties": {
    "id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
    "engagementScore": {"type": ["number", "null"]}}}


@dataclass(frozen=True)
class LockLoad:
    """The load's shape and the sandbox's server behaviour."""

    contacts: int
    accounts: int
    record_processing_ms: float
    lock_wait_seconds: float
    batch_size: int
    repeat: int

    def faults(self) -> dict[str, float]:
        return {"record_processing_ms": self.record_processing_ms,
                "lock_wait_seconds": self.lock_wait_seconds}


def _email(contact: int, accounts: int) -> str:
    return f"c{contact % accounts}-{contact // accounts}@example.com"


def _seed(sf: Server, load: LockLoad) -> None:
    """Accounts, then Contacts; Contact k belongs to Account k mod `accounts`."""
    accounts: list[str] = []
    for start in range(0, load.accounts, SEED_CHUNK):
        accounts += sf.admin("POST", "records/Account", json=[
            {"Name": f"Account {n}"} for n in range(start, min(start + SEED_CHUNK, load.accounts))])
    for start in range(0, load.contacts, SEED_CHUNK):
        sf.admin("POST", "records/Contact", json=[
            {"LastName": f"Contact {k}", "Email": _email(k, load.accounts),
             "AccountId": accounts[k % load.accounts]}
            for k in range(start, min(start + SEED_CHUNK, load.contacts))])


def _users_stream(path: Path, load: LockLoad) -> Path:
    """SCHEMA and one RECORD per Contact, round-robin over the Accounts."""
    with path.open("w") as out:
        out.write(json.dumps({"type": "SCHEMA", "stream": "users", "schema": SCHEMA,
                              "key_properties": ["id"]}) + "\n")
        for k in range(load.contacts):
            record = {"id": f"u-{k}", "emailAddress": _email(k, load.accounts),
                      "engagementScore": k}
            out.write(json.dumps({"type": "RECORD", "stream": "users", "record": record})
                      + "\n")
    return path


def _run_mode(sandboxes: Sandboxes, load: LockLoad, scratch: Path, stream: Path, label: str,
              settings: dict[str, Any], index: int) -> dict[str, Any]:
    if index == 0 and label == next(iter(MODES)):
        sf = sandboxes.start("salesforce")  # the data folder is still the seed
    else:
        sf = sandboxes.restore("salesforce")  # the seed again, nothing written yet
    sf.admin("POST", "faults", json=load.faults())
    sf.admin("POST", "limits",
             json={"DailyApiRequests": {"Remaining": defaults.SF_DAILY_API_REQUESTS}})
    sf.clear_ledger()
    name = f"{label.replace(' ', '-')}-{index}"
    output = scratch / f"out-{name}"
    shutil.rmtree(output, ignore_errors=True)
    config = plugins.write_config(scratch / f"target-{name}.json", {
        **plugins.target_salesforce_config(sf.url, sf.ca_bundle, output),
        "fingerprint_db": str(scratch / f"fingerprints-{name}.sqlite"),
        "fail_on_rejects": load.contacts, "bulk_batch_size": load.batch_size, **settings})
    cpu_before = sf.cpu_seconds()
    usage = procs.run([str(plugins.executable("target-salesforce-crm")), "--config",
                       str(config)], stdin=stream, log=scratch / f"target-{name}.log")
    sandbox_cpu = round(sf.cpu_seconds() - cpu_before, 3)
    report = json.loads((output / "report.json").read_text())
    contact = report["objects"].get("Contact", {})
    rejects = [json.loads(line) for line in (output / "rejects.jsonl").open()]
    written = len(sf.admin("GET", "records/Contact", params={
        "fields": "Id", "where": "Personalization_Engagement_Score__c != null"}))
    return {
        **usage.as_json(), "sandbox_cpu_s": sandbox_cpu,
        "api_calls": dict(sf.ledger(limit=0)["by_kind"]),
        "updated": contact.get("updated", 0), "rejected": contact.get("rejected", 0),
        "lock_rejects": sum(1 for r in rejects if r.get("code") == "UNABLE_TO_LOCK_ROW"),
        "lock_retried": contact.get("lock_retried", 0), "retried": contact.get("retried", 0),
        "bulk_jobs": contact.get("bulk_jobs", 0), "bulk_batches": contact.get("bulk_batches", 0),
        "contacts_written": written, "status": report.get("status"),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the times; the counts of the first run (they do not depend on load)."""
    first = runs[0]
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        **{key: first[key] for key in ("updated", "rejected", "lock_rejects", "lock_retried",
                                       "retried", "bulk_jobs", "bulk_batches",
                                       "contacts_written", "api_calls", "status")},
        "runs": runs,
    }


def goals(modes: dict[str, dict[str, Any]], contacts: int) -> list[dict[str, Any]]:
    lock_rejects = {label: mode["lock_rejects"] for label, mode in modes.items()}
    grouped, serial = modes["grouped"]["wall_s"], modes["serial"]["wall_s"]
    return [
        {"goal": "0 lock failures reach the rejects file", "value": lock_rejects,
         "met": all(n == 0 for n in lock_rejects.values())},
        {"goal": "every contact written in every mode",
         "value": {label: mode["contacts_written"] for label, mode in modes.items()},
         "met": all(mode["contacts_written"] == contacts for mode in modes.values())},
        {"goal": "grouped parallel faster than serial",
         "value": f"{grouped:.1f} s vs {serial:.1f} s ({serial / grouped:.2f}x)",
         "met": grouped < serial},
    ]


def run(work_dir: Path, load: LockLoad) -> dict[str, Any]:
    """Seed once, then every mode `repeat` times, interleaved; medians per mode."""
    folder = work_dir / "locks" / f"{load.contacts}-{load.accounts}"
    shutil.rmtree(folder, ignore_errors=True)
    data_dir, pristine, scratch = folder / "run", folder / "seed", folder / "scratch"
    for path in (data_dir, pristine, scratch):
        path.mkdir(parents=True)
    ensure_certificates(data_dir)
    sandboxes = Sandboxes(data_dir, pristine)
    try:
        _seed(sandboxes.start("salesforce"), load)
        sandboxes.stop_all()
        shutil.copytree(data_dir / "salesforce", pristine / "salesforce")
        stream = _users_stream(scratch / "users.jsonl", load)
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in MODES}
        for index in range(load.repeat):
            for label, settings in MODES.items():
                runs[label].append(_run_mode(sandboxes, load, scratch, stream, label,
                                             settings, index))
    finally:
        sandboxes.stop_all()
    modes = {label: _summary(mode_runs) for label, mode_runs in runs.items()}
    shutil.rmtree(folder)
    return {"load": load.__dict__, "modes": modes, "goals": goals(modes, load.contacts)}
