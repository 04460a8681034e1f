"""The sObjects of the emulated org and the REST `describe` documents built from them.

The standard catalog is code (docs/architecture.md, "CRM objects"); custom fields deployed
at run time and field-level-security overrides live in the database and are merged in by
`Catalog`. Every consumer (describe, SOQL, DML validation) reads the same merged view, so
a field the integration user cannot see is unknown everywhere at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist",
                        "multipicklist"})
NUMBER_TYPES = frozenset({"double", "currency", "percent"})
FIELD_TYPES = TEXT_TYPES | NUMBER_TYPES | {"id", "int", "boolean", "date", "datetime",
                                           "reference"}
ACCESS_LEVELS = ("edit", "read", "hidden")
_SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean",
               "int": "xsd:int", "date": "xsd:date", "datetime": "xsd:dateTime",
               **{name: "xsd:double" for name in NUMBER_TYPES}}
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def fold(text: str) -> str:
    """Salesforce compares text case-insensitively, for every alphabet (`ZOË` = `zoë`)."""
    return text.casefold()


def shadow_column(name: str) -> str:
    """The folded copy of an indexed text field (`Email` -> `Email__fold`)."""
    return name + "__fold"


def _label(name: str) -> str:
    """`Personalization_Engagement_Score__c` -> `Personalization Engagement Score`."""
    bare = name[:-3] if name.endswith("__c") else name
    if bare.endswith("Id") and len(bare) > 2:
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", bare[:-2]) + " ID"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", bare.replace("_", " "))


@dataclass(frozen=True)
class FieldDef:
    """One field as the integration user sees it (after field-level security)."""

    name: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    required: bool = False
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    id_lookup: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None
    indexed: bool = False
    name_field: bool = False
    label: str = ""

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    @property
    def folded(self) -> bool:
        """Text compared case-insensitively (SOQL `=`, `IN`, `LIKE`, upsert matching)."""
        return self.type in TEXT_TYPES

    @property
    def shadowed(self) -> bool:
        """Stored twice: as given and case-folded, so case-insensitive look-ups use an index."""
        return self.folded and self.indexed

    @property
    def nillable(self) -> bool:
        return not self.required and self.type not in ("boolean", "id") and \
            self.name not in SYSTEM_FIELDS

    @property
    def display_label(self) -> str:
        return self.label or _label(self.name)

    def to_spec(self) -> dict[str, Any]:
        """The JSON-able form stored in the database for run-time (custom) fields."""
        return {"name": self.name, "type": self.type, "length": self.length,
                "precision": self.precision, "scale": self.scale, "digits": self.digits,
                "required": self.required, "createable": self.createable,
                "updateable": self.updateable, "externalId": self.external_id,
                "idLookup": self.id_lookup, "unique": self.unique,
                "referenceTo": list(self.reference_to),
                "relationshipName": self.relationship_name,
                "picklistValues": list(self.picklist), "restrictedPicklist": self.restricted,
                "defaultValue": self.default, "label": self.label}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FieldDef:
        """A field from a metadata-style dict; raises ValueError naming the bad key."""
        name = spec.get("name")
        if not isinstance(name, str) or not _API_NAME.match(name):
            raise ValueError(f"field name {name!r} is not a valid API name")
        kind = spec.get("type")
        if kind not in FIELD_TYPES or kind == "id":
            raise ValueError(f"field {name}: type {kind!r} is not one of "
                             f"{', '.join(sorted(FIELD_TYPES - {'id'}))}")
        picklist = spec.get("picklistValues") or []
        values = tuple(item["value"] if isinstance(item, Mapping) else str(item)
                       for item in picklist)
        external = bool(spec.get("externalId", False))
        length = int(spec.get("length") or 0)
        if kind in TEXT_TYPES and not length:
            length = {"email": 80, "phone": 40}.get(kind, 255)
        references = tuple(spec.get("referenceTo") or ())
        if kind == "reference" and not references:
            raise ValueError(f"field {name}: a reference field needs referenceTo")
        relationship = spec.get("relationshipName")
        if kind == "reference" and not relationship:
            relationship = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
        return cls(
            name=name, type=kind, length=length if kind in TEXT_TYPES else
            (18 if kind == "reference" else 0),
            precision=int(spec.get("precision") or (18 if kind in NUMBER_TYPES else 0)),
            scale=int(spec.get("scale") or 0),
            digits=int(spec.get("digits") or (9 if kind == "int" else 0)),
            required=bool(spec.get("required", False)),
            createable=bool(spec.get("createable", True)),
            updateable=bool(spec.get("updateable", True)),
            external_id=external, id_lookup=bool(spec.get("idLookup", external)),
            unique=bool(spec.get("unique", False)), reference_to=references,
            relationship_name=relationship if kind == "reference" else None,
            picklist=values, restricted=bool(spec.get("restrictedPicklist", False)),
            default=spec.get("defaultValue"),
            indexed=external or bool(spec.get("unique", False)) or kind == "reference",
            label=str(spec.get("label") or ""),
        )


@dataclass(frozen=True)
class ObjectDef:
    name: str
    key_prefix: str
    fields: tuple[FieldDef, ...]
    label: str = ""
    label_plural: str = ""
    _by_lower: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({item.name.lower(): item for item in self.fields})

    def field(self, name: str) -> FieldDef | None:
        """Field names are case-insensitive in every Salesforce API."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field behind a parent relationship name (`Account` -> AccountId)."""
        lower = name.lower()
        for item in self.fields:
            if item.relationship_name and item.relationship_name.lower() == lower:
                return item
        return None

    def with_fields(self, fields: Iterable[FieldDef]) -> ObjectDef:
        return ObjectDef(self.name, self.key_prefix, tuple(fields), self.label,
                         self.label_plural)


