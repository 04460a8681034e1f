"""The two default mapping files load and turn sample records into the expected values."""

from __future__ import annotations

from pathlib import Path

import pytest
from crm_sync_mapping import (
    ForwardMapping,
    ReverseMapping,
    load_forward_mapping,
    load_mapping,
    load_reverse_mapping,
)

TRANSFORMS = Path(__file__).resolve().parents[2] / "transforms"
FORWARD = TRANSFORMS / "personalization-to-crm.yml"
REVERSE = TRANSFORMS / "crm-to-personalization.yml"
VALID = Path(__file__).resolve().parents[1] / "fixtures" / "mappings" / "valid"

USER = {
    "id": "u-1001", "emailAddress": " Ada@Example.com ", "displayName": "Ada Lovelace",
    "accountId": "example-corp", "accountName": "Example Corp.",
    "engagementScore": 0.4234567, "firstActivity": "2023-11-14T22:13:20Z",
    "lastActivity": "2024-11-24T12:00:00.000000+00:00",
    "segmentMembership": [
        {"id": "seg-vip", "name": "VIP", "joined": 1731000000000},
        {"id": "seg-newsletter", "name": "Newsletter", "joined": 1731000000000},
    ],
    "attributes": {"industry": "Retail", "plan": "gold", "visits30d": 12},
}
CONTACT_VALUES = {
    "Personalization_User_Id__c": "u-1001",
    "Personalization_Engagement_Score__c": 0.4235,
    "Personalization_First_Activity__c": "2023-11-14T22:13:20.000Z",
    "Personalization_Last_Activity__c": "2024-11-24T12:00:00.000Z",
    "Personalization_Segments__c": "VIP;Newsletter",
    "Personalization_Tier__c": "Gold",
}


@pytest.fixture(scope="module")
def forward() -> ForwardMapping:
    return load_forward_mapping(FORWARD)


@pytest.fixture(scope="module")
def reverse() -> ReverseMapping:
    return load_reverse_mapping(REVERSE)


def test_load_mapping_picks_the_direction() -> None:
    assert isinstance(load_mapping(FORWARD), ForwardMapping)
    assert isinstance(load_mapping(str(REVERSE)), ReverseMapping)


def test_forward_objects_and_stream_routing(forward: ForwardMapping) -> None:
    assert [obj.sobject for obj in forward.objects] == ["Contact", "Lead", "Account"]
    assert [obj.sobject for obj in forward.for_stream("users")] == ["Contact"]  # Lead is off
    assert [obj.sobject for obj in forward.for_stream("accounts")] == ["Account"]
    assert forward.for_stream("events") == ()
    assert forward.streams() == {"users", "accounts"}
    assert forward.path == FORWARD


def test_contact_defaults_are_the_native_behaviour(forward: ForwardMapping) -> None:
    contact = forward.object("Contact")
    assert (contact.stream, contact.key, contact.enabled) == ("users", "id", True)
    assert (contact.write.mode, contact.write.external_id) == ("update", None)
    assert contact.ambiguity == "reject"
    assert [(rule.field, rule.enabled) for rule in contact.match] == [
        ("Personalization_User_Id__c", False), ("Email", True),
    ]
    assert [rule.field for rule in contact.enabled_match()] == ["Email"]
    assert all(field.null_policy == "skip" for field in contact.fields)


def test_contact_values_from_a_user_with_map_attributes(forward: ForwardMapping) -> None:
    contact = forward.object("Contact")
    assert contact.map_record(USER) == (CONTACT_VALUES, [])
    assert contact.record_key(USER) == "u-1001"
    email = contact.match[1]
    assert email.key(USER) == "ada@example.com"
    assert email.normalize_crm("ADA@example.COM") == "ada@example.com"


def test_list_shaped_attributes_give_the_same_values(forward: ForwardMapping) -> None:
    listed = dict(USER, attributes=[
        {"name": "industry", "value": "Retail", "updated": 1731000000000},
        {"name": "plan", "value": "gold", "updated": 1731000000000},
    ])
    assert forward.object("Contact").map_record(listed) == (CONTACT_VALUES, [])


