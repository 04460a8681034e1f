"""salesforce-crm-metadata: a deployable package with exactly the fields and grants the sync needs.

The files are checked against tests/fixtures/metadata/sync-metadata.xsd (the Metadata API
WSDL of Package, CustomField and PermissionSet, transcribed: element names, order,
occurrences and value types) and read back with defusedxml to assert what they grant.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from crm_sync_mapping import load_forward_mapping, load_reverse_mapping
from defusedxml import ElementTree
from lxml import etree
from target_salesforce_crm import metadata
from target_salesforce_crm.metadata import MetadataError, main, plan_metadata

REPO = Path(__file__).resolve().parents[2]
FORWARD = REPO / "transforms" / "personalization-to-crm.yml"
REVERSE = REPO / "transforms" / "crm-to-personalization.yml"
XSD = REPO / "tests" / "fixtures" / "metadata" / "sync-metadata.xsd"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
SOURCE = Path("force-app") / "main" / "default"

CONTACT_FIELDS = {
    "Personalization_User_Id__c", "Personalization_Engagement_Score__c",
    "Personalization_First_Activity__c", "Personalization_Last_Activity__c",
    "Personalization_Segments__c", "Personalization_Tier__c",
}
ACCOUNT_FIELDS = {
    "Personalization_Account_Id__c", "Personalization_Engagement_Score__c",
    "Personalization_Last_Activity__c", "Personalization_Segments__c",
}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.fromstring(XSD.read_bytes()))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("metadata") / "salesforce-metadata"
    code = main(["--mapping", str(FORWARD), "--reverse-mapping", str(REVERSE),
                 "--out", str(out)])
    assert code == 0
    return out


def xsd_errors(schema: etree.XMLSchema, path: Path) -> list[str]:
    document = etree.fromstring(path.read_bytes(), etree.XMLParser(resolve_entities=False,
                                                                   no_network=True))
    schema.validate(etree.ElementTree(document))
    return [f"{path.name}:{error.line}: {error.message}" for error in schema.error_log]


def read(path: Path) -> Any:
    return ElementTree.fromstring(path.read_bytes())


def text(element: Any, name: str) -> str:
    found = element.find(f"md:{name}", NS)
    assert found is not None, name
    return str(found.text)


def grants(out: Path, name: str = "Personalization_CRM_Sync") -> tuple[dict[str, str], dict]:
    """(field -> "edit"/"read", object -> set of allowed permissions) of the permission set."""
    root = read(out / SOURCE / "permissionsets" / f"{name}.permissionset-meta.xml")
    fields = {}
    for entry in root.findall("md:fieldPermissions", NS):
        assert text(entry, "readable") == "true"
        fields[text(entry, "field")] = "edit" if text(entry, "editable") == "true" else "read"
    objects = {}
    for entry in root.findall("md:objectPermissions", NS):
        objects[text(entry, "object")] = {
            child.tag.split("}")[1] for child in entry
            if child.tag.split("}")[1] != "object" and child.text == "true"
        }
    return fields, objects


def write_mapping(tmp_path: Path, body: str, name: str = "forward.yml") -> Path:
    path = tmp_path / name
    path.write_text("version: 1\ndirection: personalization-to-crm\nobjects:\n" + body)
    return path


# -- the default package ----------------------------------------------------------------------


def test_every_file_validates_against_the_documented_structure(
    package: Path, schema: etree.XMLSchema
) -> None:
    files = sorted(package.rglob("*.xml"))
    assert len(files) == 12  # package.xml, 10 fields, 1 permission set
    assert [error for path in files for error in xsd_errors(schema, path)] == []
    for path in files:
        assert path.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        assert read(path).tag.startswith("{http://soap.sforce.com/2006/04/metadata}")


def test_a_misordered_field_file_fails_the_xsd(schema: etree.XMLSchema, tmp_path: Path) -> None:
    bad = tmp_path / "Bad__c.field-meta.xml"
    bad.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns='
                   '"http://soap.sforce.com/2006/04/metadata"><label>x</label>'
                   "<fullName>Bad__c</fullName><type>Text</type></CustomField>")
    assert xsd_errors(schema, bad)  # the XSD is strict about order, so passing it means something


def test_manifest_names_every_custom_field_and_the_permission_set(package: Path) -> None:
    root = read(package / "package.xml")
    types = {text(entry, "name"): [m.text for m in entry.findall("md:members", NS)]
             for entry in root.findall("md:types", NS)}
    assert types == {
        "CustomField": sorted([f"Account.{name}" for name in ACCOUNT_FIELDS]
                              + [f"Contact.{name}" for name in CONTACT_FIELDS]),
        "PermissionSet": ["Personalization_CRM_Sync"],
    }
    assert text(root, "version") == "59.0"
    project = json.loads((package / "sfdx-project.json").read_text())
    assert project["packageDirectories"] == [{"path": "force-app", "default": True}]
    assert project["sourceApiVersion"] == "59.0"


def test_each_custom_field_has_its_declared_definition(package: Path) -> None:
    folder = package / SOURCE / "objects"
    found = {f"{path.parent.parent.name}.{path.name.removesuffix('.field-meta.xml')}"
             for path in folder.rglob("*.field-meta.xml")}
    assert found == {f"Contact.{n}" for n in CONTACT_FIELDS} | {f"Account.{n}"
                                                               for n in ACCOUNT_FIELDS}
    contact, account = folder / "Contact" / "fields", folder / "Account" / "fields"
    score = read(contact / "Personalization_Engagement_Score__c.field-meta.xml")
    assert [(child.tag.split("}")[1], child.text) for child in score] == [
        ("fullName", "Personalization_Engagement_Score__c"),
        ("description", "Engagement score from Marketing Cloud Personalization, four decimals."),
        ("externalId", "false"), ("label", "Personalization Engagement Score"),
        ("precision", "18"), ("required", "false"), ("scale", "4"), ("type", "Number"),
        ("unique", "false"),
    ]
    user_id = read(contact / "Personalization_User_Id__c.field-meta.xml")
    assert (text(user_id, "type"), text(user_id, "length"), text(user_id, "externalId"),
            text(user_id, "unique")) == ("Text", "120", "true", "true")
    activity = read(account / "Personalization_Last_Activity__c.field-meta.xml")
    assert text(activity, "type") == "DateTime"
    assert activity.find("md:length", NS) is None


def test_picklist_values_come_from_the_value_map(package: Path) -> None:
    tier = read(package / SOURCE / "objects" / "Contact" / "fields"
                / "Personalization_Tier__c.field-meta.xml")
    value_set = tier.find("md:valueSet", NS)
    assert text(value_set, "restricted") == "true"
    values = value_set.findall("md:valueSetDefinition/md:value", NS)
    assert [(text(v, "fullName"), text(v, "default"), text(v, "label")) for v in values] == [
        ("Gold", "false", "Gold"), ("Silver", "false", "Silver"), ("Bronze", "false", "Bronze")]


def test_permission_set_grants_exactly_what_the_mappings_use(package: Path) -> None:
    fields, objects = grants(package)
    edit = {name for name, level in fields.items() if level == "edit"}
    read_only = {name for name, level in fields.items() if level == "read"}
    assert edit == {f"Contact.{n}" for n in CONTACT_FIELDS} | {f"Account.{n}"
                                                              for n in ACCOUNT_FIELDS}
    assert read_only == {
        "Contact.Email",                                            # matched on
        "Contact.Title", "Contact.Department", "Contact.LeadSource",  # read by the tap
        "Lead.Email", "Lead.Rating", "Lead.Industry",
        "Account.Industry", "Account.Type", "Account.AnnualRevenue", "Account.NumberOfEmployees",
    }
    assert objects == {
        "Contact": {"allowRead", "allowEdit"},
        "Account": {"allowRead", "allowEdit"},
        "Lead": {"allowRead"},            # read by the tap; the forward Lead object is off
        "CampaignMember": {"allowRead"},  # segments
        "Campaign": {"allowRead"},        # Campaign.Name through the membership
    }


def test_permission_set_holds_field_and_object_permissions_only(package: Path) -> None:
    root = read(package / SOURCE / "permissionsets" / "Personalization_CRM_Sync"
                ".permissionset-meta.xml")
    assert {child.tag.split("}")[1] for child in root} == {
        "description", "fieldPermissions", "hasActivationRequired", "label", "objectPermissions"}
    assert text(root, "label") == "Personalization CRM Sync"
    assert text(root, "hasActivationRequired") == "false"


def test_required_and_system_fields_are_never_named(package: Path) -> None:
    fields, _ = grants(package)
    # Read by the tap or matched on, but visible to everyone who can read the object (a
    # deploy naming them fails with "You cannot deploy to a required field").
    for name in ("Lead.Status", "Lead.IsConverted", "Lead.ConvertedContactId", "Contact.Id",
                 "Account.Name", "CampaignMember.CampaignId", "Campaign.Name",
                 "Contact.IsDeleted", "Contact.SystemModstamp"):
        assert name not in fields


def test_readme_says_how_to_deploy_and_assign(package: Path) -> None:
    readme = (package / "README.md").read_text()
    assert "sf project deploy start --manifest package.xml" in readme
    assert "sf org assign permset --name Personalization_CRM_Sync" in readme


# -- options and other mappings ---------------------------------------------------------------


def test_include_disabled_covers_the_lead_object(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--mapping", str(FORWARD), "--out", str(out), "--include-disabled",
                 "--permission-set-name", "Sync_All", "--api-version", "60.0"]) == 0
    fields, objects = grants(out, "Sync_All")
    assert {name for name in fields if name.startswith("Lead.")} == {
        f"Lead.{n}" for n in CONTACT_FIELDS} | {"Lead.Email"}
    assert objects["Lead"] == {"allowRead", "allowEdit"}
    assert len(list((out / SOURCE / "objects" / "Lead" / "fields").iterdir())) == 6
    assert text(read(out / "package.xml"), "version") == "60.0"


def test_upsert_grants_create_and_edit_on_create_defaults(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, """  Contact:
    stream: users
    write:
      mode: upsert
      external_id: Ext_Id__c
      create_defaults:
        LastName: {source: name, default: "[not provided]"}
        LeadSource: Web
    fields:
      Ext_Id__c: {source: id, crm_field: {type: Text, length: 80}}
      Opted_In__c: {source: optIn, crm_field: {type: Checkbox, default_value: true}}
      Bio__c: {source: bio, crm_field: {type: LongTextArea, length: 32000}}
