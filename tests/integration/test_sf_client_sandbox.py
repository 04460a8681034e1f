"""The Salesforce client layer against the running Salesforce sandbox, over TLS.

Call counts are read from the sandbox's own ledger, not from the client, so they show what
really crossed the wire.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from emulators import defaults
from emulators.tls import ensure_certificates
from target_salesforce_crm import client as client_module
from target_salesforce_crm import soql
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import AuthenticationError, TLSTrustError
from target_salesforce_crm.target.bulk import BulkClient

pytestmark = pytest.mark.integration
TRANSFORMS = Path(__file__).resolve().parents[2] / "transforms"


@pytest.fixture
def sandbox(salesforce_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    salesforce_sandbox.reset()
    monkeypatch.setattr(client_module, "sleep", lambda seconds: None)
    return salesforce_sandbox


def _base(sandbox: Any) -> dict[str, Any]:
    return {"auth_url": sandbox.url, "ca_bundle": sandbox.ca_bundle, "max_retries": 3}


def _flows(sandbox: Any) -> dict[str, dict[str, Any]]:
    key = Path(sandbox.data_dir) / "salesforce" / "jwt-private-key.pem"
    return {
        "client credentials": {"client_id": defaults.SF_CLIENT_ID,
                               "client_secret": defaults.SF_CLIENT_SECRET},
        "JWT bearer": {"client_id": defaults.SF_CLIENT_ID, "username": defaults.SF_USERNAME,
                       "private_key_path": str(key)},
        "refresh token": {"client_id": defaults.SF_CLIENT_ID,
                          "client_secret": defaults.SF_CLIENT_SECRET,
                          "refresh_token": defaults.SF_REFRESH_TOKEN},
        "username-password": {"client_id": defaults.SF_CLIENT_ID,
                              "client_secret": defaults.SF_CLIENT_SECRET,
                              "username": defaults.SF_USERNAME,
                              "password": defaults.SF_PASSWORD},
    }


def _client(sandbox: Any, flow: str = "client credentials", **extra: Any) -> SalesforceClient:
    return SalesforceClient({**_base(sandbox), **_flows(sandbox)[flow], **extra},
                            plugin_name="target-salesforce-crm")


def _kinds(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.ledger()["by_kind"])


@pytest.mark.parametrize("flow", ["client credentials", "JWT bearer", "refresh token",
                                  "username-password"])
def test_every_oauth_flow_reaches_the_api(sandbox: Any, flow: str) -> None:
    sf = _client(sandbox, flow)
    assert sf.authenticator.flow_name == flow
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == defaults.SF_DAILY_API_REQUESTS
    assert sf.session().instance_url == sandbox.url
    assert _kinds(sandbox) == {"oauth": 1, "limits": 1}
    assert sf.api_calls == {"auth": 1, "limits": 1}
    assert sf.api_usage is not None
    assert sf.api_usage[1] == defaults.SF_DAILY_API_REQUESTS


def test_existing_session_id_is_used_without_token_call(sandbox: Any) -> None:
    token = _client(sandbox).session().access_token
    sandbox.clear_ledger()
    sf = SalesforceClient({**_base(sandbox), "session_id": token, "instance_url": sandbox.url})
    assert sf.describe("Contact")["name"] == "Contact"
    assert _kinds(sandbox) == {"describe": 1}


def test_describe_is_fetched_once_and_honours_field_security(sandbox: Any) -> None:
    sf = _client(sandbox)
    fields = {f["name"]: f for f in sf.describe("Contact")["fields"]}
    sf.describe("Contact")
    assert fields["Personalization_User_Id__c"]["externalId"] is True
    assert "Internal_Notes__c" not in fields  # hidden from the integration user
    assert fields["Legacy_Score__c"]["updateable"] is False
    assert _kinds(sandbox) == {"oauth": 1, "describe": 1}


def test_rest_query_pages_through_next_records_url(sandbox: Any) -> None:
    sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"Page{i:04d}", "Email": f"page{i:04d}@example.com"} for i in range(2_500)])
    sf = _client(sandbox)
    rows = list(sf.query("SELECT Id, Email FROM Contact ORDER BY Email"))
    assert len(rows) == 2_500
    assert rows[0]["Email"] == "page0000@example.com"
    assert rows[-1]["Email"] == "page2499@example.com"
    assert "attributes" not in rows[0]
    assert len({row["Id"] for row in rows}) == 2_500
    assert _kinds(sandbox) == {"oauth": 1, "rest_query": 2}


def test_soap_query_looks_up_1000_long_emails_in_one_call(sandbox: Any) -> None:
    emails = [f"someone.with.a.rather.long.name.{i:04d}@subsidiary.example-enterprise.com"
              for i in range(1_000)]
    sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"L{i}", "Email": email, "Personalization_Engagement_Score__c": i / 4}
        for i, email in enumerate(emails)])
    [clause] = soql.in_clauses("Email", emails, max_chars=95_000)
    assert len(clause) > 16_384  # could never travel in a REST URI
    statement = " ".join(("SELECT Id, Email, Personalization_Engagement_Score__c FROM Contact "
                          "WHERE", clause))
    sf = _client(sandbox)
    rows = list(sf.soap_query(statement))
    assert sorted(row["Email"] for row in rows) == sorted(emails)
    by_email = {row["Email"]: row for row in rows}
    assert by_email[emails[6]]["Personalization_Engagement_Score__c"] == 1.5
    kinds = _kinds(sandbox)
    assert kinds["soap_query"] == 1
    assert kinds == {"oauth": 1, "soap_query": 1, "describe": 1}


def test_soap_rows_equal_rest_rows(sandbox: Any) -> None:
    [account] = sandbox.admin("POST", "records/Account", json=[
        {"Name": "Acme & Sons <Ltd>", "AnnualRevenue": 2_500_000, "NumberOfEmployees": 40}])
    sandbox.admin("POST", "records/Contact", json=[
        {"LastName": "O'Brien", "Email": "ob@example.com", "AccountId": account,
         "Personalization_Engagement_Score__c": 0.125,
         "Personalization_Last_Activity__c": "2024-03-01T10:20:30.000+0000",
         "Personalization_Tier__c": "Gold"},
        {"LastName": "Nil", "Email": None},
    ])
    statement = ("SELECT Id, LastName, Email, Personalization_Engagement_Score__c, "
                 "Personalization_Last_Activity__c, Personalization_Tier__c, IsDeleted, "
                 "Account.Name, Account.AnnualRevenue, Account.NumberOfEmployees "
                 "FROM Contact ORDER BY LastName")
    sf = _client(sandbox)
    rest_rows = list(sf.query(statement))
    soap_rows = list(sf.soap_query(statement, batch_size=200))
    assert soap_rows == rest_rows
    assert rest_rows[1]["LastName"] == "O'Brien"
    assert rest_rows[1]["Account"]["Name"] == "Acme & Sons <Ltd>"
    assert rest_rows[1]["IsDeleted"] is False
    assert rest_rows[0]["Email"] is None


def test_soap_query_more_pages(sandbox: Any) -> None:
    sandbox.admin("POST", "records/Lead", json=[
        {"LastName": f"Lead{i}", "Company": "Co"} for i in range(450)])
    sf = _client(sandbox)
    rows = list(sf.soap_query("SELECT Id, LastName FROM Lead", batch_size=200))
    assert len({row["Id"] for row in rows}) == 450
    assert _kinds(sandbox)["soap_query"] == 3


def test_bulk_update_job_with_results(sandbox: Any) -> None:
    ids = sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"B{i}", "Email": f"b{i}@example.com"} for i in range(5)])
    sf = _client(sandbox)
    driver = BulkClient(sf, poll_initial=0.05, poll_max=0.2, poll_timeout=60)
    job = driver.create_job("update", "Contact")
    first = driver.add_batch(job, [{"Id": ids[0], "Title": "CTO"},
                                   {"Id": ids[1], "Email": "not-an-email"},
                                   {"Id": ids[2], "Personalization_Tier__c": "Platinum"}])
    second = driver.add_batch(job, [{"Id": ids[3], "Title": "CEO"}])
    driver.close_job(job)
    results = {batch.batch_id: batch for batch in driver.wait(job, [first, second])}
    assert {b.state for b in results.values()} == {"Completed"}
    rows = results[first].rows
    assert [row["success"] for row in rows] == [True, False, False]
    assert rows[0]["id"] == ids[0]
    assert rows[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert rows[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert [row["success"] for row in results[second].rows] == [True]
    stored = {row["Id"]: row for row in sandbox.admin(
        "GET", "records/Contact", params={"fields": "Id,Title,Email"})}
    assert stored[ids[0]]["Title"] == "CTO"
    assert stored[ids[3]]["Title"] == "CEO"
    assert stored[ids[1]]["Email"] == "b1@example.com"
    kinds = _kinds(sandbox)
    assert kinds["bulk_job"] == 2  # create + close
    assert kinds["bulk_batch"] == 2
    assert kinds["bulk_result"] == 2
    assert kinds["bulk_poll"] == sf.api_calls["bulk"] - 6


def test_expired_session_mid_run_recovers(sandbox: Any) -> None:
    sf = _client(sandbox, "JWT bearer")
    sf.limits()
    assert sandbox.admin("POST", "sessions/expire")["expired"] >= 1
    assert sf.describe("Account")["name"] == "Account"
    sandbox.admin("POST", "sessions/expire")
    assert list(sf.soap_query("SELECT Id FROM Account")) == []
    calls = sandbox.ledger()["calls"]
    assert [(c["kind"], c["status"]) for c in calls] == [
        ("oauth", 200), ("limits", 200), ("describe", 401), ("oauth", 200), ("describe", 200),
        ("soap_query", 500), ("oauth", 200), ("soap_query", 200)]
    assert sf.api_calls == {"auth": 3, "limits": 1, "describe": 2, "query": 2}


def test_revoked_credentials_give_actionable_error(sandbox: Any) -> None:
    sf = _client(sandbox, "username-password")
    sf.limits()
    sandbox.admin("POST", "revoke", json={"reason": "ip restricted"})
    with pytest.raises(AuthenticationError) as caught:
        sf.describe("Contact")
    message = str(caught.value)
    assert "(invalid_grant: ip restricted)" in message
    assert "client_id, client_secret, username, password" in message
    assert "`meltano invoke target-salesforce-crm:test`" in message
    assert defaults.SF_PASSWORD not in message
    assert defaults.SF_CLIENT_SECRET not in message
    assert _kinds(sandbox) == {"oauth": 2, "limits": 1, "describe": 1}


def test_transient_faults_are_retried_and_counted(sandbox: Any) -> None:
    sf = _client(sandbox, max_retries=8)  # a seeded run: chance of 9 failures in a row ~0
    sf.session()
    sandbox.faults(http_503_rate=0.3, drop_rate=0.1, seed=7)
    for _ in range(12):
        assert "DailyApiRequests" in sf.limits()
    sandbox.faults()
    calls = [c for c in sandbox.ledger()["calls"] if c["kind"] == "limits"]
    assert sum(c["status"] == 200 for c in calls) == 12
    assert any(c["status"] in (0, 503) for c in calls)
    assert sf.api_calls["limits"] == len(calls)


def test_plain_http_urls_are_refused_before_any_call(sandbox: Any, tmp_path: Path) -> None:
    """target-salesforce-crm stops at start-up, before reading input; the tap at discovery."""
    plain = sandbox.url.replace("https://", "http://")
    config = {**_base(sandbox), **_flows(sandbox)["client credentials"], "auth_url": plain,
              "output_dir": str(tmp_path / "out")}
    sandbox.clear_ledger()
    for plugin, mapping in (
            ("target_salesforce_crm.target.target:TargetSalesforceCRM", "personalization-to-crm"),
            ("target_salesforce_crm.tap.tap:TapSalesforceCRM", "crm-to-personalization")):
        module, cls = plugin.split(":")
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**config, "mapping_file": str(TRANSFORMS / f"{mapping}.yml")}))
        args = ["--config", str(path)] + (["--discover"] if "tap" in cls.lower() else [])
        done = subprocess.run(
            [sys.executable, "-c", f"from {module} import {cls}; {cls}.cli()", *args],
            input="", capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stderr
        assert (f"auth_url must start with https:// (got {plain})") in done.stderr
        assert "Traceback" not in done.stderr
        assert defaults.SF_CLIENT_SECRET not in done.stderr + done.stdout
    assert sandbox.ledger()["total"] == 0


def test_a_server_certificate_the_ca_bundle_does_not_trust_fails_at_once(
        sandbox: Any, tmp_path: Path) -> None:
    """Another CA (not the sandbox's): one attempt, and the message says how to fix it."""
    other = tmp_path / "other-ca"
    other_ca = ensure_certificates(other)
    client = _client(sandbox, ca_bundle=str(other_ca))
    sandbox.clear_ledger()
    with pytest.raises(TLSTrustError, match=r"\(certificate not trusted\): set ca_bundle"):
        client.describe("Contact")
    assert client.authenticator.token_requests == 1
    assert sandbox.ledger()["total"] == 0  # the handshake failed: nothing reached the API
