"""tap-salesforce-crm against the running Salesforce sandbox: first and incremental syncs.

Changes are made through the REST API (as a CRM user would), so the sandbox stamps them
itself; call counts come from the sandbox's ledger.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from emulators import defaults
from target_salesforce_crm import client as client_module
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.tap.schema import FieldAccessError
from target_salesforce_crm.tap.tap import TapSalesforceCRM

pytestmark = pytest.mark.integration

MAPPING = Path(__file__).resolve().parents[2] / "transforms" / "crm-to-personalization.yml"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EXTRA_FIELDS = {
    "contacts": ["Personalization_Engagement_Score__c"],
    "leads": ["Title", "Personalization_Engagement_Score__c"],
    "accounts": ["Name"],
}


@pytest.fixture
def sandbox(salesforce_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    salesforce_sandbox.reset()
    monkeypatch.setattr(client_module, "sleep", lambda seconds: None)
    return salesforce_sandbox


def tap_config(sandbox: Any, **extra: Any) -> dict[str, Any]:
    return {
        "auth_url": sandbox.url, "ca_bundle": sandbox.ca_bundle,
        "client_id": defaults.SF_CLIENT_ID, "client_secret": defaults.SF_CLIENT_SECRET,
        "mapping_file": str(MAPPING), "lookback_minutes": 0, "extra_fields": EXTRA_FIELDS,
        **extra,
    }


def stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def seed(sandbox: Any, sobject: str, rows: list[dict[str, Any]], *,
         step: dt.timedelta = dt.timedelta(seconds=1)) -> list[str]:
    """Rows stamped T0+step, T0+2·step, … so the overlap a bookmark implies is known."""
    stamped = []
    for i, row in enumerate(rows, start=1):
        at = stamp(T0 + i * step)
        stamped.append({**row, "CreatedDate": at, "LastModifiedDate": at, "SystemModstamp": at})
    return list(sandbox.admin("POST", f"records/{sobject}", json=stamped))


def sync(config: dict[str, Any], *, state: dict | None = None,
         catalog: dict | None = None) -> list[dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        TapSalesforceCRM(config=config, state=state, catalog=catalog).sync_all()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def emitted(messages: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by_stream: dict[str, dict[str, dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            by_stream.setdefault(message["stream"], {})[message["record"]["Id"]] = \
                message["record"]
    return by_stream


def last_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return [m for m in messages if m["type"] == "STATE"][-1]["value"]


def overlap(seeded: dict[str, str], bookmark: str, lookback_minutes: int) -> set[str]:
    """Ids the `>=` (bookmark floored to the second, minus look-back) bound reads again."""
    bound = dt.datetime.fromisoformat(bookmark).replace(microsecond=0) - dt.timedelta(
        minutes=lookback_minutes)
    return {rid for rid, at in seeded.items() if dt.datetime.fromisoformat(at) >= bound}


def stamps(sandbox: Any, sobject: str, ids: list[str]) -> dict[str, str]:
    rows = sandbox.admin("GET", f"records/{sobject}", params={"fields": "Id,SystemModstamp"})
    return {row["Id"]: row["SystemModstamp"] for row in rows if row["Id"] in ids}


def seed_crm(sandbox: Any) -> dict[str, list[str]]:
    accounts = seed(sandbox, "Account", [
        {"Name": f"Acme {i}", "Industry": "Media", "Type": "Prospect", "AnnualRevenue": 1000 * i,
         "NumberOfEmployees": 10 * i, "Personalization_Account_Id__c": f"acme-{i}"}
        for i in (1, 2, 3)])
    contacts = seed(sandbox, "Contact", [
        {"LastName": f"C{i}", "Email": f"c{i}@example.com", "Title": "Engineer",
         "Department": "IT", "LeadSource": "Web", "AccountId": accounts[i - 1],
         "Personalization_Engagement_Score__c": 0.5}
        for i in (1, 2, 3)])
    leads = seed(sandbox, "Lead", [
        {"LastName": f"L{i}", "Company": f"Co {i}", "Email": f"l{i}@example.com",
         "Status": "Open - Not Contacted", "Rating": "Cold", "Industry": "Retail",
         "Title": "Buyer", "Personalization_Engagement_Score__c": 0.1}
        for i in (1, 2, 3)])
    campaigns = seed(sandbox, "Campaign", [{"Name": "Spring Webinar 2026"}, {"Name": "Other"}])
    members = seed(sandbox, "CampaignMember", [
        {"CampaignId": campaigns[0], "ContactId": contacts[0], "Status": "Sent"},
        {"CampaignId": campaigns[0], "LeadId": leads[0], "Status": "Responded"},
        {"CampaignId": campaigns[1], "ContactId": contacts[1], "Status": "Sent"},
    ])
    return {"accounts": accounts, "contacts": contacts, "leads": leads,
            "campaigns": campaigns, "campaign_members": members}


SOBJECTS = {"accounts": "Account", "contacts": "Contact", "leads": "Lead",
            "campaign_members": "CampaignMember"}


def test_first_then_incremental_sync_emits_exactly_the_changes_and_deletions(
    sandbox: Any,
) -> None:
    ids = seed_crm(sandbox)
    seeded = {name: stamps(sandbox, SOBJECTS[name], ids[name]) for name in SOBJECTS}
    config = tap_config(sandbox)
    catalog = TapSalesforceCRM(config=config).catalog_dict
    sandbox.clear_ledger()

    first = sync(config, catalog=catalog)
    got = emitted(first)
    for name in SOBJECTS:
        assert set(got[name]) == set(ids[name]), name
    assert got["campaign_members"][ids["campaign_members"][0]]["Campaign"] == \
        {"Name": "Spring Webinar 2026"}
    assert got["accounts"][ids["accounts"][1]]["AnnualRevenue"] == 2000.0
    assert sandbox.ledger()["by_kind"] == {"oauth": 1, "rest_query": 4}  # no describe
    state = last_state(first)

    # A CRM user changes a text, a picklist and a number field on each object and edits
    # campaign membership: one member added, one removed.
    crm = SalesforceClient(tap_config(sandbox))
    rest = crm.rest_path
    contact, lead, account = ids["contacts"][0], ids["leads"][1], ids["accounts"][1]
    crm.request("PATCH", f"{rest}/sobjects/Contact/{contact}", kind="other", json={
        "Title": "VP Engineering", "LeadSource": "Partner Referral",
        "Personalization_Engagement_Score__c": 0.9})
    crm.request("PATCH", f"{rest}/sobjects/Lead/{lead}", kind="other", json={
        "Title": "Head of Buying", "Rating": "Hot", "Personalization_Engagement_Score__c": 0.7})
    crm.request("PATCH", f"{rest}/sobjects/Account/{account}", kind="other", json={
        "Name": "Acme Two Ltd", "Industry": "Technology", "AnnualRevenue": 2500000})
    added = crm.request("POST", f"{rest}/sobjects/CampaignMember/", kind="other", json={
        "CampaignId": ids["campaigns"][0], "ContactId": ids["contacts"][2]}).json()["id"]
    removed = ids["campaign_members"][0]
    crm.request("DELETE", f"{rest}/sobjects/CampaignMember/{removed}", kind="other")
    sandbox.clear_ledger()

    second = sync(config, state=state, catalog=catalog)
    got = emitted(second)
    changed = {"contacts": {contact}, "leads": {lead}, "accounts": {account},
               "campaign_members": {added, removed}}
    for name in SOBJECTS:
        bookmark = state["bookmarks"][name]["replication_key_value"]
        expected = changed[name] | overlap(seeded[name], bookmark, 0)
        assert set(got[name]) == expected, name
        # the overlap is one row per stream here: the row the bookmark was taken from
        assert len(expected - changed[name]) == 1, name
    assert got["contacts"][contact]["Title"] == "VP Engineering"
    assert got["contacts"][contact]["LeadSource"] == "Partner Referral"
    assert got["contacts"][contact]["Personalization_Engagement_Score__c"] == 0.9
    assert got["leads"][lead]["Title"] == "Head of Buying"
    assert got["leads"][lead]["Rating"] == "Hot"
    assert got["leads"][lead]["Personalization_Engagement_Score__c"] == 0.7
    assert got["accounts"][account]["Name"] == "Acme Two Ltd"
    assert got["accounts"][account]["Industry"] == "Technology"
    assert got["accounts"][account]["AnnualRevenue"] == 2500000.0
    assert got["campaign_members"][removed]["IsDeleted"] is True
    assert got["campaign_members"][added]["IsDeleted"] is False
    assert got["campaign_members"][added]["Campaign"] == {"Name": "Spring Webinar 2026"}
    assert sandbox.ledger()["by_kind"] == {"oauth": 1, "rest_query": 4}
    for name in SOBJECTS:
        new_bookmark = last_state(second)["bookmarks"][name]["replication_key_value"]
        assert new_bookmark > state["bookmarks"][name]["replication_key_value"], name


def test_lookback_rereads_the_window_before_the_bookmark_and_keeps_it(sandbox: Any) -> None:
    ids = seed(sandbox, "Contact", [{"LastName": f"C{i}", "Email": f"c{i}@example.com"}
                                    for i in range(4)], step=dt.timedelta(minutes=30))
    seeded = stamps(sandbox, "Contact", ids)
    config = tap_config(sandbox, lookback_minutes=45)
    catalog = TapSalesforceCRM(config=config).catalog_dict
    contacts_only = {**catalog, "streams": [
        {**s, "metadata": [
            {**m, "metadata": {**m["metadata"], "selected": s["tap_stream_id"] == "contacts"}}
            if m["breadcrumb"] == [] else m for m in s["metadata"]]}
        for s in catalog["streams"]]}
    state = last_state(sync(config, catalog=contacts_only))
    bookmark = state["bookmarks"]["contacts"]["replication_key_value"]

    again = sync(config, state=state, catalog=contacts_only)
    assert set(emitted(again)["contacts"]) == overlap(seeded, bookmark, 45)
    assert len(overlap(seeded, bookmark, 45)) == 2  # T0+1h30 and T0+2h; not T0+1h
    assert last_state(again)["bookmarks"]["contacts"]["replication_key_value"] == bookmark


def contacts_only(config: dict[str, Any]) -> dict[str, Any]:
    catalog = TapSalesforceCRM(config=config).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == "contacts"
    return catalog


def test_pages_of_2000_are_followed(sandbox: Any) -> None:
    sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"P{i}", "Email": f"p{i}@example.com"} for i in range(2100)])
    config = tap_config(sandbox)
    catalog = contacts_only(config)
    sandbox.clear_ledger()
    messages = sync(config, catalog=catalog)
    assert len(emitted(messages)["contacts"]) == 2100
    assert sandbox.ledger()["by_kind"]["rest_query"] == 2


def test_rows_changed_between_pages_are_read_by_the_next_run(
        sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CRM user edits contacts while the tap is between pages of its query.

    The cursor fixed the order when the query ran; page 2 comes back with the edited row's
    new, later stamp. The run completes without it, its bookmark stays below the edits, and
    the next run reads both edited rows with their new values.
    """
    ids = seed(sandbox, "Contact", [{"LastName": f"P{i}", "Email": f"p{i}@example.com"}
                                    for i in range(2100)])
    early, late = ids[10], ids[2050]  # on page 1 and page 2 of the cursor
    monkeypatch.setattr(client_module, "sleep", time.sleep)  # the read ceiling's real wait
    config = tap_config(sandbox)
    catalog = contacts_only(config)
    crm = SalesforceClient(tap_config(sandbox))
    query = SalesforceClient.query

    def edited_after_page_one(self: SalesforceClient, soql: str,
                              **kwargs: Any) -> Iterator[dict[str, Any]]:
        for number, row in enumerate(query(self, soql, **kwargs), start=1):
            if number == 2000:  # page 1 read; page 2 not asked for yet
                for contact in (early, late):
                    crm.request("PATCH", f"{crm.rest_path}/sobjects/Contact/{contact}",
                                kind="other", json={"Title": "Edited mid-read"})
            yield row

    monkeypatch.setattr(SalesforceClient, "query", edited_after_page_one)
    first = sync(config, catalog=catalog)
    monkeypatch.setattr(SalesforceClient, "query", query)

    got = emitted(first)["contacts"]
    assert set(got) == set(ids) - {late}
    assert got[early]["Title"] is None  # read before the edit
    bookmark = last_state(first)["bookmarks"]["contacts"]["replication_key_value"]
    assert bookmark == stamp(T0 + 2100 * dt.timedelta(seconds=1))  # the last seeded row

    second = emitted(sync(config, catalog=catalog, state=last_state(first)))["contacts"]
    assert {early, late} <= set(second)
    assert second[early]["Title"] == second[late]["Title"] == "Edited mid-read"


