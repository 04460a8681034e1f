"""target-personalization, mapping step: one decision per CRM record and mapped object."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pytest
from crm_sync_mapping import load_reverse_mapping
from tap_personalization.target.changes import (
    DEFAULT_IDENTITY_ATTRIBUTES,
    AccountChange,
    RecordMapper,
    Refusal,
    SegmentChange,
    Skip,
    UserChange,
    identity_lookups,
    mapping_problems,
    plain,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = ROOT / "transforms" / "crm-to-personalization.yml"


@pytest.fixture(scope="module")
def mapper() -> RecordMapper:
    return RecordMapper(load_reverse_mapping(DEFAULT_MAPPING), DEFAULT_IDENTITY_ATTRIBUTES)


def write_mapping(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mapping.yml"
    path.write_text("version: 1\ndirection: crm-to-personalization\n" + body, encoding="utf-8")
    return path


def contact(**fields: Any) -> dict[str, Any]:
    record = {"Id": "003000000000001AAA", "Email": " Ada@Example.com ", "Title": "CTO",
              "Department": "R&D", "LeadSource": "Web", "IsDeleted": False}
    record.update(fields)
    return record


def only(decisions: list[Any]) -> Any:
    assert len(decisions) == 1
    return decisions[0]


def test_contact_becomes_user_change_with_identities_in_rule_order(mapper: RecordMapper) -> None:
    change = only(mapper.decide("contacts", contact()))
    assert isinstance(change, UserChange)
    assert change.sobject == "Contact"
    assert change.key == "003000000000001AAA"
    assert change.identities == (("sfcrmContactId", "003000000000001AAA"),
                                 ("emailAddress", "ada@example.com"))
    assert change.normalizers == ((), ("email",))
    assert change.values == {"crmTitle": "CTO", "crmDepartment": "R&D", "crmLeadSource": "Web"}


def test_missing_values_are_left_out_under_skip_policy(mapper: RecordMapper) -> None:
    change = only(mapper.decide("contacts", contact(Title=None, Department="   ")))
    assert change.values == {"crmLeadSource": "Web"}


def test_deleted_contact_and_converted_lead_are_skipped(mapper: RecordMapper) -> None:
    deleted = only(mapper.decide("contacts", contact(IsDeleted=True)))
    assert deleted == Skip("contacts", "Contact", "003000000000001AAA", "deleted")
    lead = {"Id": "00Q000000000001AAA", "Email": "b@example.com", "Status": "Closed - Converted",
            "IsConverted": True, "ConvertedContactId": "003000000000009AAA", "IsDeleted": False}
    assert only(mapper.decide("leads", lead)) == Skip("leads", "Lead", "00Q000000000001AAA",
                                                      "converted_lead")


def test_lead_picklist_values_and_lead_identity(mapper: RecordMapper) -> None:
    lead = {"Id": "00Q000000000002AAA", "Email": None, "Status": "Working - Contacted",
            "Rating": "Hot", "Industry": "Retail", "IsConverted": False, "IsDeleted": False}
    change = only(mapper.decide("leads", lead))
    assert change.identities == (("sfcrmLeadId", "00Q000000000002AAA"),)
    assert change.values == {"crmLeadStatus": "Working - Contacted", "crmLeadRating": "Hot",
                             "crmIndustry": "Retail"}


def test_record_without_identity_is_unmatched_with_reason(mapper: RecordMapper) -> None:
    refusal = only(mapper.decide("contacts", contact(Id=None, Email="")))
    assert isinstance(refusal, Refusal)
    assert (refusal.outcome, refusal.reason, refusal.key) == ("unmatched", "no_identity",
                                                              "(no Id)")
    assert "Id, Email" in refusal.message


def test_value_over_1024_bytes_is_rejected_naming_attribute(mapper: RecordMapper) -> None:
    refusal = only(mapper.decide("contacts", contact(Title="é" * 1024)))  # 2,048 bytes
    assert isinstance(refusal, Refusal)
    assert (refusal.outcome, refusal.reason) == ("rejected", "value_too_long")
    assert "crmTitle" in refusal.message
    assert "2048 bytes" in refusal.message
    exactly = only(mapper.decide("contacts", contact(Title="x" * 1024)))
    assert isinstance(exactly, UserChange)


def test_account_numbers_and_lowercased_id(mapper: RecordMapper) -> None:
    record = {"Id": "001000000000001AAA", "Personalization_Account_Id__c": "Example-Corp",
              "Industry": "Retail", "Type": "Customer - Direct",
              "AnnualRevenue": 5000000.5, "NumberOfEmployees": 120, "IsDeleted": False}
    change = only(mapper.decide("accounts", record))
    assert change == AccountChange("accounts", "Account", "001000000000001AAA", "example-corp",
                                   {"crmIndustry": "Retail", "crmAccountType": "Customer - Direct",
                                    "crmAnnualRevenue": 5000000.5, "crmEmployees": 120})


def test_account_id_with_spaces_is_rejected(mapper: RecordMapper) -> None:
    record = {"Id": "001000000000002AAA", "Personalization_Account_Id__c": "example corp",
              "Industry": "Retail", "IsDeleted": False}
    refusal = only(mapper.decide("accounts", record))
    assert (refusal.outcome, refusal.reason) == ("rejected", "invalid_account_id")


def test_campaign_member_nested_and_flat_names(mapper: RecordMapper) -> None:
    nested = {"Id": "00v000000000001AAA", "CampaignId": "701000000000001AAA",
              "Campaign": {"Name": "Spring Webinar 2026"}, "ContactId": "003000000000001AAA",
              "LeadId": None, "IsDeleted": False}
    flat = {"Id": "00v000000000002AAA", "CampaignId": "701000000000001AAA",
            "CampaignName": "Spring Webinar 2026", "ContactId": None,
            "LeadId": "00Q000000000001AAA", "IsDeleted": True}
    added = only(mapper.decide("campaign_members", nested))
    removed = only(mapper.decide("campaign_members", flat))
    assert added == SegmentChange("campaign_members", "00v000000000001AAA", "seg-webinar", "Add",
                                  (("sfcrmContactId", "003000000000001AAA"),))
    assert removed == SegmentChange("campaign_members", "00v000000000002AAA", "seg-webinar",
                                    "Remove", (("sfcrmLeadId", "00Q000000000001AAA"),))


def test_campaign_member_outside_mapped_campaigns_is_skipped(mapper: RecordMapper) -> None:
    record = {"Id": "00v000000000003AAA", "CampaignId": "701000000000009AAA",
              "Campaign": {"Name": "Trade Show"}, "ContactId": "003000000000001AAA",
              "IsDeleted": False}
    assert only(mapper.decide("campaign_members", record)).reason == "campaign_not_mapped"
    nobody = {"Id": "00v000000000004AAA", "CampaignId": "701000000000001AAA",
              "Campaign": {"Name": "Spring Webinar 2026"}, "IsDeleted": False}
    assert only(mapper.decide("campaign_members", nobody)).reason == "no_identity"


def test_campaign_mapped_by_id(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, """
objects:
  Contact:
    stream: contacts
    target: user
    identity: [{attribute: emailAddress, source: Email}]
    attributes: {crmTitle: {source: Title}}
