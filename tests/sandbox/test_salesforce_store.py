"""The Salesforce sandbox store: catalog, describe, ids, DML validation, seeding, admin reads."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from emulators.salesforce import store as store_module
from emulators.salesforce.ids import make_id, normalize_id, suffix
from emulators.salesforce.store import InvalidBatchError, SalesforceStore, SoqlError

FLS_HINT = ("Please check the security settings of this field and verify that it is "
            "read/write for your profile or permission set.")


@pytest.fixture
def sf(tmp_path: Path) -> SalesforceStore:
    return SalesforceStore(tmp_path / "salesforce.db")


def error_of(result: dict[str, Any]) -> tuple[str, str, list[str]]:
    assert result["success"] is False
    assert result["id"] is None
    [error] = result["errors"]
    return error["statusCode"], error["message"], error["fields"]


def contact(sf: SalesforceStore, record_id: str) -> dict[str, Any]:
    [row] = sf.records("Contact", f"Id = '{record_id}'")
    return row


def fields_of(described: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in described["fields"]}


# -- ids ------------------------------------------------------------------------------------

def test_id_suffix_matches_salesforce() -> None:
    assert suffix("0015000000Gv7qJ") == "AAR"  # the example in Salesforce's documentation
    assert normalize_id("0015000000Gv7qJ") == "0015000000Gv7qJAAR"
    assert normalize_id("0015000000gv7qjaar") == "0015000000Gv7qJAAR"
    assert normalize_id("0015000000GV7QJAAR") == "0015000000Gv7qJAAR"


@pytest.mark.parametrize("bad", ["", "abc", "0015000000Gv7qJAA", "0015000000Gv7qJ!AR",
                                 "0015000000Gv7qJAA9", "001500000005V7QJAAR"[:15] + "BAR"])
def test_malformed_ids_are_rejected(bad: str) -> None:
    assert normalize_id(bad) is None


def test_generated_ids_are_valid_and_distinct() -> None:
    ids = [make_id("003", counter) for counter in (1, 61, 62, 10 ** 9)]
    assert all(len(record_id) == 18 and record_id.startswith("0035g") for record_id in ids)
    assert [normalize_id(record_id) for record_id in ids] == ids
    assert len(set(ids)) == 4


# -- catalog and describe -------------------------------------------------------------------

def test_describe_contact(sf: SalesforceStore) -> None:
    described = sf.describe("contact")
    assert (described["name"], described["keyPrefix"], described["queryable"],
            described["updateable"], described["createable"]) == ("Contact", "003", True, True,
                                                                  True)
    fields = fields_of(described)
    assert fields["LastName"]["length"] == 80
    assert fields["LastName"]["nillable"] is False
    assert fields["Email"]["type"] == "email"
    assert fields["Email"]["idLookup"] is True
    assert fields["AccountId"]["type"] == "reference"
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    ext = fields["Personalization_User_Id__c"]
    assert (ext["externalId"], ext["unique"], ext["idLookup"], ext["custom"], ext["length"]) \
        == (True, True, True, True, 120)
    tier = fields["Personalization_Tier__c"]
    assert tier["restrictedPicklist"] is True
    assert [value["value"] for value in tier["picklistValues"]] == ["Gold", "Silver", "Bronze"]
    assert tier["picklistValues"][0] == {"active": True, "value": "Gold", "label": "Gold",
                                         "defaultValue": False, "validFor": None}
    score = fields["Personalization_Engagement_Score__c"]
    assert (score["type"], score["precision"], score["scale"]) == ("double", 18, 4)
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["Id"]["type"] == "id"


def test_field_level_security_defaults(sf: SalesforceStore) -> None:
    fields = fields_of(sf.describe("Contact"))
    assert "Internal_Notes__c" not in fields
    assert (fields["Legacy_Score__c"]["updateable"], fields["Legacy_Score__c"]["createable"]) \
        == (False, False)


def test_describe_lead_and_account_specifics(sf: SalesforceStore) -> None:
    lead = fields_of(sf.describe("Lead"))
    assert lead["Status"]["defaultValue"] == "Open - Not Contacted"
    assert lead["Status"]["restrictedPicklist"] is True
    assert lead["IsConverted"]["updateable"] is False
    assert lead["ConvertedContactId"]["relationshipName"] == "ConvertedContact"
    assert lead["Company"]["nillable"] is False
    account = fields_of(sf.describe("Account"))
    assert account["AnnualRevenue"]["type"] == "currency"
    assert account["NumberOfEmployees"]["type"] == "int"
    assert len(account["Industry"]["picklistValues"]) == 24
    member = fields_of(sf.describe("CampaignMember"))
    assert member["HasResponded"]["updateable"] is False
    assert member["CampaignId"]["nillable"] is False


def test_describe_unknown_object(sf: SalesforceStore) -> None:
    with pytest.raises(SoqlError) as caught:
        sf.describe("Opportunity")
    assert caught.value.code == "NOT_FOUND"


def test_describe_global(sf: SalesforceStore) -> None:
    described = sf.describe_global()
    assert described["encoding"] == "UTF-8"
    assert {(o["name"], o["keyPrefix"]) for o in described["sobjects"]} == {
        ("Account", "001"), ("Contact", "003"), ("Lead", "00Q"), ("Campaign", "701"),
        ("CampaignMember", "00v")}
    assert all(o["queryable"] and o["updateable"] for o in described["sobjects"])


def test_field_access_overrides_and_reset(sf: SalesforceStore) -> None:
    sf.set_field_access("Contact", "Internal_Notes__c", "edit")
    sf.set_field_access("contact", "title", "hidden")
    sf.set_field_access("Contact", "Email", "read")
    fields = fields_of(sf.describe("Contact"))
    assert fields["Internal_Notes__c"]["updateable"] is True
    assert "Title" not in fields
    assert fields["Email"]["updateable"] is False
    with pytest.raises(SoqlError) as caught:
        sf.query("SELECT Title FROM Contact")
    assert caught.value.code == "INVALID_FIELD"
    assert sf.query("SELECT Internal_Notes__c FROM Contact").total_size == 0
    sf.reset()
    fields = fields_of(sf.describe("Contact"))
    assert "Title" in fields
    assert "Internal_Notes__c" not in fields


@pytest.mark.parametrize(("sobject", "field", "access", "message"), [
    ("Contact", "Email", "write", "access must be one of"),
    ("Nope", "Email", "read", "unknown sObject"),
    ("Contact", "Nope", "read", "no field"),
    ("Contact", "Id", "hidden", "always visible"),
])
def test_field_access_rejects_bad_requests(sf: SalesforceStore, sobject: str, field: str,
                                           access: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sf.set_field_access(sobject, field, access)


def test_custom_fields_added_at_run_time(sf: SalesforceStore) -> None:
    [existing] = sf.insert_raw("Contact", [{"LastName": "Old"}])
    entry = sf.define_field("Contact", {"name": "Loyalty_Level__c", "type": "picklist",
                                        "picklistValues": ["A", "B"],
                                        "restrictedPicklist": True})
    assert (entry["type"], entry["custom"], entry["restrictedPicklist"]) == ("picklist", True,
                                                                             True)
    twice = sf.apply("update", "Contact", [{"Id": existing, "Loyalty_Level__c": "A"},
                                           {"Id": existing, "loyalty_level__c": "Z"}])
    assert [error_of(r)[0] for r in twice] == ["DUPLICATE_VALUE"] * 2  # same Id twice
    [result] = sf.apply("update", "Contact", [{"Id": existing, "Loyalty_Level__c": "A"}])
    assert result["success"] is True
    assert sf.query("SELECT Loyalty_Level__c FROM Contact").fetch(1) == [
        {"Loyalty_Level__c": "A"}]
    reopened = SalesforceStore(sf.path)  # definitions live in the database
    assert "Loyalty_Level__c" in fields_of(reopened.describe("Contact"))


def test_custom_external_id_field_is_indexed_and_matchable(sf: SalesforceStore) -> None:
    sf.insert_raw("Account", [{"Name": "A"}])
    sf.define_field("Account", {"name": "Erp_Id__c", "type": "string", "length": 20,
                                "externalId": True, "unique": True})
    [created] = sf.apply("upsert", "Account", [{"Erp_Id__c": "E-1", "Name": "B"}],
                         external_id_field="erp_id__c")
    [updated] = sf.apply("upsert", "Account", [{"Erp_Id__c": "e-1", "Name": "C"}],
                         external_id_field="Erp_Id__c")
    assert (created["created"], updated["created"], updated["id"]) == (True, False,
                                                                      created["id"])


@pytest.mark.parametrize("spec", [
    {"name": "Bad Name__c", "type": "string"},
    {"name": "X__c", "type": "blob"},
    {"name": "Ref__c", "type": "reference"},
])
def test_custom_field_specs_are_validated(sf: SalesforceStore, spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="field"):
        sf.define_field("Contact", spec)


def test_standard_fields_cannot_be_redefined(sf: SalesforceStore) -> None:
    with pytest.raises(ValueError, match="custom field names end in __c"):
        sf.define_field("Contact", {"name": "Email", "type": "string"})


# -- insert ---------------------------------------------------------------------------------

def test_insert_creates_records_with_system_fields(sf: SalesforceStore) -> None:
    results = sf.apply("insert", "Lead", [
        {"LastName": "Lee", "Company": "Acme", "Email": "lee@acme.com"},
        {"LastName": "Kim", "Company": "Beta", "Status": "Working - Contacted"},
    ])
    assert [r["success"] for r in results] == [True, True]
    assert all(r["created"] and r["id"].startswith("00Q") and r["errors"] == []
               for r in results)
    rows = sf.records("Lead", fields=["Id", "LastName", "Status", "IsConverted", "IsDeleted",
                                      "CreatedDate", "SystemModstamp"])
    assert [(r["Id"], r["LastName"], r["Status"], r["IsConverted"], r["IsDeleted"])
            for r in rows] == [
        (results[0]["id"], "Lee", "Open - Not Contacted", False, False),
        (results[1]["id"], "Kim", "Working - Contacted", False, False)]
    assert rows[0]["CreatedDate"] == rows[0]["SystemModstamp"]
    assert rows[0]["CreatedDate"].endswith("+0000")


def test_insert_required_fields(sf: SalesforceStore) -> None:
    [missing_both, missing_one, null_name] = sf.apply("insert", "Lead", [
        {"FirstName": "x"}, {"LastName": "Lee"}, {"LastName": None, "Company": "C"}])
    assert error_of(missing_both) == ("REQUIRED_FIELD_MISSING",
                                      "Required fields are missing: [LastName, Company]",
                                      ["LastName", "Company"])
    assert error_of(missing_one)[1] == "Required fields are missing: [Company]"
    assert error_of(null_name)[2] == ["LastName"]
    assert sf.counts()["Lead"] == 0


def test_insert_with_id_or_read_only_field_is_refused(sf: SalesforceStore) -> None:
    [with_id, read_only, empty_id] = sf.apply("insert", "Contact", [
        {"Id": make_id("003", 5), "LastName": "A"},
        {"LastName": "B", "Legacy_Score__c": 3, "IsDeleted": True},
        {"Id": "", "LastName": "C"},
    ])
    assert error_of(with_id)[0] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error_of(read_only) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: Legacy_Score__c, IsDeleted. {FLS_HINT}",
        ["Legacy_Score__c", "IsDeleted"])
    assert empty_id["success"] is True


@pytest.mark.parametrize("name", ["Foo__c", "Internal_Notes__c"])
def test_unknown_or_hidden_field_fails_the_whole_batch(sf: SalesforceStore, name: str) -> None:
    with pytest.raises(InvalidBatchError, match=f"^Field name not found : {name}$"):
        sf.apply("insert", "Contact", [{"LastName": "A"}, {"LastName": "B", name: "x"}])
    assert sf.counts()["Contact"] == 0


def test_batch_level_problems(sf: SalesforceStore) -> None:
    with pytest.raises(InvalidBatchError, match="Unable to find object: Opportunity"):
        sf.apply("insert", "Opportunity", [{"Name": "x"}])
    with pytest.raises(InvalidBatchError, match="Invalid operation: merge"):
        sf.apply("merge", "Contact", [{"LastName": "x"}])
    not_records: list[Any] = ["LastName"]
    with pytest.raises(InvalidBatchError, match="JSON object"):
        sf.apply("insert", "Contact", not_records)


def test_bulk_attributes_key_is_ignored(sf: SalesforceStore) -> None:
    [result] = sf.apply("insert", "Contact", [{"attributes": {"type": "Contact"},
                                               "LastName": "A"}])
    assert result["success"] is True


# -- field values ---------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "code", "message"), [
    ("Personalization_Engagement_Score__c", "abc", "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Personalization_Engagement_Score__c: value not of required type: abc"),
    ("Personalization_Engagement_Score__c", True, "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Personalization_Engagement_Score__c: value not of required type: true"),
    ("Personalization_Engagement_Score__c", "NaN", "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Personalization_Engagement_Score__c: value not of required type: NaN"),
    ("Personalization_Engagement_Score__c", 1e15, "NUMBER_OUTSIDE_VALID_RANGE",
     "Personalization_Engagement_Score__c: value outside of valid range on numeric field: "
     "1000000000000000.0"),
    ("Personalization_First_Activity__c", "yesterday", "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Personalization_First_Activity__c: value not of required type: yesterday"),
    ("Personalization_First_Activity__c", "2024-01-01 10:00:00", "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Personalization_First_Activity__c: value not of required type: 2024-01-01 10:00:00"),
    ("Personalization_First_Activity__c", {"a": 1}, "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Personalization_First_Activity__c: value not of required type: {'a': 1}"),
    ("Title", "x" * 129, "STRING_TOO_LONG",
     f"Title: data value too large: {'x' * 129} (max length=128)"),
    ("Title", ["a"], "INVALID_TYPE_ON_FIELD_IN_RECORD", "Title: value not of required type: ['a']"),
    ("Email", "no-at-sign.example.com", "INVALID_EMAIL_ADDRESS",
     "Email: invalid email address: no-at-sign.example.com"),
    ("Email", "a b@example.com", "INVALID_EMAIL_ADDRESS",
     "Email: invalid email address: a b@example.com"),
    ("Email", "ann@localhost", "INVALID_EMAIL_ADDRESS",
     "Email: invalid email address: ann@localhost"),
    ("Email", "ann@@example.com", "INVALID_EMAIL_ADDRESS",
     "Email: invalid email address: ann@@example.com"),
    ("Personalization_Tier__c", "Platinum", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
     "Personalization_Tier__c: bad value for restricted picklist field: Platinum"),
    ("Personalization_Tier__c", "gold", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
     "Personalization_Tier__c: bad value for restricted picklist field: gold"),
    ("AccountId", "not-an-id", "MALFORMED_ID", "Account ID: id value of incorrect type: not-an-id"),
])
def test_field_value_errors(sf: SalesforceStore, field: str, value: Any, code: str,
                            message: str) -> None:
    [record_id] = sf.insert_raw("Contact", [{"LastName": "A", field: None}])
    [result] = sf.apply("update", "Contact", [{"Id": record_id, field: value}])
    assert error_of(result) == (code, message, [field])
    assert contact(sf, record_id)[field] is None  # nothing applied


@pytest.mark.parametrize(("field", "value", "stored"), [
    ("Personalization_Engagement_Score__c", "0.5", 0.5),
    ("Personalization_Engagement_Score__c", 2, 2.0),
    ("Personalization_Engagement_Score__c", 0.123456, 0.1235),  # rounded to scale 4
    ("Personalization_First_Activity__c", "2024-03-01T10:00:00+01:00",
     "2024-03-01T09:00:00.000+0000"),
    ("Personalization_First_Activity__c", "2024-03-01T10:00:00.123456Z",
     "2024-03-01T10:00:00.123+0000"),
    ("Personalization_First_Activity__c", "2024-03-01T10:00:00-0130",
     "2024-03-01T11:30:00.000+0000"),
    ("Personalization_First_Activity__c", "2024-03-01", "2024-03-01T00:00:00.000+0000"),
    ("Personalization_First_Activity__c", 1709287200000, "2024-03-01T10:00:00.000+0000"),
    ("Email", "o'neil+tag@exämple.de", "o'neil+tag@exämple.de"),
    ("Email", "Zoë.Ünal@example.com", "Zoë.Ünal@example.com"),
    ("Email", "", None),
    ("Title", 42, "42"),
    ("Personalization_Tier__c", "Gold", "Gold"),
    ("LeadSource", "Something new", "Something new"),  # unrestricted picklist
])
def test_field_values_are_converted(sf: SalesforceStore, field: str, value: Any,
                                    stored: Any) -> None:
    [record_id] = sf.insert_raw("Contact", [{"LastName": "A", "Email": "a@b.co"}])
    [result] = sf.apply("update", "Contact", [{"Id": record_id, field: value}])
    assert result == {"success": True, "created": False, "id": record_id, "errors": []}
    assert contact(sf, record_id)[field] == stored


@pytest.mark.parametrize(("field", "value", "stored"), [
    ("NumberOfEmployees", "12", 12),
    ("NumberOfEmployees", 12.0, 12),
    ("AnnualRevenue", "1234.6", 1235.0),  # currency(18, 0)
    ("Website", "https://acme.example", "https://acme.example"),
])
def test_account_value_conversions(sf: SalesforceStore, field: str, value: Any,
                                   stored: Any) -> None:
    [record_id] = sf.insert_raw("Account", [{"Name": "Acme"}])
    [result] = sf.apply("update", "Account", [{"Id": record_id, field: value}])
    assert result["success"] is True
    [row] = sf.records("Account", fields=[field])
    assert row[field] == stored


def test_integer_and_boolean_value_errors(sf: SalesforceStore) -> None:
    [account] = sf.insert_raw("Account", [{"Name": "Acme"}])
    [fraction, too_big] = sf.apply("update", "Account", [
        {"Id": account, "NumberOfEmployees": 1.5},
        {"Id": make_id("001", 99), "NumberOfEmployees": 123456789},
    ])
    assert error_of(fraction)[0] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert error_of(too_big)[0] == "INVALID_CROSS_REFERENCE_KEY"  # the Id is checked first
    [too_big] = sf.apply("update", "Account", [{"Id": account, "NumberOfEmployees": 123456789}])
    assert error_of(too_big)[0] == "NUMBER_OUTSIDE_VALID_RANGE"
    [campaign] = sf.insert_raw("Campaign", [{"Name": "C"}])
    [yes, bad, null] = [sf.apply("update", "Campaign", [{"Id": campaign, "IsActive": v}])[0]
                        for v in ("TRUE", "yes", None)]
    assert yes["success"] is True
    assert error_of(bad) == ("INVALID_TYPE_ON_FIELD_IN_RECORD",
                             "IsActive: value not of required type: yes", ["IsActive"])
    assert null["success"] is True
    assert sf.records("Campaign", fields=["IsActive"]) == [{"IsActive": False}]


def test_null_clears_a_field_but_not_a_required_one(sf: SalesforceStore) -> None:
    [record_id] = sf.insert_raw("Contact", [{"LastName": "A", "Title": "CEO"}])
    [cleared] = sf.apply("update", "Contact", [{"Id": record_id, "Title": None}])
    [required] = sf.apply("update", "Contact", [{"Id": record_id, "LastName": None}])
    assert cleared["success"] is True
    assert contact(sf, record_id)["Title"] is None
    assert error_of(required) == ("REQUIRED_FIELD_MISSING",
                                  "Required fields are missing: [LastName]", ["LastName"])
    assert contact(sf, record_id)["LastName"] == "A"


def test_field_names_are_case_insensitive(sf: SalesforceStore) -> None:
    [record_id] = sf.insert_raw("Contact", [{"lastname": "A"}])
    [result] = sf.apply("update", "Contact", [{"id": record_id, "TITLE": "Boss"}])
    assert result["success"] is True
    assert contact(sf, record_id)["Title"] == "Boss"


# -- update ---------------------------------------------------------------------------------

def test_update_id_checks(sf: SalesforceStore) -> None:
    live, deleted = sf.insert_raw("Contact", [{"LastName": "A"}, {"LastName": "B",
                                                                  "IsDeleted": True}])
    [account] = sf.insert_raw("Account", [{"Name": "X"}])
    results = sf.apply("update", "Contact", [
        {"Title": "no id"},
        {"Id": "garbage", "Title": "x"},
        {"Id": account, "Title": "x"},
        {"Id": make_id("003", 999), "Title": "x"},
        {"Id": deleted, "Title": "x"},
        {"Id": live, "Title": "first"},
        {"Id": live.lower(), "Title": "second"},
    ])
    assert error_of(results[0]) == ("MISSING_ARGUMENT", "Id not specified in an update call",
                                    ["Id"])
    assert error_of(results[1]) == ("MALFORMED_ID",
                                    "Contact ID: id value of incorrect type: garbage", ["Id"])
    assert error_of(results[2])[0] == "MALFORMED_ID"
    assert error_of(results[3]) == ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                    [])
    assert error_of(results[4]) == ("ENTITY_IS_DELETED", "entity is deleted", [])
    assert error_of(results[5]) == ("DUPLICATE_VALUE", "Duplicate Id specified", [])
    assert error_of(results[6]) == ("DUPLICATE_VALUE", "Duplicate Id specified", [])
    assert contact(sf, live)["Title"] is None


def test_update_accepts_15_character_ids(sf: SalesforceStore) -> None:
    [record_id] = sf.insert_raw("Contact", [{"LastName": "A"}])
    [result] = sf.apply("update", "Contact", [{"Id": record_id[:15], "Title": "T"}])
    assert (result["success"], result["id"]) == (True, record_id)


def test_converted_leads_cannot_be_updated(sf: SalesforceStore) -> None:
    converted, open_lead = sf.insert_raw("Lead", [
        {"LastName": "A", "Company": "C", "IsConverted": True, "Status": "Closed - Converted",
         "Personalization_User_Id__c": "u-1"},
        {"LastName": "B", "Company": "C"}])
    results = sf.apply("update", "Lead", [{"Id": converted, "Title": "x"},
                                          {"Id": open_lead, "Title": "y"}])
    assert error_of(results[0]) == ("CANNOT_UPDATE_CONVERTED_LEAD",
                                    "cannot reference converted lead", [])
    assert results[1]["success"] is True
    [upserted] = sf.apply("upsert", "Lead", [{"Personalization_User_Id__c": "U-1", "Title": "z"}],
                          external_id_field="Personalization_User_Id__c")
    assert error_of(upserted)[0] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_converted_leads_stay_protected_when_is_converted_is_hidden(sf: SalesforceStore) -> None:
    [converted] = sf.insert_raw("Lead", [{"LastName": "A", "Company": "C", "IsConverted": True}])
    sf.set_field_access("Lead", "IsConverted", "hidden")
    [result] = sf.apply("update", "Lead", [{"Id": converted, "Title": "x"}])
    assert error_of(result)[0] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_update_sets_modification_stamps_strictly_increasing(sf: SalesforceStore) -> None:
    ids = sf.insert_raw("Contact", [{"LastName": "A"}, {"LastName": "B"}])
    seeded = contact(sf, ids[0])["SystemModstamp"]
    stamps = []
    for record_id in ids + ids:
        sf.apply("update", "Contact", [{"Id": record_id, "Title": "x"}])
        row = contact(sf, record_id)
        assert row["LastModifiedDate"] == row["SystemModstamp"]
        stamps.append(row["SystemModstamp"])
    assert seeded < stamps[0] < stamps[1] < stamps[2] < stamps[3]
    assert contact(sf, ids[0])["CreatedDate"] == seeded
    literal = stamps[2][:23] + "Z"  # 2024-01-01T00:00:00.000Z
    later = sf.query(" ".join(["SELECT Id FROM Contact WHERE SystemModstamp >", literal]))
    assert [row["Id"] for row in later.fetch(5)] == [ids[1]]


def test_ten_thousand_record_update_applies_every_record(sf: SalesforceStore) -> None:
    ids = sf.insert_raw("Contact", ({"LastName": f"n{i}"} for i in range(10_000)))
    results = sf.apply("update", "Contact", [
        {"Id": record_id, "Personalization_Engagement_Score__c": i / 10_000,
         "Personalization_Tier__c": "Gold"} for i, record_id in enumerate(ids)])
    assert [r["id"] for r in results] == ids
    assert all(r["success"] for r in results)
    assert sf.query("SELECT COUNT() FROM Contact WHERE Personalization_Tier__c = 'gold'"
                    ).total_size == 10_000
    [last] = sf.query("SELECT Personalization_Engagement_Score__c FROM Contact "
                      "ORDER BY Personalization_Engagement_Score__c DESC LIMIT 1").fetch(1)
    assert last["Personalization_Engagement_Score__c"] == 0.9999


# -- references and unique fields -----------------------------------------------------------

def test_reference_checks(sf: SalesforceStore) -> None:
    live, gone = sf.insert_raw("Account", [{"Name": "Live"}, {"Name": "Gone",
                                                                "IsDeleted": True}])
    [lead] = sf.insert_raw("Lead", [{"LastName": "L", "Company": "C"}])
    results = sf.apply("insert", "Contact", [
        {"LastName": "ok", "AccountId": live[:15]},
        {"LastName": "wrong type", "AccountId": lead},
        {"LastName": "missing", "AccountId": make_id("001", 12345)},
        {"LastName": "deleted", "AccountId": gone},
    ])
    assert results[0]["success"] is True
    assert contact(sf, results[0]["id"])["AccountId"] == live
    assert error_of(results[1]) == ("FIELD_INTEGRITY_EXCEPTION",
                                    f"Account ID: id value of incorrect type: {lead}",
                                    ["AccountId"])
    assert error_of(results[2]) == ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                    ["AccountId"])
    assert error_of(results[3]) == ("ENTITY_IS_DELETED", "entity is deleted", ["AccountId"])


def test_unique_external_ids_are_enforced_case_insensitively(sf: SalesforceStore) -> None:
    [holder] = sf.insert_raw("Contact", [{"LastName": "A", "Personalization_User_Id__c": "u-1"}])
    results = sf.apply("insert", "Contact", [
        {"LastName": "B", "Personalization_User_Id__c": "U-1"},
        {"LastName": "C", "Personalization_User_Id__c": "u-2"},
        {"LastName": "D", "Personalization_User_Id__c": "U-2"},
    ])
    assert error_of(results[0]) == (
        "DUPLICATE_VALUE", "duplicate value found: Personalization_User_Id__c duplicates value "
                           f"on record with id: {holder}", ["Personalization_User_Id__c"])
    assert results[1]["success"] is True
    assert error_of(results[2])[1].endswith(f"on record with id: {results[1]['id']}")
    [same] = sf.apply("update", "Contact", [{"Id": holder, "Personalization_User_Id__c": "U-1"}])
    assert same["success"] is True  # a record does not collide with itself


# -- upsert ---------------------------------------------------------------------------------

def test_upsert_creates_then_updates(sf: SalesforceStore) -> None:
    ext = "Personalization_User_Id__c"
    [created] = sf.apply("upsert", "Contact", [{ext: "u-000001", "LastName": "Ann",
                                                "Email": "ann@x.com"}], external_id_field=ext)
    assert created["created"] is True
    [updated] = sf.apply("upsert", "Contact", [{ext: "U-000001", "Title": "CTO"}],
                         external_id_field=ext.lower())
    assert (updated["success"], updated["created"], updated["id"]) == (True, False,
                                                                      created["id"])
    row = contact(sf, created["id"])
    assert (row["LastName"], row["Title"], row[ext]) == ("Ann", "CTO", "U-000001")
    assert sf.counts()["Contact"] == 1


def test_upsert_on_email_id_lookup_field(sf: SalesforceStore) -> None:
    [record_id] = sf.insert_raw("Contact", [{"LastName": "Zoë", "Email": "ZOË@x.com"}])
    [result] = sf.apply("upsert", "Contact", [{"Email": "zoë@X.com", "Title": "T"}],
                        external_id_field="Email")
    assert (result["created"], result["id"]) == (False, record_id)


def test_upsert_errors(sf: SalesforceStore) -> None:
    ext = "Personalization_User_Id__c"
    sf.insert_raw("Contact", [{"LastName": "A", ext: "dup"}, {"LastName": "B", ext: "DUP"}])
    results = sf.apply("upsert", "Contact", [
        {ext: "dup", "Title": "x"},
        {"LastName": "no key"},
        {ext: None, "LastName": "null key"},
        {ext: "twice", "LastName": "1"},
        {ext: "TWICE", "LastName": "2"},
        {ext: "new", "Title": "no last name"},
    ], external_id_field=ext)
    code, message, fields = error_of(results[0])
    assert code == "DUPLICATE_EXTERNAL_ID"
    assert message.startswith(f"{ext}: more than one record found for external id field: [003")
    assert fields == [ext]
    assert error_of(results[1]) == ("MISSING_ARGUMENT", f"{ext} not specified", [ext])
    assert error_of(results[2])[0] == "MISSING_ARGUMENT"
    assert error_of(results[3]) == ("DUPLICATE_VALUE", "Duplicate external id specified: twice",
                                    [ext])
    assert error_of(results[4])[1] == "Duplicate external id specified: TWICE"
    assert error_of(results[5])[0] == "REQUIRED_FIELD_MISSING"
    assert sf.counts()["Contact"] == 2


def test_upsert_needs_an_external_id_or_id_lookup_field(sf: SalesforceStore) -> None:
    for field in ("Title", "Nope__c", None):
        with pytest.raises(InvalidBatchError, match="is not an External ID or indexed field"):
            sf.apply("upsert", "Contact", [{"LastName": "A"}], external_id_field=field)


def test_upsert_by_id(sf: SalesforceStore) -> None:
    [record_id] = sf.insert_raw("Contact", [{"LastName": "A"}])
    results = sf.apply("upsert", "Contact", [{"Id": record_id, "Title": "T"},
                                             {"LastName": "New"}], external_id_field="Id")
    assert [(r["success"], r["created"]) for r in results] == [(True, False), (True, True)]


# -- delete ---------------------------------------------------------------------------------

def test_delete_is_soft(sf: SalesforceStore) -> None:
    keep, drop = sf.insert_raw("Contact", [{"LastName": "keep"}, {"LastName": "drop"}])
    [deleted, again_missing] = sf.apply("delete", "Contact", [{"Id": drop},
                                                              {"Id": make_id("003", 77)}])
    assert deleted == {"success": True, "created": False, "id": drop, "errors": []}
    assert error_of(again_missing)[0] == "INVALID_CROSS_REFERENCE_KEY"
    [twice] = sf.apply("delete", "Contact", [{"Id": drop}])
    assert error_of(twice)[0] == "ENTITY_IS_DELETED"
    assert [r["Id"] for r in sf.query("SELECT Id FROM Contact").fetch(5)] == [keep]
    rows = sf.query("SELECT Id, IsDeleted FROM Contact ORDER BY LastName",
                    include_deleted=True).fetch(5)
    assert rows == [{"Id": drop, "IsDeleted": True}, {"Id": keep, "IsDeleted": False}]
    assert sf.counts()["Contact"] == 1
    assert contact(sf, drop)["SystemModstamp"] > contact(sf, keep)["SystemModstamp"]


# -- lock failures --------------------------------------------------------------------------

def test_lock_row_rate_fails_a_share_and_applies_the_rest(sf: SalesforceStore) -> None:
    ids = sf.insert_raw("Contact", ({"LastName": f"n{i}"} for i in range(400)))
    results = sf.apply("update", "Contact", [{"Id": i, "Title": "done"} for i in ids],
                       lock_row_rate=0.25, rng=random.Random(7))
    locked = [r for r in results if not r["success"]]
    assert 60 <= len(locked) <= 140
    assert all(error_of(r) == ("UNABLE_TO_LOCK_ROW",
                               "unable to obtain exclusive access to this record", [])
               for r in locked)
    done = sf.query("SELECT COUNT() FROM Contact WHERE Title = 'done'").total_size
    assert done == 400 - len(locked)
    again = sf.apply("update", "Contact", [{"Id": i, "Title": "done"} for i in ids],
                     lock_row_rate=0.25, rng=random.Random(7))
    assert [r["success"] for r in again] == [r["success"] for r in results]  # seeded: repeatable


# -- seeding and admin reads ----------------------------------------------------------------

def test_insert_raw_streams_in_chunks_and_fills_system_fields(
        sf: SalesforceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "RAW_CHUNK", 7)
    given_id = make_id("003", 10 ** 6)
    rows = ({"LastName": f"n{i:02d}", "Email": f"N{i}@X.com"} for i in range(20))
    ids = sf.insert_raw("Contact", [*rows, {"Id": given_id, "LastName": "given",
                                            "CreatedDate": "2020-01-01T00:00:00Z",
                                            "Internal_Notes__c": "hidden but seedable"}])
    assert len(ids) == len(set(ids)) == 21
    assert ids[-1] == given_id
    assert sf.counts()["Contact"] == 21
    row = contact(sf, given_id)
    assert row["CreatedDate"] == "2020-01-01T00:00:00.000+0000"
    assert row["Internal_Notes__c"] == "hidden but seedable"
    assert row["IsDeleted"] is False
    assert sf.query("SELECT Id FROM Contact WHERE Email = 'n7@x.com'").fetch(1) == [
        {"Id": ids[7]}]


def test_insert_raw_checks_field_names(sf: SalesforceStore) -> None:
    with pytest.raises(InvalidBatchError, match="Field name not found : Nope"):
        sf.insert_raw("Contact", [{"LastName": "A", "Nope": 1}])
    with pytest.raises(SoqlError):
        sf.insert_raw("Nope", [{"Name": "A"}])


def test_records_admin_read(sf: SalesforceStore) -> None:
    [account] = sf.insert_raw("Account", [{"Name": "Acme"}])
    sf.insert_raw("Contact", [
        {"LastName": "A", "Internal_Notes__c": "secret", "AccountId": account},
        {"LastName": "B", "IsDeleted": True},
    ])
    rows = sf.records("Contact", fields=["LastName", "Internal_Notes__c", "IsDeleted"])
    assert rows == [{"LastName": "A", "Internal_Notes__c": "secret", "IsDeleted": False},
                    {"LastName": "B", "Internal_Notes__c": None, "IsDeleted": True}]
    assert [r["LastName"] for r in sf.records("Contact", "Account.Name = 'acme'")] == ["A"]
    assert [r["LastName"] for r in sf.records("Contact", "IsDeleted = true")] == ["B"]
    with pytest.raises(SoqlError) as caught:
        sf.records("Contact", fields=["Nope"])
    assert caught.value.code == "INVALID_FIELD"


def test_counts_and_reset(sf: SalesforceStore) -> None:
    sf.insert_raw("Account", [{"Name": "A"}])
    sf.insert_raw("Contact", [{"LastName": "A"}, {"LastName": "B", "IsDeleted": True}])
    assert sf.counts() == {"Account": 1, "Contact": 1, "Lead": 0, "Campaign": 0,
                           "CampaignMember": 0}
    sf.reset()
    assert sf.counts() == dict.fromkeys(sf.counts(), 0)
    assert sf.query("SELECT COUNT() FROM Contact", include_deleted=True).total_size == 0
