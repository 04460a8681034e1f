"""A run of target-salesforce-crm built without the target: mapping, settings, factories.

What `run.py` promises a test or a notebook: the steps of the flow driven directly, against
the sandbox, with the same outcomes the plugin reaches.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from crm_sync_mapping import load_forward_mapping
from support.target_salesforce_crm import DEFAULT_MAPPING, config_for, kinds, records, seed
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.target.bulk import BulkClient
from target_salesforce_crm.target.run import RunSettings, SyncRun
from target_salesforce_crm.target.validation import Pending


def test_a_run_built_without_a_target_matches_writes_and_accounts_for_every_record(
        sf: Any, tmp_path: Path) -> None:
    [first, second] = seed(sf, "Contact", [
        {"LastName": "One", "Email": "one@example.com"},
        {"LastName": "Two", "Email": "two@example.com"},
    ])
    config = config_for(sf, tmp_path)
    settings = RunSettings(
        output_dir=tmp_path / "out", fingerprint_db=tmp_path / "fp.sqlite",
        lookup_batch_size=1000, bulk_batch_size=10_000, max_api_share=0.25,
        max_record_retries=3, retry_backoff=0.05, poll_max=0.2, dry_run=False,
        full_refresh=False,
    )
    logger = logging.getLogger("test-run")
    run = SyncRun(
        load_forward_mapping(DEFAULT_MAPPING), settings, logger=logger,
        connect=lambda: SalesforceClient(config, logger=logger, plugin_name="test"),
        bulk_for=lambda client: BulkClient(client, poll_initial=0.05, poll_max=0.2,
                                           poll_timeout=60),
    )
    sf.clear_ledger()
    run.streams_seen.add("users")

    run.drain("users", [
        Pending(0, {"id": "u-1", "emailAddress": "ONE@example.com", "engagementScore": 7}),
        Pending(1, {"id": "u-2", "emailAddress": "nobody@example.com"}),
        Pending(2, {"id": "u-3"}, problem="'emailAddress' is a required property"),
        Pending(3, {"id": "u-4", "emailAddress": "two@example.com", "engagementScore": 3}),
        # a valid ISO time with no UTC form: a reject of its own, not the end of the run
        Pending(4, {"id": "u-5", "emailAddress": "one@example.com",
                    "lastActivity": "9999-12-31T23:30:00-01:00"}),
    ])
    run.settle(close=True)
    run.finish(fail_on_rejects=5)

    scores = {row["Id"]: row["Personalization_Engagement_Score__c"]
              for row in records(sf, "Contact", "Id,Personalization_Engagement_Score__c")}
    assert scores == {first: 7, second: 3}
    contact = run.report.objects["Contact"]
    assert (contact.candidates, contact.updated, contact.unmatched) == (4, 2, 1)
    assert dict(contact.rejected) == {"INVALID_VALUE": 1}
    assert run.report.streams["users"].invalid == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "succeeded"
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open()]
    assert [(r["key"], r["code"]) for r in rejects] == [
        ("u-3", "INVALID_RECORD"), ("u-5", "INVALID_VALUE")]
    assert "outside the years 1 to 9999 in UTC" in rejects[1]["message"]
    ledger = kinds(sf)
    assert (ledger["describe"], ledger["soap_query"], ledger["bulk_batch"]) == (1, 1, 1)