# -- the standard catalog (docs/architecture.md) -------------------------------------------

SYSTEM_FIELDS = ("IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")

INDUSTRIES = ("Agriculture", "Apparel", "Banking", "Chemicals", "Communications",
              "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering",
              "Entertainment", "Finance", "Healthcare", "Hospitality", "Insurance",
              "Manufacturing", "Media", "Retail", "Technology", "Telecommunications",
              "Transportation", "Utilities", "Other")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                 "Closed - Not Converted")


def _text(name: str, length: int, **flags: Any) -> FieldDef:
    return FieldDef(name, flags.pop("type", "string"), length=length, **flags)


def _pick(name: str, values: tuple[str, ...], **flags: Any) -> FieldDef:
    return FieldDef(name, "picklist", length=255, picklist=values, **flags)


def _ref(name: str, target: str, relationship: str, **flags: Any) -> FieldDef:
    return FieldDef(name, "reference", length=18, reference_to=(target,),
                    relationship_name=relationship, indexed=True, **flags)


def _system(prefix_label: str) -> tuple[FieldDef, ...]:
    ro = {"createable": False, "updateable": False}
    return (
        FieldDef("Id", "id", length=18, id_lookup=True, unique=True, label=f"{prefix_label} ID",
                 **ro),
        FieldDef("IsDeleted", "boolean", default=False, label="Deleted", **ro),
        FieldDef("CreatedDate", "datetime", label="Created Date", **ro),
        FieldDef("LastModifiedDate", "datetime", label="Last Modified Date", **ro),
        FieldDef("SystemModstamp", "datetime", indexed=True, label="System Modstamp", **ro),
    )


def _external(name: str) -> FieldDef:
    return FieldDef(name, "string", length=120, external_id=True, id_lookup=True, unique=True,
                    indexed=True)


def _personalization_person() -> tuple[FieldDef, ...]:
    return (
        _external("Personalization_User_Id__c"),
        FieldDef("Personalization_Engagement_Score__c", "double", precision=18, scale=4),
        FieldDef("Personalization_First_Activity__c", "datetime"),
        FieldDef("Personalization_Last_Activity__c", "datetime"),
        _text("Personalization_Segments__c", 255),
        _pick("Personalization_Tier__c", ("Gold", "Silver", "Bronze"), restricted=True),
    )


