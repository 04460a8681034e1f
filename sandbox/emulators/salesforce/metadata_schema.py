"""Is this XML what the Metadata API documents? Parsing with positions, and the WSDL structure.

A deploy refuses a file whose elements are unknown, out of the WSDL's sequence order, too
many or missing, or whose values are not of the declared type, naming the line:
"Element {http://soap.sforce.com/2006/04/metadata}lenght invalid at this location in type
CustomField". The tables below transcribe the WSDL of the types a sync package uses
(Package, CustomField, PermissionSet and their parts). Complex parts the sandbox does not
emulate are `OPAQUE`: their place is checked, their content is refused later by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import InputSource, Locator

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

NAMESPACE = "http://soap.sforce.com/2006/04/metadata"
STRING, BOOLEAN, INT, OPAQUE = "xsd:string", "xsd:boolean", "xsd:int", "opaque"
UNBOUNDED = None

Particle = tuple[str, str, int, int | None]  # element, type, minOccurs, maxOccurs


def _metadata(*particles: Particle) -> tuple[Particle, ...]:
    """A type extending Metadata: `fullName` comes first."""
    return (("fullName", STRING, 0, 1), *particles)


def _optional(*names_and_types: tuple[str, str]) -> tuple[Particle, ...]:
    return tuple((name, kind, 0, 1) for name, kind in names_and_types)


ENUMS: dict[str, frozenset[str]] = {
    "FieldType": frozenset({
        "AutoNumber", "Lookup", "MasterDetail", "Checkbox", "Currency", "Date", "DateTime",
        "Email", "Number", "Percent", "Phone", "Picklist", "MultiselectPicklist", "Text",
        "TextArea", "LongTextArea", "Html", "Url", "EncryptedText", "Summary", "Hierarchy",
        "File", "MetadataRelationship", "Location", "ExternalLookup", "IndirectLookup",
        "CustomDataType", "Time", "Address", "Array", "Integer", "Long"}),
    "DeleteConstraint": frozenset({"Cascade", "Restrict", "SetNull"}),
    "ElementType": frozenset({"Float", "Text"}),
    "EncryptionScheme": frozenset({"None", "ProbabilisticEncryption",
                                   "CaseSensitiveDeterministicEncryption",
                                   "CaseInsensitiveDeterministicEncryption"}),
    "FieldManageability": frozenset({"DeveloperControlled", "SubscriberControlled", "Locked"}),
    "TreatBlanksAs": frozenset({"BlankAsBlank", "BlankAsZero"}),
    "EncryptedFieldMaskChar": frozenset({"asterisk", "X"}),
    "EncryptedFieldMaskType": frozenset({"all", "creditCard", "ssn", "lastFour", "sin", "nino"}),
    "SummaryOperations": frozenset({"count", "sum", "min", "max"}),
    "APIAccessLevel": frozenset({"Unrestricted", "Restricted"}),
}

COMPLEX: dict[str, tuple[Particle, ...]] = {
    "Package": _metadata(
        *_optional(("apiAccessLevel", "APIAccessLevel"), ("description", STRING),
                   ("namespacePrefix", STRING)),
        ("objectPermissions", OPAQUE, 0, UNBOUNDED),
        *_optional(("packageType", STRING), ("postInstallClass", STRING),
                   ("setupWeblink", STRING)),
        ("types", "PackageTypeMembers", 0, UNBOUNDED),
        ("uninstallClass", STRING, 0, 1),
        ("version", STRING, 1, 1),
    ),
    "PackageTypeMembers": (("members", STRING, 0, UNBOUNDED), ("name", STRING, 1, 1)),
    "CustomField": _metadata(
        *_optional(
            ("businessOwnerGroup", STRING), ("businessOwnerUser", STRING),
            ("businessStatus", STRING), ("caseSensitive", BOOLEAN), ("complianceGroup", STRING),
            ("customDataType", STRING), ("defaultValue", STRING),
            ("deleteConstraint", "DeleteConstraint"), ("deprecated", BOOLEAN),
            ("description", STRING), ("displayFormat", STRING), ("elementType", "ElementType"),
            ("encryptionScheme", "EncryptionScheme"), ("escapeMarkup", BOOLEAN),
            ("externalDeveloperName", STRING), ("externalId", BOOLEAN),
            ("fieldManageability", "FieldManageability"), ("formula", STRING),
            ("formulaTreatBlanksAs", "TreatBlanksAs"), ("inlineHelpText", STRING),
            ("isAIPredictionField", BOOLEAN), ("isConvertLeadDisabled", BOOLEAN),
            ("isFilteringDisabled", BOOLEAN), ("isNameField", BOOLEAN),
            ("isSortingDisabled", BOOLEAN), ("label", STRING), ("length", INT),
            ("lookupFilter", OPAQUE), ("maskChar", "EncryptedFieldMaskChar"),
            ("maskType", "EncryptedFieldMaskType"),
            ("metadataRelationshipControllingField", STRING),
            ("mktDataLakeFieldAttributes", OPAQUE), ("mktDataModelFieldAttributes", OPAQUE),
            ("populateExistingRows", BOOLEAN), ("precision", INT),
            ("referenceTargetField", STRING), ("referenceTo", STRING),
            ("relationshipLabel", STRING), ("relationshipName", STRING),
            ("relationshipOrder", INT), ("reparentableMasterDetail", BOOLEAN),
            ("required", BOOLEAN), ("restrictedAdminField", BOOLEAN), ("scale", INT),
            ("securityClassification", STRING), ("startingNumber", INT),
            ("stripMarkup", BOOLEAN), ("summarizedField", STRING),
        ),
        ("summaryFilterItems", OPAQUE, 0, UNBOUNDED),
        *_optional(
            ("summaryForeignKey", STRING), ("summaryOperation", "SummaryOperations"),
            ("trackFeedHistory", BOOLEAN), ("trackHistory", BOOLEAN),
            ("trackTrending", BOOLEAN), ("translateData", BOOLEAN), ("type", "FieldType"),
            ("unique", BOOLEAN), ("valueSet", "ValueSet"), ("visibleLines", INT),
            ("writeRequiresMasterRead", BOOLEAN),
        ),
    ),
    "ValueSet": (
        *_optional(("controllingField", STRING), ("restricted", BOOLEAN),
                   ("valueSetDefinition", "ValueSetValuesDefinition"),
                   ("valueSetName", STRING)),
        ("valueSettings", "ValueSettings", 0, UNBOUNDED),
    ),
    "ValueSetValuesDefinition": (("sorted", BOOLEAN, 1, 1),
                                 ("value", "CustomValue", 0, UNBOUNDED)),
    "CustomValue": _metadata(
        ("color", STRING, 0, 1), ("default", BOOLEAN, 1, 1), ("description", STRING, 0, 1),
        ("isActive", BOOLEAN, 0, 1), ("label", STRING, 0, 1),
    ),
    "ValueSettings": (("controllingFieldValue", STRING, 0, UNBOUNDED),
                      ("valueName", STRING, 1, 1)),
    "PermissionSet": _metadata(
        *((name, OPAQUE, 0, UNBOUNDED) for name in (
            "agentAccesses", "applicationVisibilities", "classAccesses",
            "customMetadataTypeAccesses", "customPermissions", "customSettingAccesses")),
        ("description", STRING, 0, 1),
        *((name, OPAQUE, 0, UNBOUNDED) for name in (
            "emailRoutingAddressAccesses", "externalCredentialPrincipalAccesses",
            "externalDataSourceAccesses")),
        ("fieldPermissions", "PermissionSetFieldPermissions", 0, UNBOUNDED),
        ("flowAccesses", OPAQUE, 0, UNBOUNDED),
        ("genComputingSummaryDefAccesses", OPAQUE, 0, UNBOUNDED),
        ("hasActivationRequired", BOOLEAN, 0, 1),
        ("label", STRING, 1, 1),
        ("license", STRING, 0, 1),
        ("objectPermissions", "PermissionSetObjectPermissions", 0, UNBOUNDED),
        *((name, OPAQUE, 0, UNBOUNDED) for name in (
            "pageAccesses", "recordTypeVisibilities", "servicePresenceStatusAccesses",
            "tabSettings", "userPermissions")),
    ),
    "PermissionSetFieldPermissions": (("editable", BOOLEAN, 1, 1), ("field", STRING, 1, 1),
                                      ("readable", BOOLEAN, 0, 1)),
    "PermissionSetObjectPermissions": (
        ("allowCreate", BOOLEAN, 1, 1), ("allowDelete", BOOLEAN, 1, 1),
        ("allowEdit", BOOLEAN, 1, 1), ("allowRead", BOOLEAN, 1, 1),
        ("modifyAllRecords", BOOLEAN, 1, 1), ("object", STRING, 1, 1),
        ("viewAllFields", BOOLEAN, 0, 1), ("viewAllRecords", BOOLEAN, 1, 1),
    ),
}

_INT = re.compile(r"^[+-]?\d+$")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass
class Element:
    """An XML element with the position of its start tag (1-based line and column)."""

    name: str
    namespace: str
    line: int
    column: int
    attributes: list[str] = field(default_factory=list)
    children: list[Element] = field(default_factory=list)
    text: str = ""

    @property
    def qualified(self) -> str:
        return f"{{{self.namespace}}}{self.name}" if self.namespace else self.name

    def value(self, name: str) -> str | None:
        """Text of the first child called `name` (stripped), or None."""
        child = self.child(name)
        return child.text.strip() if child is not None else None

    def child(self, name: str) -> Element | None:
        return next((item for item in self.children if item.name == name), None)

    def all(self, name: str) -> list[Element]:
        return [item for item in self.children if item.name == name]


@dataclass(frozen=True)
class Issue:
    """One structural problem at a place in a file."""

    line: int
    column: int
    message: str


class XmlFileError(ValueError):
    """A file that is not well-formed XML (or holds a DTD or entities, which are refused)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class _Builder(ContentHandler):
    """SAX events (with namespaces) into `Element`s that remember where they start."""

    def __init__(self) -> None:
        super().__init__()
        self.root: Element | None = None
        self._open: list[Element] = []
        self._locator: Locator | None = None

    def setDocumentLocator(self, locator: Locator) -> None:
        self._locator = locator

    def startElementNS(self, name: tuple[str | None, str], qname: str | None,
                       attrs: Any) -> None:
        namespace, local = name
        line = (self._locator.getLineNumber() or 0) if self._locator else 0
        column = (self._locator.getColumnNumber() or 0) + 1 if self._locator else 0
        element = Element(local, namespace or "", line, column,
                          attributes=[local_name for (_ns, local_name) in attrs.getNames()])
        if self._open:
            self._open[-1].children.append(element)
        else:
            self.root = element
        self._open.append(element)

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:
        self._open.pop()

    def characters(self, content: str) -> None:
        if self._open:
            self._open[-1].text += content


