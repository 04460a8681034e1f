"""Echo-free two-way sync: what the reverse run sends after a forward sync rewrote the CRM.

Every contact target-salesforce-crm writes gets a new `SystemModstamp`, so the next
`tap-salesforce-crm | target-personalization` run reads it again. With change detection
the target sends only values Personalization was not confirmed to hold. Steps, on one
fingerprint file:
1. `baseline`: a first reverse sync (empty fingerprints): everything is sent;
2. a forward sync of the users stream writes N contacts (its own fingerprints empty, so
   it rewrites every matched contact, as a first sync does);
3. `after_forward`: the reverse run again. Goal: 0 feed rows and 0 events;
4. `changed_feed`: CHANGED contacts get a new Title through the REST API; the reverse run
   sends exactly CHANGED feed rows;
5. `changed_events`: CHANGED other contacts change, the reverse run with `event_api`
   sends exactly CHANGED events (and no feed row).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from emulators import defaults

from harness import plugins, procs
from harness.context import Context

CHANGED = 20
API_VERSION = "59.0"
WRITTEN = "Personalization_User_Id__c != null"

#: (label, fingerprint file, target settings) → one reverse run's result (reverse_path).
Reverse = Callable[..., dict[str, Any]]


def _forward_sync(ctx: Context) -> dict[str, Any]:
    """target-salesforce-crm over the users stream with empty fingerprints: writes N."""
    sf = ctx.salesforce
    output = ctx.scratch / "echo-forward-out"
    shutil.rmtree(output, ignore_errors=True)
    fingerprints = ctx.scratch / "echo-forward-fingerprints.sqlite"
    fingerprints.unlink(missing_ok=True)
    config = plugins.write_config(ctx.scratch / "echo-target-salesforce-crm.json", {
        **plugins.target_salesforce_config(sf.url, sf.ca_bundle, output),
        "fingerprint_db": str(fingerprints)})
    sf.admin("POST", "limits",
             json={"DailyApiRequests": {"Remaining": defaults.SF_DAILY_API_REQUESTS}})
    usage = procs.run([str(plugins.executable("target-salesforce-crm")), "--config", str(config)],
                      stdin=ctx.users_stream.path,
                      log=ctx.scratch / "echo-target-salesforce-crm.log")
    contact = json.loads((output / "report.json").read_text())["objects"].get("Contact", {})
    return {"wall_s": usage.wall_s, "contacts_written": int(contact.get("updated", 0))}


def _change_titles(ctx: Context, skip: int) -> list[str]:
    """CHANGED contacts that the forward sync matched get a new Title, as a CRM user would."""
    sf = ctx.salesforce
    rows = sf.admin("GET", "records/Contact", params={"fields": "Id,Title", "where": WRITTEN})
    chosen = sorted(rows, key=lambda row: row["Id"])[skip:skip + CHANGED]
    token = requests.post(
        f"{sf.url}/services/oauth2/token", data={"grant_type": "client_credentials"},
        auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET), verify=sf.ca_bundle,
        timeout=60).json()
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token['access_token']}"
        for row in chosen:
            answer = session.patch(
                f"{token['instance_url']}/services/data/v{API_VERSION}/sobjects/Contact/"
                f"{row['Id']}", json={"Title": f"{row.get('Title') or 'Contact'} (changed)"},
                verify=sf.ca_bundle, timeout=60)
            answer.raise_for_status()
    return [row["Id"] for row in chosen]


def _sent(result: dict[str, Any], report: Path) -> dict[str, Any]:
    """What one reverse run sent, per the sandbox, and what its target reported unchanged."""
    summary = json.loads(report.read_text())
    return {
        "feed_files": len(result["feeds"]),
        "feed_rows": sum(feed["rows"] or 0 for feed in result["feeds"]),
        "feed_rows_by_feed": {feed["feed"]: feed["rows"] for feed in result["feeds"]},
        "events": int(result["personalization_calls"].get("event", 0)),
        "unchanged_records": summary.get("unchanged_records"),
        "earlier_feed_files": summary.get("earlier_feed_files"),
        "tap_records": result["tap_records"],
        "salesforce_calls": result["salesforce_calls"],
        "wall_s": result["wall_s"],
        "tap_cpu_s": result["tap"]["cpu_s"],
        "target_cpu_s": result["target"]["cpu_s"],
        "sandbox_cpu_s": result["sandbox_cpu_s"],
    }


def run(ctx: Context, reverse: Reverse) -> dict[str, Any]:
    db = ctx.scratch / "echo-fingerprints.sqlite"
    db.unlink(missing_ok=True)

    def step(label: str, **target: Any) -> dict[str, Any]:
        result = reverse(label, db, **target)
        return _sent(result, ctx.scratch / f"target-personalization-out-{label}" / "report.json")

    baseline = step("echo-baseline")
    forward = _forward_sync(ctx)
    after_forward = step("echo-after-forward")
    changed = _change_titles(ctx, 0)
    changed_feed = step("echo-changed-feed")
    _change_titles(ctx, CHANGED)
    changed_events = step("echo-changed-events", delivery="event_api")
    return {
        "changed_per_step": CHANGED,
        "forward_sync": forward,
        "baseline": baseline,
        "after_forward": after_forward,
        "changed_feed": changed_feed,
        "changed_events": changed_events,
        "changed_contacts": changed,
        "met": {
            "after_forward_nothing_sent": after_forward["feed_rows"] == 0
            and after_forward["events"] == 0,
            "changed_feed_exact": changed_feed["feed_rows"] == len(changed)
            and changed_feed["events"] == 0,
            "changed_events_exact": changed_events["events"] == CHANGED
            and changed_events["feed_rows"] == 0,
        },
    }