def test_missing_values_are_not_sent(forward: ForwardMapping) -> None:
    sparse = {"id": "u-2", "emailAddress": "b@example.com", "attributes": {"plan": "platinum"}}
    values, problems = forward.object("Contact").map_record(sparse)
    # null policy skip: nothing for missing score/activity/segments; unknown plan → null → skip
    assert values == {"Personalization_User_Id__c": "u-2"}
    assert problems == []


def test_no_segments_writes_an_empty_list_as_empty_text(forward: ForwardMapping) -> None:
    user = dict(USER, segmentMembership=[])
    values, _ = forward.object("Contact").map_record(user)
    assert values["Personalization_Segments__c"] == ""


def test_segments_are_cut_to_the_field_length(forward: ForwardMapping) -> None:
    many = [{"id": f"s{n}", "name": f"Segment number {n:03d}"} for n in range(40)]
    values, _ = forward.object("Contact").map_record(dict(USER, segmentMembership=many))
    assert len(values["Personalization_Segments__c"]) == 255
    assert values["Personalization_Segments__c"].startswith("Segment number 000;Segment")


def test_a_bad_value_is_reported_not_written(forward: ForwardMapping) -> None:
    user = dict(USER, lastActivity="yesterday", engagementScore="high")
    values, problems = forward.object("Contact").map_record(user)
    assert "Personalization_Last_Activity__c" not in values
    assert "Personalization_Engagement_Score__c" not in values
    assert values["Personalization_Tier__c"] == "Gold"
    assert problems == [
        "Personalization_Engagement_Score__c: round needs a number, got text 'high'; add "
        "'number' before it (source engagementScore)",
        "Personalization_Last_Activity__c: 'yesterday' is not an ISO 8601 date or datetime "
        "(source lastActivity)",
    ]


def test_lead_is_off_and_follows_contacts(forward: ForwardMapping) -> None:
    lead = forward.object("Lead")
    assert lead.enabled is False
    assert lead.only_unmatched_by == "Contact"
    assert lead.exclude_converted is True
    assert lead.map_record(USER) == (CONTACT_VALUES, [])
    assert "IsConverted" in lead.crm_fields()


def test_account_match_rules_and_values(forward: ForwardMapping) -> None:
    account = forward.object("Account")
    record = {
        "id": "example-corp", "name": "Example Corp.", "domain": "example.com",
        "engagementScore": 0.7, "lastActivity": "2024-11-24T12:00:00Z",
        "segmentMembership": [{"id": "seg-vip", "name": "VIP"}], "attributes": {},
    }
    assert account.map_record(record) == ({
        "Personalization_Account_Id__c": "example-corp",
        "Personalization_Engagement_Score__c": 0.7,
        "Personalization_Last_Activity__c": "2024-11-24T12:00:00.000Z",
        "Personalization_Segments__c": "VIP",
    }, [])
    rules = account.match
    assert [rule.key(record) for rule in rules] == [
        "example-corp", "Example Corp.", "example", "example",
    ]
    assert rules[2].normalize_crm("EXAMPLE CORPORATION") == "example"
    fuzzy = rules[3].fuzzy
    assert fuzzy is not None
    assert rules[3].enabled is False
    assert (fuzzy.min_score, fuzzy.tie_breaker_source, fuzzy.tie_breaker_field) == (
        92.0, "domain", "Website",
    )
    assert account.crm_fields() == {
        "Personalization_Account_Id__c", "Personalization_Engagement_Score__c",
        "Personalization_Last_Activity__c", "Personalization_Segments__c", "Name", "Website",
    }


def test_contact_crm_fields(forward: ForwardMapping) -> None:
    assert forward.object("Contact").crm_fields() == {*CONTACT_VALUES, "Email"}


def test_unknown_object_names_the_known_ones(forward: ForwardMapping) -> None:
    with pytest.raises(KeyError, match="the file maps Contact, Lead, Account"):
        forward.object("Opportunity")


def test_reverse_objects(reverse: ReverseMapping) -> None:
    assert [obj.sobject for obj in reverse.objects] == ["Contact", "Lead", "Account"]
    assert [obj.sobject for obj in reverse.for_stream("leads")] == ["Lead"]
    assert reverse.object("Opportunity") is None
    contact = reverse.object("Contact")
    assert contact is not None
    assert contact.crm_fields() == {"Id", "Email", "Title", "Department", "LeadSource"}
    record = {"Id": "003000000000001AAA", "Email": "Ada@Example.com ", "Title": "CTO",
              "Department": None, "LeadSource": "Web"}
    assert contact.identities(record) == [
        ("sfcrmContactId", "003000000000001AAA"), ("emailAddress", "ada@example.com"),
    ]
    assert contact.map_record(record) == ({"crmTitle": "CTO", "crmLeadSource": "Web"}, [])