def test_discovery_names_a_hidden_mapping_field_and_the_permission(sandbox: Any) -> None:
    sandbox.admin("POST", "field-access",
                  json={"object": "Contact", "field": "Department", "access": "hidden"})
    with pytest.raises(FieldAccessError) as caught:
        _ = TapSalesforceCRM(config=tap_config(sandbox)).streams
    message = str(caught.value)
    assert "Contact field(s) not readable by the integration user: Department" in message
    assert str(MAPPING) in message
    assert "Field-Level Security" in message


def run_cli(config: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    script = Path(sys.executable).parent / "tap-salesforce-crm"
    return subprocess.run([str(script), "--config", str(path), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_connection_test_passes_and_reads_at_most_two_rows_per_stream(
    sandbox: Any, tmp_path: Path,
) -> None:
    seed_crm(sandbox)
    sandbox.clear_ledger()
    result = run_cli(tap_config(sandbox), tmp_path, "--test")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()
               if line.startswith('{"type":"RECORD"') or line.startswith('{"type": "RECORD"')]
    assert {r["stream"] for r in records} == set(SOBJECTS)
    assert sandbox.ledger()["by_kind"] == {"oauth": 1, "describe": 5, "rest_query": 4}


def test_connection_test_failure_is_one_plain_line_without_the_secret(
    sandbox: Any, tmp_path: Path,
) -> None:
    result = run_cli(tap_config(sandbox, client_secret="wrong-secret-value"), tmp_path, "--test")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Connection test failed: ")
    assert "client_secret" in last
    assert "Traceback" not in result.stderr
    assert "wrong-secret-value" not in result.stderr