segments:
  stream: campaign_members
  campaigns: [{campaign: 701000000000001AAA, segment: seg-vip}]
""")
    mapper = RecordMapper(load_reverse_mapping(path), DEFAULT_IDENTITY_ATTRIBUTES)
    record = {"Id": "00v1", "CampaignId": "701000000000001AAA", "Campaign": {"Name": "Renamed"},
              "ContactId": "003000000000001AAA", "IsDeleted": False}
    assert only(mapper.decide("campaign_members", record)).segment_id == "seg-vip"
    assert mapper.decide("unknown_stream", record) == []
    assert mapper.is_mapped("contacts")
    assert mapper.is_mapped("campaign_members")
    assert not mapper.is_mapped("meltano_test_stream")


def test_invalid_attribute_name_conversion_and_shape_problems(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, """
objects:
  Contact:
    stream: contacts
    target: user
    identity: [{attribute: emailAddress, source: Email}]
    attributes:
      crm-title: {source: Title}
  Lead:
    stream: leads
    target: user
    identity: [{attribute: emailAddress, source: Email}]
    attributes:
      crmScore: {source: Score, convert: [number]}
      crmTags: {source: Tags}
""")
    mapper = RecordMapper(load_reverse_mapping(path), DEFAULT_IDENTITY_ATTRIBUTES)
    bad_name = only(mapper.decide("contacts", {"Id": "1", "Email": "a@b.c", "Title": "CTO"}))
    assert (bad_name.reason, bad_name.outcome) == ("invalid_attribute_name", "rejected")
    assert "'crm-title'" in bad_name.message
    conversion = only(mapper.decide("leads", {"Id": "2", "Email": "a@b.c", "Score": "high"}))
    assert conversion.reason == "conversion_failed"
    assert "crmScore" in conversion.message
    listed = only(mapper.decide("leads", {"Id": "3", "Email": "a@b.c", "Tags": ["a", "b"]}))
    assert listed.reason == "invalid_value"
    assert "crmTags" in listed.message


def test_clear_policy_keeps_none_for_the_delivery_to_decide(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, """
defaults: {null_policy: clear}
objects:
  Contact:
    stream: contacts
    target: user
    identity: [{attribute: emailAddress, source: Email}]
    attributes: {crmTitle: {source: Title}}
""")
    mapper = RecordMapper(load_reverse_mapping(path), DEFAULT_IDENTITY_ATTRIBUTES)
    change = only(mapper.decide("contacts", {"Id": "1", "Email": "a@b.c", "Title": None}))
    assert change.values == {"crmTitle": None}


def test_identity_lookups_cover_rules_and_campaign_member_ids() -> None:
    mapping = load_reverse_mapping(DEFAULT_MAPPING)
    assert identity_lookups(mapping, DEFAULT_IDENTITY_ATTRIBUTES) == [
        ("sfcrmContactId", ()), ("emailAddress", ("email",)), ("sfcrmLeadId", ())]


def test_mapping_problems_name_unknown_identity_attribute(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, """
objects:
  Contact:
    stream: contacts
    target: user
    identity: [{attribute: crmId, source: Id}]
    attributes: {crmTitle: {source: Title}}
""")
    problems = mapping_problems(load_reverse_mapping(path), DEFAULT_IDENTITY_ATTRIBUTES)
    assert len(problems) == 1
    assert "'crmId'" in problems[0]
    assert "identity_attributes" in problems[0]
    assert mapping_problems(load_reverse_mapping(path), ("crmId",)) == []
    assert mapping_problems(load_reverse_mapping(DEFAULT_MAPPING),
                            DEFAULT_IDENTITY_ATTRIBUTES) == []


def test_plain_undoes_sdk_parsing() -> None:
    parsed = {"a": decimal.Decimal("5000000"), "b": decimal.Decimal("0.25"),
              "c": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "d": [decimal.Decimal("1")]}
    assert plain(parsed) == {"a": 5000000, "b": 0.25, "c": "2026-01-02T03:04:05+00:00",
                             "d": [1]}