_RO = {"createable": False, "updateable": False}

STANDARD_OBJECTS: tuple[ObjectDef, ...] = (
    ObjectDef("Account", "001", (
        *_system("Account"),
        _text("Name", 255, required=True, id_lookup=True, indexed=True, name_field=True,
              label="Account Name"),
        _text("Website", 255, type="url"),
        _pick("Industry", INDUSTRIES),
        _pick("Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Partner",
                       "Other"), label="Account Type"),
        FieldDef("AnnualRevenue", "currency", precision=18, scale=0),
        FieldDef("NumberOfEmployees", "int", digits=8, label="Employees"),
        _external("Personalization_Account_Id__c"),
        FieldDef("Personalization_Engagement_Score__c", "double", precision=18, scale=4),
        FieldDef("Personalization_Last_Activity__c", "datetime"),
        _text("Personalization_Segments__c", 255),
    ), "Account", "Accounts"),
    ObjectDef("Contact", "003", (
        *_system("Contact"),
        _text("FirstName", 40),
        _text("LastName", 80, required=True),
        _text("Email", 80, type="email", id_lookup=True, indexed=True),
        _text("Phone", 40, type="phone", label="Business Phone"),
        _text("Title", 128),
        _text("Department", 80),
        _pick("LeadSource", LEAD_SOURCES),
        _ref("AccountId", "Account", "Account"),
        *_personalization_person(),
        _text("Internal_Notes__c", 255),
        FieldDef("Legacy_Score__c", "double", precision=18, scale=2),
    ), "Contact", "Contacts"),
    ObjectDef("Lead", "00Q", (
        *_system("Lead"),
        _text("FirstName", 40),
        _text("LastName", 80, required=True),
        _text("Company", 255, required=True),
        _text("Email", 80, type="email", id_lookup=True, indexed=True),
        _text("Title", 128),
        _pick("Status", LEAD_STATUSES, required=True, restricted=True,
              default="Open - Not Contacted", label="Lead Status"),
        _pick("LeadSource", LEAD_SOURCES),
        _pick("Industry", INDUSTRIES),
        _pick("Rating", ("Hot", "Warm", "Cold")),
        FieldDef("IsConverted", "boolean", default=False, label="Converted", **_RO),
        _ref("ConvertedContactId", "Contact", "ConvertedContact", **_RO),
        _ref("ConvertedAccountId", "Account", "ConvertedAccount", **_RO),
        FieldDef("ConvertedDate", "date", **_RO),
        *_personalization_person(),
    ), "Lead", "Leads"),
    ObjectDef("Campaign", "701", (
        *_system("Campaign"),
        _text("Name", 80, required=True, id_lookup=True, indexed=True, name_field=True,
              label="Campaign Name"),
        _pick("Type", ("Webinar", "Email", "Event", "Advertisement", "Other")),
        _pick("Status", ("Planned", "In Progress", "Completed", "Aborted")),
        FieldDef("IsActive", "boolean", default=False, label="Active"),
    ), "Campaign", "Campaigns"),
    ObjectDef("CampaignMember", "00v", (
        *_system("Campaign Member"),
        _ref("CampaignId", "Campaign", "Campaign", required=True),
        _ref("ContactId", "Contact", "Contact"),
        _ref("LeadId", "Lead", "Lead"),
        _text("Status", 40, default="Sent"),
        FieldDef("HasResponded", "boolean", default=False, label="Responded", **_RO),
    ), "Campaign Member", "Campaign Members"),
)

# Field-level security of the integration user before any override (architecture.md).
DEFAULT_ACCESS: dict[tuple[str, str], str] = {
    ("Contact", "Internal_Notes__c"): "hidden",
    ("Contact", "Legacy_Score__c"): "read",
}