""")
    plan = plan_metadata(load_forward_mapping(mapping))
    assert plan.object_access == {"Contact": {"read", "edit", "create"}}
    assert plan.field_access == {("Contact", "Ext_Id__c"): True, ("Contact", "Opted_In__c"): True,
                                 ("Contact", "Bio__c"): True, ("Contact", "LeadSource"): True}
    ext = plan.fields["contact.ext_id__c"]
    assert ext.external_id is True  # write.external_id is always an External ID field
    checkbox = ElementTree.fromstring(metadata.custom_field_xml(plan.fields["contact.opted_in__c"]))
    assert [child.tag.split("}")[1] for child in checkbox] == [
        "fullName", "defaultValue", "label", "type"]
    assert text(checkbox, "defaultValue") == "true"
    bio = ElementTree.fromstring(metadata.custom_field_xml(plan.fields["contact.bio__c"]))
    assert (text(bio, "length"), text(bio, "visibleLines")) == ("32000", "3")


def test_enabled_fuzzy_tie_breaker_is_read_and_disabled_rules_grant_nothing(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, """  Account:
    stream: accounts
    match:
      - {field: Legacy_Key__c, source: key, enabled: false}
      - field: Name
        source: name
        fuzzy: {min_score: 90, tie_breaker: {source: domain, field: Website}}
    fields:
      Score__c: {source: score, crm_field: {type: Number, precision: 5, scale: 2}}
