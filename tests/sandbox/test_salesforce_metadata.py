"""Salesforce sandbox metadata deploys: checked like `sf project deploy start`, all-or-nothing.

Packages are written here by hand (not by the plugin's generator) so the emulator is tested
on its own terms: structure per the Metadata API WSDL, component rules, org checks, field
creation, permission set assignment, and the admin route.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from emulators.salesforce import metadata
from emulators.salesforce.app import create_app
from emulators.salesforce.metadata import (
    DeployFailed,
    deploy,
    files_from_folder,
    files_from_zip,
    read_package,
)
from emulators.salesforce.store import SalesforceStore
from flask.testing import FlaskClient

NS = "http://soap.sforce.com/2006/04/metadata"
SOURCE = "force-app/main/default"


def xml(root: str, body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">\n{body}\n</{root}>\n'


def text_field(name: str, length: int = 80, extra: str = "") -> str:
    return xml("CustomField", f"<fullName>{name}</fullName>{extra}<label>{name[:-3]}</label>"
                              f"<length>{length}</length><required>false</required>"
                              "<type>Text</type>")


def field_perm(field: str, editable: bool = True, readable: bool = True) -> str:
    return (f"<fieldPermissions><editable>{str(editable).lower()}</editable><field>{field}"
            f"</field><readable>{str(readable).lower()}</readable></fieldPermissions>")


def object_perm(sobject: str, *, read: bool = True, edit: bool = True,
                create: bool = False) -> str:
    return ("<objectPermissions>"
            f"<allowCreate>{str(create).lower()}</allowCreate><allowDelete>false</allowDelete>"
            f"<allowEdit>{str(edit).lower()}</allowEdit><allowRead>{str(read).lower()}</allowRead>"
            f"<modifyAllRecords>false</modifyAllRecords><object>{sobject}</object>"
            "<viewAllRecords>false</viewAllRecords></objectPermissions>")


def permission_set(*entries: str, label: str = "Sync") -> str:
    fields = [entry for entry in entries if entry.startswith("<fieldPermissions>")]
    objects = [entry for entry in entries if entry.startswith("<objectPermissions>")]
    others = [entry for entry in entries if entry not in fields and entry not in objects]
    return xml("PermissionSet", "".join([*fields, f"<label>{label}</label>", *objects,
                                         *others]))


def package(fields: dict[str, str] | None = None, sets: dict[str, str] | None = None,
            *, version: str = "59.0", manifest_extra: str = "") -> dict[str, bytes]:
    """A source-format package as {relative path: bytes}; members named from the files."""
    fields = fields or {}
    sets = sets or {}
    types = ""
    if fields:
        types += "<types>" + "".join(f"<members>{name}</members>" for name in fields) + \
            "<name>CustomField</name></types>"
    if sets:
        types += "<types>" + "".join(f"<members>{name}</members>" for name in sets) + \
            "<name>PermissionSet</name></types>"
    files = {
        "package.xml": xml("Package", f"{types}{manifest_extra}<version>{version}</version>"),
        "sfdx-project.json": json.dumps({"packageDirectories": [{"path": "force-app"}]}),
    }
    for name, body in fields.items():
        sobject, field = name.split(".")
        files[f"{SOURCE}/objects/{sobject}/fields/{field}.field-meta.xml"] = body
    for name, body in sets.items():
        files[f"{SOURCE}/permissionsets/{name}.permissionset-meta.xml"] = body
    return {path: (data.encode() if isinstance(data, str) else data)
            for path, data in files.items()}


@pytest.fixture
def store(tmp_path: Path) -> SalesforceStore:
    return SalesforceStore(tmp_path / "salesforce.db")


def describe(store: SalesforceStore, sobject: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in store.describe(sobject)["fields"]}


def failures(caught: pytest.ExceptionInfo[DeployFailed]) -> list[tuple[str, int, int, str]]:
    return [(f.file_name, f.line, f.column, f.problem) for f in caught.value.failures]


# -- applying -----------------------------------------------------------------------------------


def test_new_field_is_hidden_until_the_permission_set_is_assigned(store: SalesforceStore) -> None:
    files = package({"Contact.Propensity__c": text_field("Propensity__c", 40)},
                    {"Sync": permission_set(field_perm("Contact.Propensity__c"),
                                            object_perm("Contact"))})
    result = deploy(store, read_package(files), assign=False)
    assert result["status"] == "Succeeded"
    assert result["numberComponentsDeployed"] == 2
    [created, permset] = result["details"]["componentSuccesses"]
    assert (created["fullName"], created["created"]) == ("Contact.Propensity__c", True)
    assert permset["fullName"] == "Sync"
    assert "Propensity__c" not in describe(store, "Contact")  # exists, but nobody may see it
    assert store.records("Contact", fields=["Propensity__c"]) == []  # the admin view knows it

    result = deploy(store, read_package(files))
    assert result["details"]["componentSuccesses"][0]["changed"] is False  # same definition
    assert result["permissionSetAssignments"] == [{
        "permissionSet": "Sync", "assignee": "integration user",
        "fieldsRaised": ["Contact.Propensity__c"], "objects": ["Contact"]}]
    described = describe(store, "Contact")["Propensity__c"]
    assert (described["type"], described["length"], described["updateable"],
            described["custom"]) == ("string", 40, True, True)


def test_assignment_only_ever_adds_access(store: SalesforceStore) -> None:
    store.set_field_access("Contact", "Title", "hidden")
    files = package(sets={"Reader": permission_set(
        field_perm("Contact.Title", editable=False),          # hidden -> read
        field_perm("Contact.Department", editable=False),     # edit stays edit
        field_perm("Contact.Legacy_Score__c"),                # read (org default) -> edit
        object_perm("Contact", edit=False))})
    result = deploy(store, read_package(files))
    assert result["permissionSetAssignments"][0]["fieldsRaised"] == [
        "Contact.Title", "Contact.Legacy_Score__c"]
    fields = describe(store, "Contact")
    assert (fields["Title"]["updateable"], fields["Department"]["updateable"],
            fields["Legacy_Score__c"]["updateable"]) == (False, True, True)


def test_every_emulated_type_becomes_the_matching_describe_type(store: SalesforceStore) -> None:
    def field(name: str, body: str) -> str:
        return xml("CustomField", f"<fullName>{name}</fullName>{body}")

    fields = {
        "Account.Score__c": field("Score__c", "<externalId>false</externalId><label>Score"
                                  "</label><precision>18</precision><required>false</required>"
                                  "<scale>4</scale><type>Number</type><unique>false</unique>"),
        "Account.Seen__c": field("Seen__c", "<label>Seen</label><type>DateTime</type>"),
        "Account.Day__c": field("Day__c", "<label>Day</label><type>Date</type>"),
        "Account.Opt__c": field("Opt__c", "<defaultValue>true</defaultValue><label>Opt</label>"
                                "<type>Checkbox</type>"),
        "Account.Bio__c": field("Bio__c", "<label>Bio</label><length>32768</length>"
                                "<type>LongTextArea</type><visibleLines>3</visibleLines>"),
        "Account.Mail__c": field("Mail__c", "<externalId>true</externalId><label>Mail</label>"
                                 "<type>Email</type><unique>true</unique>"),
        "Account.Site__c": field("Site__c", "<label>Site</label><type>Url</type>"),
        "Account.Tier__c": field("Tier__c", "<label>Tier</label><type>Picklist</type>"
                                 "<valueSet><restricted>true</restricted><valueSetDefinition>"
                                 "<sorted>false</sorted><value><fullName>Gold</fullName>"
                                 "<default>false</default></value><value><fullName>Silver"
                                 "</fullName><default>false</default></value>"
                                 "</valueSetDefinition></valueSet>"),
    }
    sets = {"All": permission_set(*(field_perm(name) for name in fields))}
    deploy(store, read_package(package(fields, sets)))
    described = describe(store, "Account")
    shapes = {name: (d["type"], d["length"], d["precision"], d["scale"], d["externalId"],
                     d["unique"], d["updateable"])
              for name, d in described.items() if name in {n.split(".")[1] for n in fields}}
    assert shapes == {
        "Score__c": ("double", 0, 18, 4, False, False, True),
        "Seen__c": ("datetime", 0, 0, 0, False, False, True),
        "Day__c": ("date", 0, 0, 0, False, False, True),
        "Opt__c": ("boolean", 0, 0, 0, False, False, True),
        "Bio__c": ("textarea", 32768, 0, 0, False, False, True),
        "Mail__c": ("email", 80, 0, 0, True, True, True),
        "Site__c": ("url", 255, 0, 0, False, False, True),
        "Tier__c": ("picklist", 255, 0, 0, False, False, True),
    }
    assert described["Opt__c"]["defaultValue"] is True
    assert described["Mail__c"]["idLookup"] is True
    assert [v["value"] for v in described["Tier__c"]["picklistValues"]] == ["Gold", "Silver"]
    assert described["Tier__c"]["restrictedPicklist"] is True


def test_a_builtin_field_keeps_its_definition(store: SalesforceStore) -> None:
    same = xml("CustomField", "<fullName>Personalization_Segments__c</fullName><label>Segments"
               "</label><length>255</length><type>Text</type>")
    result = deploy(store, read_package(package({"Contact.Personalization_Segments__c": same})))
    assert result["details"]["componentSuccesses"][0]["changed"] is False
    other = same.replace("<length>255</length><type>Text</type>",
                         "<type>DateTime</type>")
    with pytest.raises(DeployFailed) as caught:
        deploy(store, read_package(package({"Contact.Personalization_Segments__c": other})))
    [(_, _, _, problem)] = failures(caught)
    assert problem.startswith("Contact.Personalization_Segments__c exists as string")


def test_a_deployed_field_can_be_redefined_and_reset_removes_it(store: SalesforceStore) -> None:
    deploy(store, read_package(package({"Lead.Code__c": text_field("Code__c", 10)},
                                       {"S": permission_set(field_perm("Lead.Code__c"))})))
    result = deploy(store, read_package(package({"Lead.Code__c": text_field("Code__c", 30)})))
    assert result["details"]["componentSuccesses"][0]["changed"] is True
    assert describe(store, "Lead")["Code__c"]["length"] == 30
    store.reset()
    assert "Code__c" not in describe(store, "Lead")


def test_check_only_validates_and_changes_nothing(store: SalesforceStore) -> None:
    files = package({"Contact.New__c": text_field("New__c")},
                    {"S": permission_set(field_perm("Contact.New__c"))})
    result = deploy(store, read_package(files), check_only=True)
    assert (result["status"], result["checkOnly"]) == ("Succeeded", True)
    assert result["permissionSetAssignments"] == []
    with pytest.raises(Exception, match="No such column 'New__c'"):
        store.records("Contact", fields=["New__c"])


# -- refusing -----------------------------------------------------------------------------------


def test_structure_is_checked_against_the_wsdl_with_positions(store: SalesforceStore) -> None:
    bad = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<CustomField xmlns="{NS}">\n'
           "    <label>Bad</label>\n"
           "    <fullName>Bad__c</fullName>\n"
           "    <lenght>10</lenght>\n"
           "    <required>yes</required>\n"
           "    <type>String</type>\n"
           "</CustomField>\n")
    files = package({"Contact.Bad__c": bad, "Contact.Good__c": text_field("Good__c")})
    with pytest.raises(DeployFailed) as caught:
        read_package(files)
    path = f"{SOURCE}/objects/Contact/fields/Bad__c.field-meta.xml"
    assert failures(caught) == [
        (path, 4, 5, f"Element {{{NS}}}fullName invalid at this location in type CustomField"),
        (path, 5, 5, f"Element {{{NS}}}lenght invalid at this location in type CustomField"),
        (path, 6, 5, "'yes' is not a valid value for the type xsd:boolean"),
        (path, 7, 5, "'String' is not a valid value for the enum 'FieldType'"),
    ]
    assert caught.value.result()["status"] == "Failed"
    assert caught.value.result()["numberComponentErrors"] == 4
    assert "Good__c" not in describe(store, "Contact")  # nothing of a failed deploy is applied


def test_malformed_xml_and_dtds_are_refused() -> None:
    files = package({"Contact.A__c": "<CustomField><label>x</CustomField>",
                     "Contact.B__c": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "v">]>'
                                     f'<CustomField xmlns="{NS}"><label>&e;</label>'
                                     "</CustomField>"})
    with pytest.raises(DeployFailed) as caught:
        read_package(files)
    problems = [problem for *_, problem in failures(caught)]
    assert problems[0] == "Error parsing file: mismatched tag"
    assert "DTDs and entities are not allowed" in problems[1]


@pytest.mark.parametrize(("body", "problem"), [
    ("<label>X</label><type>Text</type>", "Must specify 'length' for a CustomField of type Text"),
    ("<label>X</label><length>10</length><type>DateTime</type>",
     "Can not specify 'length' for a CustomField of type DateTime"),
    ("<label>X</label><length>300</length><type>Text</type>",
     "Length of a Text field must be 1 to 255, got 300"),
    ("<label>X</label><type>Checkbox</type>",
     "Must specify 'defaultValue' for a CustomField of type Checkbox"),
    ("<label>X</label><precision>5</precision><scale>6</scale><type>Number</type>",
     "The sum of the length and decimal places must be an integer less than or equal to 18"),
    ("<externalId>true</externalId><label>X</label><type>Date</type>",
     "externalId applies to Text, Number and Email fields, not Date"),
    ("<label>X</label><referenceTo>Account</referenceTo><type>Lookup</type>",
     "the sandbox does not emulate referenceTo on custom fields"),
    ("<label>X</label><type>Html</type>", "the sandbox does not emulate fields of type Html"),
    ("<type>Date</type>", "Must specify a non-empty label for the CustomField"),
    ("<label>X</label>", "Must specify the type of the CustomField"),
])
def test_field_rules(body: str, problem: str) -> None:
    files = package({"Contact.X__c": xml("CustomField", body)})
    with pytest.raises(DeployFailed) as caught:
        read_package(files)
    assert any(found.startswith(problem) for *_, found in failures(caught)), failures(caught)


def test_full_name_must_match_the_file() -> None:
    with pytest.raises(DeployFailed, match="fullName Other__c does not match the file name X__c"):
        read_package(package({"Contact.X__c": text_field("Other__c")}))


def test_manifest_problems_are_named(tmp_path: Path) -> None:
    files = package({"Contact.Gone__c": text_field("Gone__c")}, version="19.0",
                    manifest_extra="")
    del files[f"{SOURCE}/objects/Contact/fields/Gone__c.field-meta.xml"]
    files["package.xml"] = files["package.xml"].replace(
        b"<version>", b"<types><members>*</members><name>ApexClass</name></types><version>")
    with pytest.raises(DeployFailed) as caught:
        read_package(files)
    assert [problem for *_, problem in failures(caught)] == [
        "version '19.0' is not an API version this org supports (20.0-62.0)",
        "the sandbox deploys CustomField and PermissionSet components only, not 'ApexClass'",
        "An object 'Contact.Gone__c' of type CustomField was named in package.xml, but was "
        "not found in the package directories (force-app)",
    ]
    del files["sfdx-project.json"]
    with pytest.raises(DeployFailed, match=r"sfdx-project\.json not found next to package\.xml"):
        read_package(files)
    with pytest.raises(DeployFailed, match=r"No package\.xml found"):
        read_package({"README.md": b""})


def test_permission_set_rules(store: SalesforceStore) -> None:
    user_permission = ("<userPermissions><enabled>true</enabled><name>ModifyAllData</name>"
                       "</userPermissions>")
    files = package(sets={"Too_Much": permission_set(
        field_perm("Contact.Email", editable=True, readable=False),
        object_perm("Contact", read=False, edit=True),
        user_permission)})
    with pytest.raises(DeployFailed) as caught:
        read_package(files)
    assert [problem for *_, problem in failures(caught)] == [
        "the sandbox emulates field and object permissions only; userPermissions is not "
        "emulated",
        "Field Contact.Email: editable requires readable",
        "Permission Edit on Contact depends on permission(s): Read",
    ]


def test_permission_set_is_checked_against_the_org(store: SalesforceStore) -> None:
    files = package(sets={"Wrong": permission_set(
        field_perm("Contact.LastName"), field_perm("Contact.CreatedDate", editable=False),
        field_perm("Contact.Nope__c"), field_perm("Lead.IsConverted"),
        object_perm("Widget__c", edit=False))})
    with pytest.raises(DeployFailed) as caught:
        deploy(store, read_package(files))
    assert [problem for *_, problem in failures(caught)] == [
        "In field: object - no CustomObject named Widget__c found",
        "You cannot deploy to a required field: Contact.LastName",
        "You cannot deploy to a system field: Contact.CreatedDate",
        "In field: field - no CustomField named Contact.Nope__c found",
        "Field Lead.IsConverted is read-only and cannot be editable",
    ]
    assert describe(store, "Contact")["LastName"]["updateable"] is True


def test_zip_entries_outside_the_package_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil/package.xml", "<Package/>")
    with pytest.raises(ValueError, match="points outside the package"):
        files_from_zip(buffer.getvalue())


# -- the admin route ----------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    app = create_app(tmp_path / "data")
    if metadata.blueprint.name not in app.blueprints:  # until app.py registers it itself
        app.register_blueprint(metadata.blueprint)
    return app.test_client()


def zipped(files: dict[str, bytes], folder: str = "salesforce-metadata") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(f"{folder}/{path}", data)
    return buffer.getvalue()


def test_route_deploys_a_zip_and_assigns(client: FlaskClient) -> None:
    files = package({"Contact.Z__c": text_field("Z__c")},
                    {"S": permission_set(field_perm("Contact.Z__c"))})
    answer = client.post("/__admin/metadata/deploy", data=zipped(files),
                         content_type="application/zip")
    assert answer.status_code == 200
    assert answer.json["status"] == "Succeeded"
    assert answer.json["permissionSetAssignments"][0]["fieldsRaised"] == ["Contact.Z__c"]


def test_route_deploys_a_folder_and_reports_failures(client: FlaskClient, tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    files = package({"Contact.Y__c": xml("CustomField", "<label>Y</label><type>Text</type>")})
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    assert files_from_folder(folder) == files
    answer = client.post("/__admin/metadata/deploy", json={"path": str(folder)})
    assert answer.status_code == 400
    assert answer.json["status"] == "Failed"
    [failure] = answer.json["details"]["componentFailures"]
    assert (failure["componentType"], failure["fullName"], failure["problem"]) == (
        "CustomField", "Contact.Y__c", "Must specify 'length' for a CustomField of type Text")


@pytest.mark.parametrize(("body", "error"), [
    ({}, 'deploy needs {"path": "<package folder or .zip>"}'),
    ({"path": "/no/such/folder"}, "/no/such/folder is not a folder"),
    ({"path": "/no/such/folder", "assign": "maybe"}, "assign must be true or false, got 'maybe'"),
])
def test_route_refuses_bad_requests(client: FlaskClient, body: dict[str, Any], error: str) -> None:
    answer = client.post("/__admin/metadata/deploy", json=body)
    assert answer.status_code == 400
    assert answer.json["error"].startswith(error)


def test_route_check_only_by_query_parameter(client: FlaskClient) -> None:
    files = package({"Contact.Q__c": text_field("Q__c")})
    answer = client.post("/__admin/metadata/deploy?check_only=true", data=zipped(files),
                         content_type="application/zip")
    assert (answer.status_code, answer.json["checkOnly"]) == (200, True)
    answer = client.post("/__admin/metadata/deploy", data=b"not a zip",
                         content_type="application/zip")
    assert (answer.status_code, answer.json["error"]) == (400, "the body is not a zip file")
