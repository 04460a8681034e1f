"""SOAP partner API `query`, `queryAll` and `queryMore` at `POST /services/Soap/u/NN.N`.

The SOQL travels in the request body, so one call can look up 1,000 e-mail addresses that
would never fit a REST URI. Envelopes are parsed with defusedxml (no entity expansion, no
external resources); replies and faults follow the partner WSDL's shapes.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from flask import Blueprint, Response, request

from emulators.salesforce.access import Refusal, admit
from emulators.salesforce.cursors import Page, QueryRefused, check_length, clamp_batch_size
from emulators.salesforce.records import RelationshipTypes
from emulators.salesforce.state import current
from emulators.salesforce.store import SoqlError
from emulators.salesforce.versions import parse_version

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
SOAP_DEFAULT_BATCH = 500
OPERATIONS = ("query", "queryAll", "queryMore")

_FAULT_TYPES = {
    "MALFORMED_QUERY": "MalformedQueryFault",
    "INVALID_FIELD": "InvalidFieldFault",
    "INVALID_TYPE": "InvalidSObjectFault",
    "INVALID_QUERY_LOCATOR": "InvalidQueryLocatorFault",
    "INVALID_QUERY_FILTER_OPERATOR": "InvalidQueryFilterOperatorFault",
}
_SESSION_MESSAGE = "Invalid Session ID found in SessionHeader: Illegal Session"
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+0000$")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

blueprint = Blueprint("soap", __name__)


class SoapFault(Exception):
    """A fault reply; `code` None means a client (envelope) fault, not an API one."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _xml(envelope_attrs: str, header: str, body: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAPENV}" {envelope_attrs}'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'{header}<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>')


def fault_xml(fault: SoapFault) -> str:
    if fault.code is None:
        inner = (f"<faultcode>soapenv:Client</faultcode>"
                 f"<faultstring>{escape(fault.message)}</faultstring>")
    else:
        kind = _FAULT_TYPES.get(fault.code, "UnexpectedErrorFault")
        inner = (f"<faultcode>sf:{fault.code}</faultcode>"
                 f"<faultstring>{escape(fault.code)}: {escape(fault.message)}</faultstring>"
                 f'<detail><sf:{kind} xsi:type="sf:{kind}">'
                 f"<sf:exceptionCode>{fault.code}</sf:exceptionCode>"
                 f"<sf:exceptionMessage>{escape(fault.message)}</sf:exceptionMessage>"
                 f"</sf:{kind}></detail>")
    return _xml('xmlns:sf="urn:fault.partner.soap.sforce.com"', "",
                f"<soapenv:Fault>{inner}</soapenv:Fault>")


def _reply(text: str, status: int = 200) -> Response:
    return Response(text.encode(), status=status, content_type="text/xml; charset=utf-8")


@blueprint.errorhandler(SoapFault)
def _fault(exc: SoapFault) -> Response:
    return _reply(fault_xml(exc), 500)


@blueprint.errorhandler(Refusal)
def _refused(exc: Refusal) -> Response:
    message = _SESSION_MESSAGE if exc.code == "INVALID_SESSION_ID" else exc.message
    return _reply(fault_xml(SoapFault(exc.code, message)), 500)


@blueprint.errorhandler(QueryRefused)
@blueprint.errorhandler(SoqlError)
def _query_refused(exc: QueryRefused | SoqlError) -> Response:
    code = "INVALID_TYPE" if exc.code == "NOT_FOUND" else exc.code
    return _reply(fault_xml(SoapFault(code, exc.message)), 500)


def _child(parent: Element | None, name: str, namespace: str = PARTNER) -> Element | None:
    return None if parent is None else parent.find(f"{{{namespace}}}{name}")


def _text(element: Element | None) -> str:
    return "" if element is None or element.text is None else element.text


