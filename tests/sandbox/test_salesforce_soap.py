"""SOAP partner API query of the Salesforce sandbox: big IN lists, record shape, faults."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import pytest
import requests
from defusedxml.ElementTree import fromstring

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
SOBJECT = "urn:sobject.partner.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"soapenv": SOAPENV, "p": PARTNER, "sf": SOBJECT, "xsi": XSI}


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


@pytest.fixture
def token(salesforce_sandbox: Any) -> str:
    return str(salesforce_sandbox.salesforce_token()["access_token"])


def envelope(token: str, operation: str, inner: str, batch_size: int | None = None) -> str:
    options = ("" if batch_size is None else
               f"<urn:QueryOptions><urn:batchSize>{batch_size}</urn:batchSize></urn:QueryOptions>")
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAPENV}" xmlns:urn="{PARTNER}">'
            f"<soapenv:Header><urn:SessionHeader><urn:sessionId>{token}</urn:sessionId>"
            f"</urn:SessionHeader>{options}</soapenv:Header>"
            f"<soapenv:Body><urn:{operation}>{inner}</urn:{operation}></soapenv:Body>"
            "</soapenv:Envelope>")


def soap(sandbox: Any, body: str, version: str = "59.0") -> requests.Response:
    return requests.post(f"{sandbox.url}/services/Soap/u/{version}", data=body.encode(),
                         headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'},
                         verify=sandbox.ca_bundle, timeout=60)


def query(sandbox: Any, token: str, soql: str, *, operation: str = "query",
          batch_size: int | None = None) -> requests.Response:
    return soap(sandbox, envelope(token, operation,
                                  f"<urn:queryString>{escape(soql)}</urn:queryString>",
                                  batch_size))


def result_of(answer: requests.Response) -> Element:
    assert answer.status_code == 200, answer.text
    result = fromstring(answer.content).find(".//p:result", NS)
    assert result is not None
    return result


def fault_of(answer: requests.Response) -> tuple[str, str]:
    assert answer.status_code == 500
    fault = fromstring(answer.content).find(".//soapenv:Fault", NS)
    assert fault is not None
    return fault.findtext("faultcode", ""), fault.findtext("faultstring", "")


def in_list(values: list[str]) -> str:
    return "(" + ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
                          for v in values) + ")"


def test_1000_email_lookup_fits_one_soap_call(salesforce_sandbox: Any, token: str) -> None:
    emails = [f"someone.with.a.long.name{i:04d}@example-company.com" for i in range(1200)]
    salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": f"L{i}", "Email": email} for i, email in enumerate(emails)])
    wanted = emails[100:1100]
    soql = " ".join(["SELECT Id, Email FROM Contact WHERE Email IN", in_list(wanted)])
    assert len(soql) > 16_384
    salesforce_sandbox.clear_ledger()

    rest = requests.get(f"{salesforce_sandbox.url}/services/data/v59.0/query/",
                        params={"q": soql}, headers={"Authorization": f"Bearer {token}"},
                        verify=salesforce_sandbox.ca_bundle, timeout=60)
    result = result_of(query(salesforce_sandbox, token, soql, batch_size=2000))

    assert rest.status_code == 414
    assert result.findtext("p:done", namespaces=NS) == "true"
    assert result.findtext("p:size", namespaces=NS) == "1000"
    found = {r.findtext("sf:Email", namespaces=NS) for r in result.findall("p:records", NS)}
    assert found == set(wanted)
    assert salesforce_sandbox.ledger()["by_kind"] == {"rest_query": 1, "soap_query": 1}


def test_record_shape_ids_nils_and_parents(salesforce_sandbox: Any, token: str) -> None:
    account_id = salesforce_sandbox.admin("POST", "records/Account", json=[{"Name": "Acme"}])[0]
    contact_id = salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": "Doe", "Email": "jane@acme.example", "AccountId": account_id}])[0]
    salesforce_sandbox.admin("POST", "records/Contact", json=[{"LastName": "Loner"}])

    result = result_of(query(salesforce_sandbox, token,
                             "SELECT Id, Email, Title, Account.Name FROM Contact "
                             "WHERE LastName = 'Doe'"))
    record = result.find("p:records", NS)
    assert record is not None
    assert record.get(f"{{{XSI}}}type") == "sf:sObject"
    children = list(record)
    assert [child.tag for child in children[:4]] == [
        f"{{{SOBJECT}}}type", f"{{{SOBJECT}}}Id", f"{{{SOBJECT}}}Id", f"{{{SOBJECT}}}Email"]
    assert children[0].text == "Contact"
    assert children[1].text == children[2].text == contact_id
    title = record.find("sf:Title", NS)
    assert title is not None
    assert title.get(f"{{{XSI}}}nil") == "true"
    account = record.find("sf:Account", NS)
    assert account is not None
    assert account.get(f"{{{XSI}}}type") == "sf:sObject"
    assert account.findtext("sf:type", namespaces=NS) == "Account"
    assert account.findtext("sf:Name", namespaces=NS) == "Acme"
    loner = result_of(query(salesforce_sandbox, token, "SELECT Id, Account.Name FROM Contact "
                            "WHERE LastName = 'Loner'")).find("p:records/sf:Account", NS)
    assert loner is not None
    assert loner.get(f"{{{XSI}}}nil") == "true"


def test_query_more_pages_with_locator(salesforce_sandbox: Any, token: str) -> None:
    ids = salesforce_sandbox.admin("POST", "records/Contact",
                                   json=[{"LastName": f"L{i}"} for i in range(1250)])
    first = result_of(query(salesforce_sandbox, token, "SELECT Id FROM Contact"))
    sizes = [len(first.findall("p:records", NS))]
    seen = [r.findtext("sf:Id", namespaces=NS) for r in first.findall("p:records", NS)]
    result = first
    while result.findtext("p:done", namespaces=NS) == "false":
        locator = result.findtext("p:queryLocator", namespaces=NS)
        assert locator is not None
        result = result_of(soap(salesforce_sandbox, envelope(
            token, "queryMore", f"<urn:queryLocator>{locator}</urn:queryLocator>")))
        records = result.findall("p:records", NS)
        sizes.append(len(records))
        seen += [r.findtext("sf:Id", namespaces=NS) for r in records]

    assert sizes == [500, 500, 250]  # the partner API's default batch size is 500
    assert sorted(seen) == sorted(ids)
    assert result.findtext("p:size", namespaces=NS) == "1250"
    nil_locator = result.find("p:queryLocator", NS)
    assert nil_locator is not None
    assert nil_locator.get(f"{{{XSI}}}nil") == "true"


def test_query_all_includes_deleted(salesforce_sandbox: Any, token: str) -> None:
    salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": "Live"}, {"LastName": "Gone", "IsDeleted": True}])
    live = result_of(query(salesforce_sandbox, token, "SELECT Id FROM Contact"))
    everything = result_of(query(salesforce_sandbox, token, "SELECT Id FROM Contact",
                                 operation="queryAll"))
    assert live.findtext("p:size", namespaces=NS) == "1"
    assert everything.findtext("p:size", namespaces=NS) == "2"


@pytest.mark.parametrize(("soql", "code"), [
    ("SELEC Id FROM Contact", "sf:MALFORMED_QUERY"),
    ("SELECT Nope__c FROM Contact", "sf:INVALID_FIELD"),
    ("SELECT Id FROM Nothing__c", "sf:INVALID_TYPE"),
])
def test_query_faults(salesforce_sandbox: Any, token: str, soql: str, code: str) -> None:
    faultcode, faultstring = fault_of(query(salesforce_sandbox, token, soql))
    assert faultcode == code
    assert faultstring.startswith(code.removeprefix("sf:") + ": ")


def test_session_locator_and_limit_faults(salesforce_sandbox: Any, token: str) -> None:
    bad_session = fault_of(query(salesforce_sandbox, "bogus", "SELECT Id FROM Contact"))
    bad_locator = fault_of(soap(salesforce_sandbox, envelope(
        token, "queryMore", "<urn:queryLocator>01gXXXXXXXXXXXXXXX-500</urn:queryLocator>")))
    salesforce_sandbox.admin("POST", "limits", json={"DailyApiRequests": {"Remaining": 0}})
    exhausted = fault_of(query(salesforce_sandbox, token, "SELECT Id FROM Contact"))

    assert bad_session == ("sf:INVALID_SESSION_ID", "INVALID_SESSION_ID: Invalid Session ID "
                           "found in SessionHeader: Illegal Session")
    assert bad_locator[0] == "sf:INVALID_QUERY_LOCATOR"
    assert exhausted == ("sf:REQUEST_LIMIT_EXCEEDED",
                         "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.")


def test_hostile_or_broken_envelopes_are_client_faults(salesforce_sandbox: Any, token: str
                                                       ) -> None:
    entity_bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                   '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                   + envelope(token, "query", "<urn:queryString>&lol2;</urn:queryString>"))
    not_xml = "this is not xml"
    other_operation = envelope(token, "create", "<urn:sObjects/>")

    for body in (entity_bomb, not_xml, other_operation):
        faultcode, _ = fault_of(soap(salesforce_sandbox, body))
        assert faultcode == "soapenv:Client"


def test_statement_length_limit_is_100000_characters(salesforce_sandbox: Any, token: str
                                                     ) -> None:
    def soql_of_length(length: int) -> str:
        head = "SELECT Id FROM Contact WHERE Email IN "
        emails, size = [], len(head) + 2
        while size + 53 <= length:
            emails.append(f"someone.with.a.long.name{len(emails):05d}@example-company.com")
            size += len(emails[-1]) + 3
        soql = head + in_list(emails)
        return soql[:-1] + " " * (length - len(soql)) + ")"

    near_limit, over_limit = soql_of_length(100_000), soql_of_length(100_001)
    assert (len(near_limit), len(over_limit)) == (100_000, 100_001)

    result = result_of(query(salesforce_sandbox, token, near_limit))
    faultcode, faultstring = fault_of(query(salesforce_sandbox, token, over_limit))

    assert result.findtext("p:size", namespaces=NS) == "0"
    assert faultcode == "sf:MALFORMED_QUERY"
    assert "100,000" in faultstring