def test_reverse_lead_and_account(reverse: ReverseMapping) -> None:
    lead = reverse.object("Lead")
    assert lead is not None
    assert (lead.skip_converted, lead.target) == (True, "user")
    assert lead.crm_fields() == {"Id", "Email", "Status", "Rating", "Industry", "IsConverted"}
    account = reverse.object("Account")
    assert account is not None
    assert account.target == "account"
    record = {"Id": "001000000000001AAA", "Personalization_Account_Id__c": "Example-Corp",
              "Industry": "Retail", "Type": "Customer - Direct", "AnnualRevenue": 5000000.0,
              "NumberOfEmployees": 120}
    assert account.identities(record) == [("accountId", "example-corp")]
    assert account.map_record(record) == ({
        "crmIndustry": "Retail", "crmAccountType": "Customer - Direct",
        "crmAnnualRevenue": 5000000.0, "crmEmployees": 120,
    }, [])
    assert account.identities({"Id": "001", "Personalization_Account_Id__c": None}) == []


def test_reverse_segments(reverse: ReverseMapping) -> None:
    segments = reverse.segments
    assert segments is not None
    assert segments.stream == "campaign_members"
    assert segments.campaigns == (("Spring Webinar 2026", "seg-webinar"),)
    assert segments.segment_for("701000000000001AAA", "Spring Webinar 2026") == "seg-webinar"
    assert segments.segment_for("701000000000001AAA", "Autumn Gala") is None


def test_upsert_with_create_defaults_and_clear_policy() -> None:
    mapping = load_forward_mapping(VALID / "upsert_contacts.yml")
    contact = mapping.object("Contact")
    assert (contact.write.mode, contact.write.external_id) == (
        "upsert", "Personalization_User_Id__c",
    )
    assert contact.match == ()
    user = {"id": "u-9", "displayName": "  Grace Hopper ", "lastSeen": "2024-11-24T13:00:00+01:00",
            "attributes": {"plan": "GOLD"}}
    assert contact.map_record(user) == ({
        "Personalization_User_Id__c": "u-9",
        "Personalization_Last_Activity__c": "2024-11-24T12:00:00.000Z",
        "Personalization_Tier__c": "Gold",
    }, [])
    assert contact.create_values(user) == ({"LastName": "Grace Hopper", "LeadSource": "Web"}, [])
    assert contact.create_values({"id": "u-10"}) == (
        {"LastName": "[not provided]", "LeadSource": "Web"}, [],
    )
    # null policy clear (file default): a missing value empties the CRM field ...
    values, problems = contact.map_record({"id": "u-10", "attributes": {"plan": "bronze"}})
    assert values == {"Personalization_User_Id__c": "u-10",
                      "Personalization_Last_Activity__c": None}
    # ... except where the field says skip; a value_map without default reports the value
    assert problems == [
        "Personalization_Tier__c: value 'bronze' is not in value_map ('gold', 'silver') and "
        "no default (source attributes.plan)",
    ]
    assert {"LastName", "LeadSource", "Personalization_User_Id__c"} <= contact.crm_fields()


def test_yaml_anchors_and_merge_keys_share_definitions() -> None:
    mapping = load_forward_mapping(VALID / "shared_with_anchors.yml")
    contact, lead = mapping.object("Contact"), mapping.object("Lead")
    assert (lead.stream, lead.exclude_converted, lead.only_unmatched_by) == (
        "users", True, "Contact",
    )
    assert lead.match == contact.match
    assert {field.target for field in lead.fields} == {
        "Personalization_User_Id__c", "Personalization_Tier__c", "Personalization_Segments__c",
    }
    values, problems = lead.map_record(USER)
    assert values == {"Personalization_User_Id__c": "u-1001", "Personalization_Tier__c": "Gold",
                      "Personalization_Segments__c": "VIP;Newsletter"}
    assert problems == []