def parse_envelope(data: bytes) -> tuple[str, Element, str | None, int | None]:
    """(operation, its element, session id, batch size) of a partner API request."""
    try:
        envelope = fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise SoapFault(None, f"Unable to parse the SOAP envelope: {exc}") from exc
    if envelope.tag != f"{{{SOAPENV}}}Envelope":
        raise SoapFault(None, "The root element must be a SOAP 1.1 Envelope")
    body = envelope.find(f"{{{SOAPENV}}}Body")
    operation = None if body is None or len(body) == 0 else body[0]
    if operation is None:
        raise SoapFault(None, "The SOAP Body holds no operation")
    namespace, _, name = operation.tag[1:].partition("}")
    if namespace != PARTNER or name not in OPERATIONS:
        raise SoapFault(None, f"No operation available for request {operation.tag}")
    header = envelope.find(f"{{{SOAPENV}}}Header")
    session = _text(_child(_child(header, "SessionHeader"), "sessionId")).strip() or None
    size_text = _text(_child(_child(header, "QueryOptions"), "batchSize")).strip()
    batch_size = int(size_text) if size_text.isdigit() else None
    return name, operation, session, batch_size


@blueprint.post("/services/Soap/u/<version>")
def partner(version: str) -> Response:
    if "SOAPAction" not in request.headers:
        raise SoapFault(None, "No SOAPAction header!")
    if request.mimetype != "text/xml":
        raise SoapFault(None, "Content-Type must be text/xml for the SOAP 1.1 partner API")
    name, operation, session, batch_size = parse_envelope(request.get_data())
    if parse_version(version) is None:
        raise SoapFault("UNSUPPORTED_API_VERSION", "Invalid Api version specified on URL")
    admit(session)
    state = current()
    size = clamp_batch_size(batch_size, SOAP_DEFAULT_BATCH)
    if name == "queryMore":
        page = state.cursors.next_page(_text(_child(operation, "queryLocator")).strip(), size)
    else:
        soql = _text(_child(operation, "queryString"))
        if not soql.strip():
            raise SoapFault("MALFORMED_QUERY", "A query string has to be specified")
        check_length(soql)
        cursor = state.store.query(soql, include_deleted=name == "queryAll")
        page = state.cursors.first_page(cursor, size)
    used, limit = state.limits.soap_usage()
    header = ("<soapenv:Header><LimitInfoHeader><limitInfo>"
              f"<current>{used}</current><limit>{limit}</limit><type>API REQUESTS</type>"
              "</limitInfo></LimitInfoHeader></soapenv:Header>")
    body = f"<{name}Response>{query_result(page, state.relationship_types)}</{name}Response>"
    return _reply(_xml(f'xmlns="{PARTNER}" xmlns:sf="urn:sobject.partner.soap.sforce.com"',
                       header, body))


def query_result(page: Page, types: RelationshipTypes) -> str:
    locator = ('<queryLocator xsi:nil="true"/>' if page.next_locator is None
               else f"<queryLocator>{page.next_locator}</queryLocator>")
    records = "".join(
        f'<records xsi:type="sf:sObject">{_sobject_fields(row, page.sobject, types)}</records>'
        for row in page.records
    )
    return (f'<result xsi:type="QueryResult"><done>{_value(page.done)}</done>{locator}'
            f"{records}<size>{page.total_size}</size></result>")


def _sobject_fields(row: dict[str, Any], sobject: str, types: RelationshipTypes) -> str:
    """`sf:type`, the sObject's own `sf:Id`, then every selected field in order."""
    record_id = row.get("Id")
    parts = [f"<sf:type>{escape(sobject)}</sf:type>",
             '<sf:Id xsi:nil="true"/>' if record_id is None
             else f"<sf:Id>{escape(str(record_id))}</sf:Id>"]
    for name, value in row.items():
        if name == "Id" and record_id is None:
            continue
        if isinstance(value, dict):
            nested = _sobject_fields(value, types.target(sobject, name), types)
            parts.append(f'<sf:{name} xsi:type="sf:sObject">{nested}</sf:{name}>')
        elif value is None:
            parts.append(f'<sf:{name} xsi:nil="true"/>')
        else:
            parts.append(f"<sf:{name}>{_value(value)}</sf:{name}>")
    return "".join(parts)


def _value(value: Any) -> str:
    """A field value as partner-API text (booleans lower case, datetimes in UTC `Z`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, Decimal):
        return format(value, "f")
    text = str(value)
    if isinstance(value, str) and _DATETIME.match(text):
        text = text[:-5] + "Z"
    return escape(_XML_ILLEGAL.sub("", text))
