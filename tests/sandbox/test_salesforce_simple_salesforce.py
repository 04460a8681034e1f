"""Unmodified simple-salesforce 1.12.10 against the Salesforce sandbox over TLS.

The session trusts the sandbox CA through `verify`; REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are
removed because requests lets them override a session's `verify`, which would make the
client trust the system store instead of the sandbox CA.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from emulators import defaults
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest


@pytest.fixture
def sf(salesforce_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Salesforce]:
    salesforce_sandbox.reset()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    session.verify = salesforce_sandbox.ca_bundle
    answer = session.post(f"{salesforce_sandbox.url}/services/oauth2/token",
                          data={"grant_type": "client_credentials"},
                          auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET), timeout=30)
    answer.raise_for_status()
    token = answer.json()
    with session:
        yield Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                         version="59.0", session=session)


def test_query_query_more_and_query_all_across_pages(salesforce_sandbox: Any,
                                                     sf: Salesforce) -> None:
    ids = salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"L{i}", "Email": f"user{i}@example.com"} for i in range(4100)])
    salesforce_sandbox.clear_ledger()

    first = sf.query("SELECT Id, Email FROM Contact")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    everything = sf.query_all("SELECT Id FROM Contact")

    assert (first["totalSize"], first["done"], len(first["records"])) == (4100, False, 2000)
    assert (second["done"], len(second["records"])) == (False, 2000)
    assert everything["done"] is True
    assert sorted(r["Id"] for r in everything["records"]) == sorted(ids)
    assert salesforce_sandbox.ledger()["by_kind"] == {"rest_query": 5}


def test_describe_limits_and_api_usage(salesforce_sandbox: Any, sf: Salesforce) -> None:
    described = sf.Contact.describe()
    limits = sf.limits()

    assert described["name"] == "Contact"
    assert "Email" in {field["name"] for field in described["fields"]}
    assert limits["DailyApiRequests"]["Max"] == defaults.SF_DAILY_API_REQUESTS
    assert limits["DailyApiRequests"]["Remaining"] == defaults.SF_DAILY_API_REQUESTS - 2
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == (2, defaults.SF_DAILY_API_REQUESTS)


def test_bulk_update_reports_the_rejected_record(salesforce_sandbox: Any,
                                                 sf: Salesforce) -> None:
    ids = salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": "A", "Email": "a@example.com"}, {"LastName": "B", "Email": "b@example.com"},
        {"LastName": "C", "Email": "c@example.com"}])

    results = sf.bulk.Contact.update([
        {"Id": ids[0], "Title": "Updated"},
        {"Id": ids[1], "Email": "not-an-email"},
        {"Id": ids[2], "Title": "Updated"},
    ])

    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    rows = {row["Id"]: row for row in salesforce_sandbox.admin(
        "GET", "records/Contact", params={"fields": "Id,Title,Email"})}
    assert [rows[i]["Title"] for i in ids] == ["Updated", None, "Updated"]
    assert rows[ids[1]]["Email"] == "b@example.com"
    by_kind = salesforce_sandbox.ledger()["by_kind"]
    assert (by_kind["bulk_job"], by_kind["bulk_batch"], by_kind["bulk_result"]) == (2, 1, 1)


def test_errors_map_to_simple_salesforce_exceptions(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Nope__c FROM Contact")
    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD"