def parse(data: bytes) -> Element:
    """The element tree of a file; XmlFileError (with position) when it is not usable XML."""
    builder = _Builder()
    parser = DefusedExpatParser(namespaceHandling=1, forbid_dtd=True)
    parser.setContentHandler(builder)
    source = InputSource()
    source.setByteStream(BytesIO(data))
    try:
        parser.parse(source)
    except SAXParseException as error:
        raise XmlFileError(error.getLineNumber() or 0, (error.getColumnNumber() or 0) + 1,
                           f"Error parsing file: {error.getMessage()}") from None
    except DefusedXmlException as error:
        raise XmlFileError(1, 1, f"Error parsing file: {error} (DTDs and entities are "
                                 "not allowed in metadata files)") from None
    assert builder.root is not None
    return builder.root


def validate(root: Element, type_name: str) -> list[Issue]:
    """Structural problems of a whole file whose root must be `type_name`."""
    if root.name != type_name or root.namespace != NAMESPACE:
        return [Issue(root.line, root.column, (
            f"Root element {root.qualified} is not a {type_name} in the namespace {NAMESPACE}"
        ))]
    issues: list[Issue] = []
    _check_complex(root, type_name, issues)
    return issues


def _check_complex(element: Element, type_name: str, issues: list[Issue]) -> None:
    particles = COMPLEX[type_name]
    names = [particle[0] for particle in particles]
    _check_attributes(element, issues)
    if element.text.strip():
        issues.append(Issue(element.line, element.column, (
            f"Element {element.qualified} holds text; a {type_name} holds elements only"
        )))
    position = 0
    counts: dict[str, int] = {}
    for child in element.children:
        index = names.index(child.name, position) if child.name in names[position:] else -1
        _, kind, _, most = particles[index] if index >= 0 else ("", "", 0, 0)
        if child.namespace != NAMESPACE or index < 0 or \
                (most is not None and counts.get(child.name, 0) >= most):
            issues.append(Issue(child.line, child.column, (
                f"Element {child.qualified} invalid at this location in type {type_name}"
            )))
            continue
        position = index
        counts[child.name] = counts.get(child.name, 0) + 1
        if kind in COMPLEX:
            _check_complex(child, kind, issues)
        elif kind != OPAQUE:
            _check_simple(child, kind, issues)
    for name, _kind, least, _most in particles:
        if counts.get(name, 0) < least:
            issues.append(Issue(element.line, element.column, (
                f"Element {{{NAMESPACE}}}{name} is required in type {type_name} and missing"
            )))


def _check_attributes(element: Element, issues: list[Issue]) -> None:
    for attribute in element.attributes:
        issues.append(Issue(element.line, element.column, (
            f"Attribute {attribute} is not allowed on element {element.qualified}"
        )))


def _check_simple(element: Element, kind: str, issues: list[Issue]) -> None:
    _check_attributes(element, issues)
    if element.children:
        first = element.children[0]
        issues.append(Issue(first.line, first.column, (
            f"Element {first.qualified} invalid: {element.qualified} holds a value, not elements"
        )))
        return
    text = element.text.strip()
    if kind == BOOLEAN and text not in _BOOLEANS:
        message = f"'{text}' is not a valid value for the type xsd:boolean"
    elif kind == INT and (not _INT.match(text) or not -(2 ** 31) <= int(text) < 2 ** 31):
        message = f"'{text}' is not a valid value for the type xsd:int"
    elif kind in ENUMS and text not in ENUMS[kind]:
        message = f"'{text}' is not a valid value for the enum '{kind}'"
    else:
        return
    issues.append(Issue(element.line, element.column, message))


def boolean(text: str | None, default: bool = False) -> bool:
    """An xsd:boolean value already checked by `validate`."""
    return _BOOLEANS.get(text, default) if text is not None else default
