"""SOAP partner API envelopes for `query`, `queryAll` and `queryMore`, and their replies.

The partner API carries SOQL in the request body, so one call can look up 1,000 values that
would never fit a REST URI. Replies are parsed with defusedxml (no entity expansion) and
turned into the same dicts the REST API gives, typed by the object's describe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
SOBJECT = "urn:sobject.partner.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HEADERS = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'}

_NIL = f"{{{XSI}}}nil"
_XSI_TYPE = f"{{{XSI}}}type"
_SOAP_DATETIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


class SoapParseError(ValueError):
    """A reply that is not the partner API's XML."""


@dataclass
class RawRecord:
    """A partner-API sObject before typing: text values, nested sObjects, or None."""

    sobject: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueryPage:
    """One QueryResult: its records, and the locator of the next page unless done."""

    records: list[RawRecord]
    done: bool
    locator: str | None
    size: int


def _envelope(session_id: str, batch_size: int, body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAPENV}" xmlns:urn="{PARTNER}">'
        "<soapenv:Header>"
        f"<urn:SessionHeader><urn:sessionId>{escape(session_id)}</urn:sessionId>"
        "</urn:SessionHeader>"
        f"<urn:QueryOptions><urn:batchSize>{int(batch_size)}</urn:batchSize>"
        "</urn:QueryOptions>"
        f"</soapenv:Header><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def query_envelope(session_id: str, soql: str, *, include_deleted: bool = False,
                   batch_size: int = 2000) -> bytes:
    """A `query` (or `queryAll`) request; the SOQL is XML-escaped text."""
    operation = "queryAll" if include_deleted else "query"
    return _envelope(session_id, batch_size,
                     f"<urn:{operation}><urn:queryString>{escape(soql)}</urn:queryString>"
                     f"</urn:{operation}>")


def query_more_envelope(session_id: str, locator: str, *, batch_size: int = 2000) -> bytes:
    """A `queryMore` request for the page after `locator`."""
    return _envelope(session_id, batch_size,
                     f"<urn:queryMore><urn:queryLocator>{escape(locator)}</urn:queryLocator>"
                     "</urn:queryMore>")


def _root(content: bytes) -> Element:
    try:
        root = fromstring(content)
    except (ParseError, DefusedXmlException) as exc:
        raise SoapParseError(f"unreadable SOAP reply: {exc}") from exc
    if root.tag != f"{{{SOAPENV}}}Envelope":
        raise SoapParseError(f"unexpected SOAP reply root element {root.tag}")
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_fault(content: bytes) -> tuple[str, str] | None:
    """(code, message) of a SOAP fault, e.g. ("INVALID_SESSION_ID", "..."); None if none."""
    try:
        root = _root(content)
    except SoapParseError:
        return None
    fault = root.find(f"{{{SOAPENV}}}Body/{{{SOAPENV}}}Fault")
    if fault is None:
        return None
    code = (fault.findtext("faultcode") or "").strip()
    message = (fault.findtext("faultstring") or "").strip()
    return code.rsplit(":", 1)[-1] or "UNKNOWN_FAULT", message


def parse_limit_info(content: bytes) -> tuple[int, int] | None:
    """API requests (used, max) from the reply's LimitInfoHeader, when present."""
    try:
        root = _root(content)
    except SoapParseError:
        return None
    for info in root.iter(f"{{{PARTNER}}}limitInfo"):
        if (info.findtext(f"{{{PARTNER}}}type") or "").strip() == "API REQUESTS":
            used = (info.findtext(f"{{{PARTNER}}}current") or "").strip()
            limit = (info.findtext(f"{{{PARTNER}}}limit") or "").strip()
            if used.isdigit() and limit.isdigit():
                return int(used), int(limit)
    return None


def parse_query_response(content: bytes) -> QueryPage:
    """The QueryResult of a queryResponse / queryAllResponse / queryMoreResponse."""
    root = _root(content)
    body = root.find(f"{{{SOAPENV}}}Body")
    response = None if body is None or len(body) == 0 else body[0]
    result = None if response is None else response.find(f"{{{PARTNER}}}result")
    if result is None:
        raise SoapParseError("SOAP reply has no query result")
    return _query_result(result)


def _query_result(result: Element) -> QueryPage:
    """Children matched by local name: nested (subquery) results vary in namespace."""
    done, locator, size, records = False, None, None, []
    for child in result:
        name = _local(child.tag)
        if name == "done":
            done = (child.text or "").strip() == "true"
        elif name == "queryLocator" and child.get(_NIL) != "true":
            locator = (child.text or "").strip() or None
        elif name == "size" and (child.text or "").strip().isdigit():
            size = int((child.text or "").strip())
        elif name == "records":
            records.append(_record(child))
    return QueryPage(records, done, None if done else locator,
                     len(records) if size is None else size)


def _record(element: Element) -> RawRecord:
    """Fields in document order; the partner API's repeated `Id` is kept once."""
    record = RawRecord(sobject="")
    for child in element:
        name = _local(child.tag)
        if name == "type" and not record.sobject:
            record.sobject = (child.text or "").strip()
            continue
        if name in record.fields and name == "Id":
            if record.fields["Id"] is None:
                record.fields["Id"] = _value(child)
            continue
        record.fields[name] = _value(child)
    return record


def _value(element: Element) -> Any:
    if element.get(_NIL) == "true":
        return None
    kind = element.get(_XSI_TYPE) or ""
    if kind.endswith("QueryResult"):
        return _query_result(element)
    if len(element) > 0 or kind.endswith("sObject"):
        return _record(element)
    return element.text or ""


FieldTypes = Mapping[str, str]


def to_rest_record(record: RawRecord, field_types: Callable[[str], FieldTypes]) -> dict[str, Any]:
    """The record as the REST API would give it (minus `attributes`), values typed.

    `field_types(sobject)` maps lower-cased field names to describe types. A nil `Id` is
    the partner API's placeholder for an Id the query did not select, so it is dropped.
    """
    types = field_types(record.sobject) if record.sobject else {}
    out: dict[str, Any] = {}
    for name, raw in record.fields.items():
        if name == "Id" and raw is None:
            continue
        if isinstance(raw, RawRecord):
            out[name] = to_rest_record(raw, field_types)
        elif isinstance(raw, QueryPage):
            out[name] = {"totalSize": raw.size, "done": raw.done,
                         "records": [to_rest_record(r, field_types) for r in raw.records]}
        else:
            out[name] = convert(raw, types.get(name.lower(), "string"))
    return out


def convert(text: str | None, field_type: str) -> Any:
    """Partner-API text as the JSON value REST gives for a field of this describe type."""
    if text is None:
        return None
    if field_type == "boolean":
        return text.strip() == "true"
    try:
        if field_type == "int":
            return int(text) if text.strip().lstrip("-").isdigit() else int(float(text))
        if field_type in ("double", "currency", "percent"):
            return float(text)
    except ValueError:
        return text  # not a number after all: keep Salesforce's text rather than lose it
    if field_type == "datetime":
        match = _SOAP_DATETIME.match(text.strip())
        if match:
            millis = (match.group(2) or ".000")[:4].ljust(4, "0")
            return f"{match.group(1)}{millis}+0000"
    return text
