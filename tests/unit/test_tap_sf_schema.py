"""describe → JSON Schema for tap-salesforce-crm, and the values kept true to it."""

from __future__ import annotations

import pytest
from target_salesforce_crm.tap.schema import (
    FieldAccessError,
    columns_of,
    datetime_columns,
    field_schema,
    normalize_datetime,
    object_schema,
    resolve_fields,
    typed_value,
)


def sf_field(name: str, sf_type: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": sf_type, "nillable": sf_type != "id", **extra}


CONTACT = {
    "name": "Contact",
    "fields": [
        sf_field("Id", "id"),
        sf_field("Email", "email"),
        sf_field("Title", "string"),
        sf_field("LeadSource", "picklist"),
        sf_field("Personalization_Engagement_Score__c", "double"),
        sf_field("SystemModstamp", "datetime"),
        sf_field("AccountId", "reference", relationshipName="Account", referenceTo=["Account"]),
    ],
}

EXPECTED_TYPES = [
    ("id", {"type": "string"}),
    ("string", {"type": ["string", "null"]}),
    ("textarea", {"type": ["string", "null"]}),
    ("email", {"type": ["string", "null"]}),
    ("phone", {"type": ["string", "null"]}),
    ("url", {"type": ["string", "null"]}),
    ("picklist", {"type": ["string", "null"]}),
    ("multipicklist", {"type": ["string", "null"]}),
    ("reference", {"type": ["string", "null"]}),
    ("double", {"type": ["number", "null"]}),
    ("currency", {"type": ["number", "null"]}),
    ("percent", {"type": ["number", "null"]}),
    ("int", {"type": ["integer", "null"]}),
    ("boolean", {"type": ["boolean", "null"]}),
    ("date", {"type": ["string", "null"], "format": "date"}),
    ("datetime", {"type": ["string", "null"], "format": "date-time"}),
]


@pytest.mark.parametrize(("sf_type", "expected"), EXPECTED_TYPES)
def test_every_describe_type_has_its_json_schema(sf_type: str, expected: dict) -> None:
    assert field_schema(sf_field("X", sf_type)) == expected


def test_compound_types_accept_any_json_value() -> None:
    schema = field_schema(sf_field("MailingAddress", "address"))
    assert set(schema["type"]) >= {"object", "string", "null"}


def test_resolve_fields_returns_canonical_names_case_insensitively() -> None:
    found = resolve_fields(CONTACT, {"email": "mapping", "TITLE": "mapping"})
    assert list(found) == ["Email", "Title"]


def test_hidden_fields_fail_with_object_field_origin_and_permission() -> None:
    with pytest.raises(FieldAccessError) as caught:
        resolve_fields(CONTACT, {
            "Email": "the tap's core fields",
            "Internal_Notes__c": "mapping file transforms/crm-to-personalization.yml",
            "Titel": "setting extra_fields.contacts",
        })
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Contact field(s) not readable by the integration user")
    assert "Internal_Notes__c (named in mapping file transforms/crm-to-personalization.yml)" \
        in message
    assert "Titel (named in setting extra_fields.contacts, did you mean Title?)" in message
    assert "Field-Level Security" in message
    assert "Read access" in message
    assert "Email" not in message.split(":")[1]


def test_object_schema_nests_relationship_fields_and_round_trips_columns() -> None:
    fields = {
        "Id": sf_field("Id", "id"),
        "Campaign.Name": sf_field("Name", "string"),
        "Campaign.StartDate": sf_field("StartDate", "date"),
        "SystemModstamp": sf_field("SystemModstamp", "datetime"),
    }
    schema = object_schema(fields)
    assert schema["properties"]["Campaign"] == {
        "type": ["object", "null"],
        "properties": {
            "Name": {"type": ["string", "null"]},
            "StartDate": {"type": ["string", "null"], "format": "date"},
        },
    }
    assert columns_of(schema) == ("Id", "Campaign.Name", "Campaign.StartDate", "SystemModstamp")
    assert datetime_columns(schema) == frozenset({"SystemModstamp"})


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-01-01T00:00:00.000+0000", "2024-01-01T00:00:00.000Z"),
    ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z"),
    ("2024-01-01T02:30:00.123+02:00", "2024-01-01T00:30:00.123Z"),
    ("2024-06-30T23:59:59.999000+00:00", "2024-06-30T23:59:59.999Z"),
])
def test_datetimes_normalise_to_one_sortable_rfc3339_shape(raw: str, expected: str) -> None:
    assert normalize_datetime(raw) == expected


@pytest.mark.parametrize(("text", "prop", "expected"), [
    ("", {"type": ["string", "null"]}, None),
    ("Gold", {"type": ["string", "null"]}, "Gold"),
    ("0012", {"type": ["string", "null"]}, "0012"),
    ("12.5", {"type": ["number", "null"]}, 12.5),
    ("3", {"type": ["integer", "null"]}, 3),
    ("true", {"type": ["boolean", "null"]}, True),
    ("false", {"type": ["boolean", "null"]}, False),
    ("2024-02-01", {"type": ["string", "null"], "format": "date"}, "2024-02-01"),
    ("2024-02-01T10:00:00.000Z", {"type": ["string", "null"], "format": "date-time"},
     "2024-02-01T10:00:00.000Z"),
])
def test_csv_cells_become_the_declared_json_types(text: str, prop: dict, expected: object) -> None:
    assert typed_value(text, prop) == expected