""")
    plan = plan_metadata(load_forward_mapping(mapping))
    assert plan.field_access == {("Account", "Website"): False, ("Account", "Score__c"): True}
    assert set(plan.fields) == {"account.score__c"}  # Legacy_Key__c: only a disabled rule


def test_a_custom_field_without_crm_field_stops_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = write_mapping(tmp_path, """  Contact:
    stream: users
    match:
      - {field: Key__c, source: id}
    fields:
      Score__c: {source: score}
      Seen__c: {source: seen, crm_field: {type: DateTime}}
""")
    out = tmp_path / "out"
    assert main(["--mapping", str(mapping), "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"{mapping}:7:9: Contact.Key__c is a custom field without crm_field: declare its type "
        "there (e.g. crm_field: {type: Text, length: 255}; see transforms/README.md) so the "
        "package can define it",
        f"{mapping}:9:7: Contact.Score__c is a custom field without crm_field: declare its "
        "type there (e.g. crm_field: {type: Text, length: 255}; see transforms/README.md) so "
        "the package can define it",
    ]
    assert not out.exists()


def test_forward_and_reverse_must_agree_on_a_definition(tmp_path: Path) -> None:
    reverse = tmp_path / "reverse.yml"
    reverse.write_text(REVERSE.read_text().replace("length: 120", "length: 100"))
    with pytest.raises(MetadataError, match=r"reverse.yml:\d+:\d+: Account.Personalization_Acco"
                                            r"unt_Id__c is declared differently"):
        plan_metadata(load_forward_mapping(FORWARD), load_reverse_mapping(reverse))


def test_reverse_relationship_paths_grant_the_lookup_and_the_parent(tmp_path: Path) -> None:
    reverse = tmp_path / "reverse.yml"
    reverse.write_text("""version: 1