class Catalog:
    """The merged view: standard objects + run-time fields, with and without FLS."""

    def __init__(self, custom_fields: Iterable[tuple[str, FieldDef]] = (),
                 access: Mapping[tuple[str, str], str] | None = None) -> None:
        extra: dict[str, list[FieldDef]] = {}
        for sobject, item in custom_fields:
            extra.setdefault(sobject.lower(), []).append(item)
        self._full: dict[str, ObjectDef] = {}
        for obj in STANDARD_OBJECTS:
            names = {item.name.lower() for item in obj.fields}
            added = [item for item in extra.get(obj.name.lower(), [])
                     if item.name.lower() not in names]
            self._full[obj.name.lower()] = obj.with_fields((*obj.fields, *added))
        levels = {(o.lower(), f.lower()): level for (o, f), level in DEFAULT_ACCESS.items()}
        levels.update({(o.lower(), f.lower()): level for (o, f), level in (access or {}).items()})
        self._visible = {key: self._apply_access(obj, levels) for key, obj in self._full.items()}

    @staticmethod
    def _apply_access(obj: ObjectDef, levels: Mapping[tuple[str, str], str]) -> ObjectDef:
        kept = []
        for item in obj.fields:
            level = levels.get((obj.name.lower(), item.name.lower()), "edit")
            if level == "hidden":
                continue
            if level == "read":
                item = replace(item, createable=False, updateable=False)
            kept.append(item)
        return obj.with_fields(kept)

    def names(self) -> list[str]:
        return [obj.name for obj in self._full.values()]

    def full(self, sobject: str) -> ObjectDef | None:
        """No field-level security: the administrator's view."""
        return self._full.get(sobject.lower())

    def visible(self, sobject: str) -> ObjectDef | None:
        """What the integration user sees."""
        return self._visible.get(sobject.lower())

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        return next((obj for obj in self._full.values() if obj.key_prefix == prefix), None)


# -- describe documents --------------------------------------------------------------------

def describe_field(item: FieldDef) -> dict[str, Any]:
    picklist = [{"active": True, "value": value, "label": value,
                 "defaultValue": value == item.default, "validFor": None}
                for value in item.picklist]
    return {
        "name": item.name,
        "label": item.display_label,
        "type": item.type,
        "soapType": _SOAP_TYPES.get(item.type, "xsd:string"),
        "length": item.length,
        "byteLength": item.length * 3,
        "precision": item.precision,
        "scale": item.scale,
        "digits": item.digits,
        "createable": item.createable,
        "updateable": item.updateable,
        "nillable": item.nillable,
        "filterable": item.type != "textarea",
        "sortable": item.type != "textarea",
        "groupable": item.type not in NUMBER_TYPES | {"datetime", "textarea"},
        "externalId": item.external_id,
        "idLookup": item.id_lookup,
        "unique": item.unique,
        "caseSensitive": False,
        "custom": item.custom,
        "calculated": False,
        "autoNumber": False,
        "nameField": item.name_field,
        "defaultedOnCreate": item.default is not None or item.name in SYSTEM_FIELDS
        or item.type in ("id", "boolean"),
        "defaultValue": item.default,
        "referenceTo": list(item.reference_to),
        "relationshipName": item.relationship_name,
        "restrictedPicklist": item.restricted,
        "picklistValues": picklist,
    }


def _object_flags(obj: ObjectDef) -> dict[str, Any]:
    return {
        "name": obj.name,
        "label": obj.label or obj.name,
        "labelPlural": obj.label_plural or obj.name + "s",
        "keyPrefix": obj.key_prefix,
        "custom": obj.name.endswith("__c"),
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "retrieveable": True,
        "searchable": True,
        "layoutable": True,
        "replicateable": True,
        "triggerable": True,
        "undeletable": True,
    }


def describe_object(obj: ObjectDef) -> dict[str, Any]:
    """The REST `sobjects/{name}/describe` document of one object."""
    return {**_object_flags(obj), "fields": [describe_field(item) for item in obj.fields],
            "childRelationships": [], "recordTypeInfos": []}


def describe_global(objects: Iterable[ObjectDef]) -> dict[str, Any]:
    """The REST `sobjects/` document."""
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [_object_flags(obj) for obj in objects]}
