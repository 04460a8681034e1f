"""SalesforceClient: the request choke point, REST paging, SOAP query, describe, limits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from defusedxml.ElementTree import fromstring
from target_salesforce_crm import auth, client, soap
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.errors import (
    ApiError,
    AuthenticationError,
    RequestLimitExceeded,
    SalesforceError,
    TransientError,
)

AUTH_URL = "https://login.example.test"
TOKEN_URL = f"{AUTH_URL}/services/oauth2/token"
INSTANCE = "https://org.my.example.test"
REST = f"{INSTANCE}/services/data/v59.0"
SOAP_URL = f"{INSTANCE}/services/Soap/u/59.0"
BULK_JOB_URL = f"{INSTANCE}/services/async/59.0/job"
SOQL_NS = {"env": soap.SOAPENV, "urn": soap.PARTNER}
INVALID_SESSION_REST = [{"message": "Session expired or invalid",
                         "errorCode": "INVALID_SESSION_ID"}]

CONTACT_DESCRIBE = {"name": "Contact", "fields": [
    {"name": "Id", "type": "id"}, {"name": "Email", "type": "email"},
    {"name": "NumberOfVisits__c", "type": "int"},
    {"name": "Personalization_Engagement_Score__c", "type": "double"},
    {"name": "HasOptedOutOfEmail", "type": "boolean"}, {"name": "Birthdate", "type": "date"},
    {"name": "SystemModstamp", "type": "datetime"}, {"name": "AccountId", "type": "reference"},
]}
ACCOUNT_DESCRIBE = {"name": "Account", "fields": [
    {"name": "Id", "type": "id"}, {"name": "Name", "type": "string"},
    {"name": "AnnualRevenue", "type": "currency"},
]}


@pytest.fixture
def ca_bundle(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return str(path)


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(client, "sleep", waits.append)
    monkeypatch.setattr(auth, "sleep", waits.append)
    return waits


@pytest.fixture
def tokens(requests_mock: Any) -> Any:
    """Token endpoint that hands out token-1, token-2, ... on each request."""
    counter = {"n": 0}

    def grant(request: Any, context: Any) -> dict[str, Any]:
        counter["n"] += 1
        return {"access_token": f"token-{counter['n']}", "instance_url": INSTANCE,
                "issued_at": "1700000000000", "token_type": "Bearer"}

    return requests_mock.post(TOKEN_URL, json=grant)


@pytest.fixture
def sf(tokens: Any, ca_bundle: str, slept: list[float]) -> SalesforceClient:
    return SalesforceClient({"auth_url": AUTH_URL, "client_id": "cid", "client_secret": "cs",
                             "ca_bundle": ca_bundle, "max_retries": 3},
                            plugin_name="tap-salesforce-crm")


def _bearer(request: Any) -> str:
    return str(request.headers["Authorization"])


# -- the choke point -------------------------------------------------------------------------
def test_rest_reauthenticates_once_on_invalid_session(sf: SalesforceClient,
                                                      requests_mock: Any, ca_bundle: str) -> None:
    describe = requests_mock.get(f"{REST}/sobjects/Contact/describe", [
        {"status_code": 401, "json": INVALID_SESSION_REST},
        {"json": CONTACT_DESCRIBE, "headers": {"Sforce-Limit-Info": "api-usage=25/5000"}},
    ])
    assert sf.describe("Contact")["name"] == "Contact"
    assert [_bearer(r) for r in describe.request_history] == ["Bearer token-1", "Bearer token-2"]
    assert sf.api_calls == {"auth": 2, "describe": 2}
    assert sf.api_usage == (25, 5000)
    assert {r.verify for r in requests_mock.request_history} == {ca_bundle}


def test_second_invalid_session_is_fatal(sf: SalesforceClient, requests_mock: Any) -> None:
    requests_mock.get(f"{REST}/limits/", status_code=401, json=INVALID_SESSION_REST)
    with pytest.raises(AuthenticationError) as caught:
        sf.limits()
    message = str(caught.value)
    assert "freshly issued session (INVALID_SESSION_ID)" in message
    assert "`meltano invoke tap-salesforce-crm:test`" in message
    assert sf.api_calls == {"auth": 2, "limits": 2}


def test_soap_reauthenticates_with_new_session_in_envelope(
        sf: SalesforceClient, requests_mock: Any) -> None:
    fault = _soap_fault("INVALID_SESSION_ID",
                        "Invalid Session ID found in SessionHeader: Illegal Session")
    endpoint = requests_mock.post(SOAP_URL, [
        {"status_code": 500, "text": fault, "headers": {"Content-Type": "text/xml"}},
        {"text": _soap_reply("query", [], done=True)},
    ])
    assert list(sf.soap_query("SELECT Id FROM Contact")) == []
    sessions = [_envelope(r).findtext("env:Header/urn:SessionHeader/urn:sessionId",
                                      namespaces=SOQL_NS) for r in endpoint.request_history]
    assert sessions == ["token-1", "token-2"]
    assert sf.api_calls == {"auth": 2, "query": 2}


def test_bulk_reauthenticates_on_invalid_session_id(sf: SalesforceClient,
                                                    requests_mock: Any) -> None:
    endpoint = requests_mock.post(BULK_JOB_URL, [
        {"status_code": 400,
         "json": {"exceptionCode": "InvalidSessionId", "exceptionMessage": "Invalid session id"}},
        {"status_code": 201, "json": {"id": "750x"}},
    ])
    answer = sf.request("POST", "/services/async/59.0/job", kind="bulk", json={})
    assert answer.json() == {"id": "750x"}
    assert [r.headers["X-SFDC-Session"] for r in endpoint.request_history] == [
        "token-1", "token-2"]
    assert all("Authorization" not in r.headers for r in endpoint.request_history)
    assert sf.api_calls == {"auth": 2, "bulk": 2}


def test_retries_503_then_succeeds(sf: SalesforceClient, requests_mock: Any,
                                   slept: list[float]) -> None:
    endpoint = requests_mock.get(f"{REST}/limits/", [
        {"status_code": 503, "text": "Service Unavailable"},
        {"exc": requests.ConnectionError("connection reset")},
        {"json": {"DailyApiRequests": {"Max": 15000, "Remaining": 14000}}},
    ])
    assert sf.limits()["DailyApiRequests"]["Remaining"] == 14000
    assert endpoint.call_count == 3
    assert len(slept) == 2
    assert sf.api_calls["limits"] == 3


def test_retries_are_bounded_with_growing_backoff(sf: SalesforceClient, requests_mock: Any,
                                                  slept: list[float]) -> None:
    endpoint = requests_mock.get(f"{REST}/limits/", status_code=503, text="down")
    with pytest.raises(TransientError, match=r"HTTP 503.*gave up after 4 attempts") as caught:
        sf.limits()
    assert caught.value.status == 503
    assert endpoint.call_count == 4  # 1 + max_retries
    assert len(slept) == 3
    ceilings = [0.5, 1.0, 2.0]
    assert all(c / 2 <= s <= c for s, c in zip(slept, ceilings, strict=True))


def test_connection_errors_are_bounded(sf: SalesforceClient, requests_mock: Any) -> None:
    endpoint = requests_mock.get(f"{REST}/limits/", exc=requests.ConnectTimeout("timed out"))
    with pytest.raises(TransientError, match="CONNECTION_ERROR") as caught:
        sf.limits()
    assert caught.value.status == 0
    assert endpoint.call_count == 4


def test_request_limit_exceeded_is_fatal(sf: SalesforceClient, requests_mock: Any) -> None:
    endpoint = requests_mock.get(f"{REST}/limits/", status_code=403, json=[
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    with pytest.raises(RequestLimitExceeded, match="allowance is used up") as caught:
        sf.limits()
    assert caught.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert endpoint.call_count == 1


def test_bulk_exceeded_quota_is_fatal(sf: SalesforceClient, requests_mock: Any) -> None:
    requests_mock.post(BULK_JOB_URL, status_code=400, json={
        "exceptionCode": "ExceededQuota", "exceptionMessage": "TotalRequests Limit exceeded."})
    with pytest.raises(RequestLimitExceeded):
        sf.request("POST", "/services/async/59.0/job", kind="bulk", json={})


def test_other_api_errors_are_classified_not_retried(sf: SalesforceClient,
                                                     requests_mock: Any) -> None:
    endpoint = requests_mock.get(f"{REST}/sobjects/Nope/describe", status_code=404, json=[
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    with pytest.raises(ApiError) as caught:
        sf.describe("Nope")
    assert (caught.value.status, caught.value.code) == (404, "NOT_FOUND")
    assert not isinstance(caught.value, TransientError)
    assert "GET /services/data/v59.0/sobjects/Nope/describe" in str(caught.value)
    assert endpoint.call_count == 1


def test_lock_row_errors_are_transient(sf: SalesforceClient, requests_mock: Any) -> None:
    endpoint = requests_mock.get(f"{REST}/limits/", [
        {"status_code": 400, "json": [{"message": "unable to obtain exclusive access",
                                       "errorCode": "UNABLE_TO_LOCK_ROW"}]},
        {"json": {}},
    ])
    assert sf.limits() == {}
    assert endpoint.call_count == 2


def test_secrets_never_logged(sf: SalesforceClient, requests_mock: Any,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    requests_mock.get(f"{REST}/limits/", [{"status_code": 401, "json": INVALID_SESSION_REST},
                                          {"status_code": 503, "text": "x"}, {"json": {}}])
    sf.limits()
    assert "Salesforce /limits/" not in caplog.text
    assert "re-authenticating" in caplog.text
    for secret in ("cs", "token-1", "token-2"):
        assert f" {secret}" not in caplog.text
        assert f"={secret}" not in caplog.text


def test_session_never_sent_to_another_host(sf: SalesforceClient, requests_mock: Any) -> None:
    with pytest.raises(ValueError, match="refusing to send the Salesforce session"):
        sf.request("GET", "https://elsewhere.example.test/services/data/v59.0/limits/",
                   kind="limits")
    assert [r.url for r in requests_mock.request_history] == [TOKEN_URL]
    absolute = requests_mock.get(f"{REST}/limits/", json={})
    sf.request("GET", f"{REST}/limits/", kind="limits")
    assert absolute.call_count == 1


def test_missing_ca_bundle_is_named(tokens: Any) -> None:
    with pytest.raises(SalesforceError, match=r"ca_bundle '/no/such/ca\.pem' is not a readable"):
        SalesforceClient({"client_id": "c", "client_secret": "s",
                          "ca_bundle": "/no/such/ca.pem"})


# -- REST ---------------------------------------------------------------------------------------
def test_query_follows_next_records_url(sf: SalesforceClient, requests_mock: Any) -> None:
    first = requests_mock.get(f"{REST}/query/", json={
        "totalSize": 5, "done": False, "nextRecordsUrl": "/services/data/v59.0/query/01g-2",
        "records": [_rest("003A", {"Account": {"attributes": {"type": "Account"}, "Name": "X"}}),
                    _rest("003B")]})
    requests_mock.get(f"{REST}/query/01g-2", json={
        "totalSize": 5, "done": False, "nextRecordsUrl": "/services/data/v59.0/query/01g-4",
        "records": [_rest("003C"), _rest("003D")]})
    requests_mock.get(f"{REST}/query/01g-4", json={
        "totalSize": 5, "done": True, "records": [_rest("003E")]})
    soql = "SELECT Id, Email, Account.Name FROM Contact WHERE Email != null"
    rows = list(sf.query(soql))
    assert [r["Id"] for r in rows] == ["003A", "003B", "003C", "003D", "003E"]
    assert rows[0] == {"Id": "003A", "Email": "003A@x.io", "Account": {"Name": "X"}}
    assert parse_qs(urlsplit(first.last_request.url).query)["q"] == [soql]
    assert sf.api_calls == {"auth": 1, "query": 3}


def test_query_all_and_url_size_guard(sf: SalesforceClient, requests_mock: Any) -> None:
    endpoint = requests_mock.get(f"{REST}/queryAll/", json={"done": True, "records": []})
    assert list(sf.query("SELECT Id FROM Contact", include_deleted=True)) == []
    assert endpoint.call_count == 1
    emails = ",".join(f"'user{i}@example.com'" for i in range(1000))
    huge = " ".join(("SELECT Id FROM Contact WHERE Email IN (", emails, ")"))
    with pytest.raises(ValueError, match="use soap_query"):
        list(sf.query(huge))
    assert sf.api_calls["query"] == 1


def test_describe_is_cached(sf: SalesforceClient, requests_mock: Any) -> None:
    endpoint = requests_mock.get(f"{REST}/sobjects/Contact/describe", json=CONTACT_DESCRIBE)
    sf.describe("Contact")
    sf.describe("contact")
    assert endpoint.call_count == 1
    with pytest.raises(ValueError, match="not an sObject"):
        sf.describe("../limits")


def test_uri_too_long_is_explained(sf: SalesforceClient, requests_mock: Any) -> None:
    requests_mock.get(f"{REST}/limits/", status_code=414, text="Request-URI Too Large")
    with pytest.raises(ApiError, match="16,384 bytes: use soap_query"):
        sf.limits()


def _rest(record_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"attributes": {"type": "Contact", "url": f"/x/{record_id}"}, "Id": record_id,
            "Email": f"{record_id}@x.io", **(extra or {})}


# -- SOAP -------------------------------------------------------------------------------------
def test_soap_envelope_escapes_soql_and_carries_session(sf: SalesforceClient,
                                                        requests_mock: Any) -> None:
    requests_mock.get(f"{REST}/sobjects/Contact/describe", json=CONTACT_DESCRIBE)
    endpoint = requests_mock.post(SOAP_URL, text=_soap_reply("queryAll", [], done=True))
    soql = "SELECT Id FROM Contact WHERE Email IN ('a&b@x.io','<c>@x.io','d\\'e@x.io')"
    assert list(sf.soap_query(soql, include_deleted=True, batch_size=500)) == []
    sent = endpoint.last_request
    assert sent.headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert sent.headers["SOAPAction"] == '""'
    assert "Authorization" not in sent.headers
    raw = sent.body.decode()
    assert "a&amp;b@x.io" in raw
    assert "&lt;c&gt;@x.io" in raw
    envelope = _envelope(sent)
    assert envelope.findtext("env:Body/urn:queryAll/urn:queryString",
                             namespaces=SOQL_NS) == soql
    assert envelope.findtext("env:Header/urn:SessionHeader/urn:sessionId",
                             namespaces=SOQL_NS) == "token-1"
    assert envelope.findtext("env:Header/urn:QueryOptions/urn:batchSize",
                             namespaces=SOQL_NS) == "500"


def test_soap_parses_typed_records_and_follows_query_more(sf: SalesforceClient,
                                                          requests_mock: Any) -> None:
    describes = [requests_mock.get(f"{REST}/sobjects/Contact/describe", json=CONTACT_DESCRIBE),
                 requests_mock.get(f"{REST}/sobjects/Account/describe", json=ACCOUNT_DESCRIBE)]
    first = (
        "<sf:type>Contact</sf:type><sf:Id>003A</sf:Id><sf:Id>003A</sf:Id>"
        "<sf:Email>a&amp;b@x.io</sf:Email><sf:NumberOfVisits__c>12</sf:NumberOfVisits__c>"
        "<sf:Personalization_Engagement_Score__c>0.75</sf:Personalization_Engagement_Score__c>"
        "<sf:HasOptedOutOfEmail>false</sf:HasOptedOutOfEmail>"
        "<sf:Birthdate>1990-05-17</sf:Birthdate>"
        "<sf:SystemModstamp>2024-03-01T10:20:30.000Z</sf:SystemModstamp>"
        '<sf:AccountId xsi:nil="true"/>'
        '<sf:Account xsi:type="sf:sObject"><sf:type>Account</sf:type><sf:Id xsi:nil="true"/>'
        "<sf:Name>Acme</sf:Name><sf:AnnualRevenue>5000000.0</sf:AnnualRevenue></sf:Account>"
    )
    second = ("<sf:type>Contact</sf:type><sf:Id>003B</sf:Id><sf:Id>003B</sf:Id>"
              '<sf:Email xsi:nil="true"/><sf:NumberOfVisits__c xsi:nil="true"/>'
              '<sf:Personalization_Engagement_Score__c xsi:nil="true"/>'
              "<sf:HasOptedOutOfEmail>true</sf:HasOptedOutOfEmail>"
              '<sf:Birthdate xsi:nil="true"/>'
              "<sf:SystemModstamp>2024-03-02T00:00:00Z</sf:SystemModstamp>"
              "<sf:AccountId>001X</sf:AccountId>"
              '<sf:Account xsi:nil="true"/>')
    endpoint = requests_mock.post(SOAP_URL, [
        {"text": _soap_reply("query", [first], done=False, locator="01gLOC-1")},
        {"text": _soap_reply("queryMore", [second], done=True)},
    ])
    rows = list(sf.soap_query("SELECT Id, Email, ... FROM Contact", batch_size=1))
    assert rows == [
        {"Id": "003A", "Email": "a&b@x.io", "NumberOfVisits__c": 12,
         "Personalization_Engagement_Score__c": 0.75, "HasOptedOutOfEmail": False,
         "Birthdate": "1990-05-17", "SystemModstamp": "2024-03-01T10:20:30.000+0000",
         "AccountId": None, "Account": {"Name": "Acme", "AnnualRevenue": 5_000_000.0}},
        {"Id": "003B", "Email": None, "NumberOfVisits__c": None,
         "Personalization_Engagement_Score__c": None, "HasOptedOutOfEmail": True,
         "Birthdate": None, "SystemModstamp": "2024-03-02T00:00:00.000+0000",
         "AccountId": "001X", "Account": None},
    ]
    more = _envelope(endpoint.request_history[1])
    assert more.findtext("env:Body/urn:queryMore/urn:queryLocator",
                         namespaces=SOQL_NS) == "01gLOC-1"
    assert [d.call_count for d in describes] == [1, 1]
    assert sf.api_calls == {"auth": 1, "query": 2, "describe": 2}
    assert sf.api_usage == (7, 15000)


def test_soap_fault_is_classified(sf: SalesforceClient, requests_mock: Any) -> None:
    requests_mock.post(SOAP_URL, status_code=500,
                       text=_soap_fault("MALFORMED_QUERY", "unexpected token: FORM"))
    with pytest.raises(ApiError) as caught:
        list(sf.soap_query("SELECT Id FORM Contact"))
    assert (caught.value.code, caught.value.status) == ("MALFORMED_QUERY", 500)
    assert not isinstance(caught.value, TransientError)
    assert sf.api_calls["query"] == 1


def test_soap_plain_5xx_is_retried(sf: SalesforceClient, requests_mock: Any) -> None:
    endpoint = requests_mock.post(SOAP_URL, [{"status_code": 503, "text": "busy"},
                                             {"text": _soap_reply("query", [], done=True)}])
    assert list(sf.soap_query("SELECT Id FROM Contact")) == []
    assert endpoint.call_count == 2


def test_simple_salesforce_uses_session_and_ca_bundle(sf: SalesforceClient, requests_mock: Any,
                                                      ca_bundle: str) -> None:
    requests_mock.get(f"{REST}/query/", json={"totalSize": 0, "done": True, "records": []})
    connection = sf.simple_salesforce()
    assert connection.session_id == "token-1"
    assert connection.base_url == f"{REST}/"
    assert connection.query("SELECT Id FROM Contact")["totalSize"] == 0
    assert requests_mock.last_request.verify == ca_bundle
    assert _bearer(requests_mock.last_request) == "Bearer token-1"


def _envelope(request: Any) -> Any:
    return fromstring(request.body)


def _soap_reply(operation: str, records: list[str], *, done: bool,
                locator: str | None = None) -> str:
    locator_xml = (f"<queryLocator>{locator}</queryLocator>" if locator
                   else '<queryLocator xsi:nil="true"/>')
    body = "".join(f'<records xsi:type="sf:sObject">{r}</records>' for r in records)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{soap.SOAPENV}" xmlns="{soap.PARTNER}" '
        'xmlns:sf="urn:sobject.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Header><LimitInfoHeader><limitInfo><current>7</current><limit>15000</limit>"
        "<type>API REQUESTS</type></limitInfo></LimitInfoHeader></soapenv:Header>"
        f'<soapenv:Body><{operation}Response><result xsi:type="QueryResult">'
        f"<done>{'true' if done else 'false'}</done>{locator_xml}{body}"
        f"<size>{len(records)}</size></result></{operation}Response></soapenv:Body>"
        "</soapenv:Envelope>"
    )


def _soap_fault(code: str, message: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{soap.SOAPENV}"'
        ' xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