direction: crm-to-personalization
objects:
  Contact:
    stream: contacts
    target: user
    identity: [{attribute: emailAddress, source: Email}]
    attributes:
      crmCompany: {source: Account.Industry}
      crmRegion: {source: Region__r.Name}
""")
    forward = write_mapping(tmp_path, """  Contact:
    stream: users
    match: [{field: Email, source: emailAddress}]
    fields: {Title: {source: title}}
""")
    plan = plan_metadata(load_forward_mapping(forward), load_reverse_mapping(reverse))
    assert plan.field_access == {("Contact", "Email"): False, ("Contact", "Title"): True,
                                 ("Contact", "AccountId"): False, ("Account", "Industry"): False,
                                 ("Contact", "Region__c"): False}
    assert plan.object_access == {"Contact": {"read", "edit"}, "Account": {"read"}}
    assert plan.fields == {}
    [note] = plan.notes
    assert "Contact reads Region__r.Name; grant Read on the object Region__r points to" in note


def test_text_is_escaped_and_control_characters_are_refused(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path, """  Contact:
    stream: users
    match: [{field: Email, source: emailAddress}]
    fields:
      Note__c:
        source: note
        crm_field: {type: Text, length: 10, description: "A < B & \\"C\\""}
""")
    plan = plan_metadata(load_forward_mapping(mapping))
    data = metadata.custom_field_xml(plan.fields["contact.note__c"])
    assert b"<description>A &lt; B &amp; \"C\"</description>" in data
    assert text(ElementTree.fromstring(data), "description") == 'A < B & "C"'
    with pytest.raises(MetadataError, match="control character"):
        metadata.render("CustomField", [("description", "bell\x07")])


# -- writing ------------------------------------------------------------------------------------


def test_regenerating_replaces_the_previous_package(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--mapping", str(FORWARD), "--out", str(out), "--include-disabled"]) == 0
    assert (out / SOURCE / "objects" / "Lead").is_dir()
    assert main(["--mapping", str(FORWARD), "--out", str(out)]) == 0
    assert not (out / SOURCE / "objects" / "Lead").exists()  # no stale component left behind
    assert [p.name for p in tmp_path.iterdir()] == ["out"]   # no staging folder left


def test_a_folder_with_other_files_is_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["--mapping", str(FORWARD), "--out", str(out)]) == 1
    assert "holds files this tool did not write (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--permission-set-name", "Bad__Name", "is not an API name"),
    ("--permission-set-name", "1st", "is not an API name"),
    ("--api-version", "v59", "must look like 59.0"),
])
def test_bad_options_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               option: str, value: str, message: str) -> None:
    assert main(["--mapping", str(FORWARD), "--out", str(tmp_path / "o"), option, value]) == 1
    assert message in capsys.readouterr().err


def test_summary_line_and_console_script(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["--mapping", str(FORWARD), "--reverse-mapping", str(REVERSE),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{out}: 10 custom fields, permission set Personalization_CRM_Sync (Edit on 10 fields, "
        "Read on 11, 5 objects), 14 files; deploy from "
        f"{out} with: sf project deploy start --manifest package.xml"
    )
    [script] = entry_points(group="console_scripts", name="salesforce-crm-metadata")
    assert script.value == "target_salesforce_crm.metadata:main"
