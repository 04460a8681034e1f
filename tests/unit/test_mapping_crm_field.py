"""`crm_field:` declarations: the default files declare every custom field; the model is complete.

Broken declarations (with their file:line:column) are fixtures under
tests/fixtures/mappings/broken/ (crm_field_problems.yml, reverse_crm_field.yml), checked by
test_mapping_errors.py like every other broken file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crm_sync_mapping import (
    CrmField,
    MappingError,
    check_text,
    load_forward_mapping,
    load_reverse_mapping,
    locate,
)
from crm_sync_mapping.build import build_forward

TRANSFORMS = Path(__file__).resolve().parents[2] / "transforms"
FORWARD = TRANSFORMS / "personalization-to-crm.yml"
REVERSE = TRANSFORMS / "crm-to-personalization.yml"


def forward_text(fields: str, *, write: str = "{mode: update}") -> str:
    return f"""version: 1
direction: personalization-to-crm
objects:
  Contact:
    stream: users
    write: {write}
    match: [{{field: Email, source: emailAddress}}]
    fields:
{fields}
"""


def problems(text: str) -> list[str]:
    return [problem.message for problem in check_text(text, "m.yml").problems]


def test_every_custom_field_of_the_default_forward_file_is_declared() -> None:
    mapping = load_forward_mapping(FORWARD)
    custom = [(obj, name) for obj in mapping.objects for name in sorted(obj.crm_fields())
              if name.endswith("__c")]
    assert len(custom) == 16  # Contact 6 + Lead 6 + Account 4
    undeclared = [f"{obj.sobject}.{name}" for obj, name in custom if obj.crm_field(name) is None]
    assert undeclared == []


def test_default_definitions_match_the_documented_crm_catalog() -> None:
    contact = load_forward_mapping(FORWARD).object("Contact")
    assert contact.crm_field("Personalization_User_Id__c") == CrmField(
        type="Text", label="Personalization User ID",
        description="Id of the user in Marketing Cloud Personalization (written by the sync).",
        length=120, external_id=True, unique=True,
    )
    score = contact.crm_field("personalization_engagement_score__c")  # names ignore case
    assert score is not None
    assert (score.type, score.precision, score.scale) == ("Number", 18, 4)
    tier = contact.crm_field("Personalization_Tier__c")
    assert tier is not None
    assert (tier.type, tier.values, tier.restricted) == ("Picklist", ("Gold", "Silver", "Bronze"),
                                                         True)
    assert contact.crm_field("Email") is None


def test_lead_shares_contact_definitions_through_yaml_aliases() -> None:
    mapping = load_forward_mapping(FORWARD)
    contact, lead = mapping.object("Contact"), mapping.object("Lead")
    for field in contact.fields:
        assert lead.crm_field(field.target) == contact.crm_field(field.target)


def test_reverse_file_declares_the_custom_field_it_reads() -> None:
    account = load_reverse_mapping(REVERSE).object("Account")
    assert account is not None
    declared = account.crm_field("Personalization_Account_Id__c")
    forward = load_forward_mapping(FORWARD).object("Account")
    assert declared == forward.crm_field("Personalization_Account_Id__c")


def test_picklist_values_come_from_the_value_map_in_order_with_a_written_default() -> None:
    text = forward_text("""      Tier__c:
        source: plan
        convert: [{value_map: {g: Gold, s: Silver, x: Gold}, default: Other}]
        crm_field: {type: Picklist, restricted: false}""")
    document = check_text(text, "m.yml")
    assert document.problems == []
    tier = build_forward(Path("m.yml"), document.data).object("Contact").crm_field("Tier__c")
    assert tier is not None
    assert tier.values == ("Gold", "Silver", "Other")
    assert tier.restricted is False


def test_label_defaults_to_the_api_name() -> None:
    document = check_text(forward_text(
        "      Last_Seen__c: {source: seen, crm_field: {type: Date}}"), "m.yml")
    field = build_forward(Path("m.yml"), document.data).object("Contact").crm_field("Last_Seen__c")
    assert field is not None
    assert field.label == "Last Seen"


@pytest.mark.parametrize(("name", "ok"), [
    ("Score__c", True), ("A__c", True), ("Bad__Name__c", False), ("Trailing___c", False),
    ("X" * 41 + "__c", False),
])
def test_custom_field_names_follow_salesforce_rules(name: str, ok: bool) -> None:
    found = problems(forward_text(f"      {name}: {{source: x, crm_field: {{type: Date}}}}"))
    assert (found == []) is ok, found


def test_upsert_external_id_cannot_be_declared_a_non_external_field() -> None:
    found = problems(forward_text(
        "      Ext__c: {source: id, crm_field: {type: Text, length: 40, external_id: false}}",
        write="{mode: upsert, external_id: Ext__c}"))
    assert found == [
        "objects.Contact.fields.Ext__c.crm_field.external_id: this field is write.external_id, "
        "so it is an External ID field: remove 'external_id: false'"
    ]


def test_checkbox_and_long_text_keys() -> None:
    assert problems(forward_text(
        "      Opt__c: {source: optIn, crm_field: {type: Checkbox, default_value: true}}\n"
        "      Bio__c: {source: bio, crm_field: {type: LongTextArea, length: 32768,"
        " visible_lines: 5}}")) == []
    found = problems(forward_text(
        "      Bio__c: {source: bio, crm_field: {type: LongTextArea, length: 100,"
        " default_value: true}}"))
    assert found == [
        "objects.Contact.fields.Bio__c.crm_field.default_value: does not apply to type "
        "LongTextArea (only to Checkbox)",
        "objects.Contact.fields.Bio__c.crm_field.length: a LongTextArea field holds 256 to "
        "131072 characters, got 100",
    ]


def test_unknown_crm_field_key_is_named_with_a_suggestion() -> None:
    found = problems(forward_text(
        "      Score__c: {source: s, crm_field: {type: Number, precison: 18}}"))
    assert "unknown key 'precison' under objects.Contact.fields.Score__c.crm_field " \
           "(did you mean 'precision'?)" in found


def test_locate_points_at_the_key_and_falls_back_to_the_parent() -> None:
    where = locate(FORWARD, ("objects", "Account", "fields", "Personalization_Account_Id__c"))
    line = FORWARD.read_text(encoding="utf-8").splitlines()[where.line - 1]
    assert line.strip() == "Personalization_Account_Id__c:"
    assert str(where).startswith(f"{FORWARD}:{where.line}:7")
    parent = locate(FORWARD, ("objects", "Account", "no-such-key"))
    assert FORWARD.read_text(encoding="utf-8").splitlines()[parent.line - 1].strip() == "Account:"


def test_a_mapping_without_crm_field_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.yml"
    path.write_text(forward_text("      Score__c: {source: s}"))
    obj = load_forward_mapping(path).object("Contact")
    assert obj.crm_field("Score__c") is None


def test_reverse_conversions_do_not_constrain_the_field_type(tmp_path: Path) -> None:
    path = tmp_path / "r.yml"
    path.write_text("""version: 1
direction: crm-to-personalization
objects:
  Contact:
    stream: contacts
    target: user
    identity: [{attribute: emailAddress, source: Email}]
    attributes:
      crmScore: {source: Score__c, convert: [string], crm_field: {type: Number, precision: 9}}
""")
    contact = load_reverse_mapping(path).object("Contact")
    assert contact is not None
    declared = contact.crm_field("Score__c")
    assert declared is not None
    assert (declared.type, declared.label) == ("Number", "Score")
    path.write_text(path.read_text().replace("precision: 9", "length: 9"))
    with pytest.raises(MappingError, match="length: does not apply to type Number"):
        load_reverse_mapping(path)
