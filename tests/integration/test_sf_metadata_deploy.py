"""The generated metadata package closes the gaps preflight finds, and nothing more is needed.

In a sandbox org where mapped fields are missing, hidden or read-only for the integration
user, describe (through the connector's own client, over TLS) shows the gaps and preflight
names each one. After the package `salesforce-crm-metadata` writes is deployed and its
permission set assigned, preflight passes and the target writes the fields.

The deploy is applied to the running sandbox's store (its SQLite database, which the server
reads on every call) with `emulators.salesforce.metadata`; once the app registers that
module's blueprint, `POST /__admin/metadata/deploy {"path": ...}` does the same over HTTP.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from crm_sync_mapping import load_forward_mapping
from emulators import defaults
from target_salesforce_crm.client import SalesforceClient
from target_salesforce_crm.metadata import main as generate
from target_salesforce_crm.target.preflight import PERMISSION_SET, PreflightError, check_objects
from target_salesforce_crm.target.target import TargetSalesforceCRM

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FORWARD = REPO / "transforms" / "personalization-to-crm.yml"
REVERSE = REPO / "transforms" / "crm-to-personalization.yml"
PROPENSITY = """
      Personalization_Propensity__c:
        source: propensity
        convert: [number]
        crm_field: {type: Number, precision: 5, scale: 2, label: Personalization Propensity}
"""


def connection(sf: Any) -> dict[str, Any]:
    return {"auth_url": sf.url, "ca_bundle": sf.ca_bundle,
            "client_id": defaults.SF_CLIENT_ID, "client_secret": defaults.SF_CLIENT_SECRET}


def preflight(sf: Any, mapping: Path) -> list[str]:
    """What the target's preflight reports for the enabled objects (describe, fresh session)."""
    objects = [obj for obj in load_forward_mapping(mapping).objects if obj.enabled]
    with SalesforceClient(connection(sf)) as client:
        describes = {obj.sobject: client.describe(obj.sobject) for obj in objects}
    try:
        check_objects(describes, objects)
    except PreflightError as error:
        return error.problems
    return []


def visible(sf: Any, sobject: str) -> dict[str, dict[str, Any]]:
    with SalesforceClient(connection(sf)) as client:
        return {item["name"]: item for item in client.describe(sobject)["fields"]}


def package_for(tmp_path: Path, mapping: Path) -> Path:
    out = tmp_path / "salesforce-metadata"
    assert generate(["--mapping", str(mapping), "--reverse-mapping", str(REVERSE),
                     "--out", str(out)]) == 0
    return out


def deploy_package(sf: Any, folder: Path, *, assign: bool = True) -> dict[str, Any]:
    """Deploy through the running sandbox's metadata route, as an admin's `sf` CLI would."""
    result: dict[str, Any] = sf.admin("POST", "metadata/deploy",
                                      json={"path": str(folder), "assign": assign})
    return result


def with_propensity(tmp_path: Path) -> Path:
    text = FORWARD.read_text(encoding="utf-8")
    anchor = "        crm_field: &tier_field\n"
    contact_fields_end = text.index("\n\n  Lead:")
    assert text.index(anchor) < contact_fields_end
    path = tmp_path / "personalization-to-crm.yml"
    path.write_text(text[:contact_fields_end] + PROPENSITY.rstrip("\n")
                    + text[contact_fields_end:], encoding="utf-8")
    return path


def run_target(sf: Any, tmp_path: Path, mapping: Path, users: list[dict[str, Any]]) -> None:
    schema = {"type": "object", "properties": {
        "id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
        "propensity": {"type": ["number", "null"]},
        "attributes": {"type": ["object", "null"]}}}
    messages = [{"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": ["id"]}]
    messages += [{"type": "RECORD", "stream": "users", "record": user} for user in users]
    config = {**connection(sf), "mapping_file": str(mapping), "output_dir": str(tmp_path / "o"),
              "poll_initial": 0.05, "poll_max": 0.2, "retry_backoff": 0.05}
    target = TargetSalesforceCRM(config=config)
    target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))


def test_default_package_closes_hidden_and_read_only_gaps(sf: Any, tmp_path: Path) -> None:
    sf.admin("POST", "field-access", json={"object": "Contact", "field":
                                           "Personalization_Tier__c", "access": "hidden"})
    sf.admin("POST", "field-access", json={"object": "Contact", "field":
                                           "Personalization_Segments__c", "access": "read"})
    sf.admin("POST", "field-access", json={"object": "Account", "field":
                                           "Personalization_Account_Id__c", "access": "hidden"})
    sf.admin("POST", "field-access", json={"object": "Contact", "field": "Title",
                                           "access": "hidden"})
    sf.clear_ledger()

    assert sorted(preflight(sf, FORWARD)) == sorted([
        "Account.Personalization_Account_Id__c is missing or hidden from the integration user: "
        "create it or grant Read on Account.Personalization_Account_Id__c (field-level "
        f"security) to {PERMISSION_SET}",
        "Account.Personalization_Account_Id__c is missing or hidden from the integration user: "
        "create it or grant Read and Edit on Account.Personalization_Account_Id__c "
        f"(field-level security) to {PERMISSION_SET}",
        f"grant Edit on Contact.Personalization_Segments__c to {PERMISSION_SET}",
        "Contact.Personalization_Tier__c is missing or hidden from the integration user: "
        "create it or grant Read and Edit on Contact.Personalization_Tier__c (field-level "
        f"security) to {PERMISSION_SET}",
    ])
    assert "Title" not in visible(sf, "Contact")  # the tap's reverse mapping reads it

    result = deploy_package(sf, package_for(tmp_path, FORWARD))
    assert result["status"] == "Succeeded"
    assert result["numberComponentsDeployed"] == 11  # 10 custom fields + the permission set
    assert sorted(result["permissionSetAssignments"][0]["fieldsRaised"]) == [
        "Account.Personalization_Account_Id__c", "Contact.Personalization_Segments__c",
        "Contact.Personalization_Tier__c", "Contact.Title"]

    assert preflight(sf, FORWARD) == []
    contact = visible(sf, "Contact")
    assert contact["Personalization_Tier__c"]["updateable"] is True
    assert contact["Title"]["updateable"] is False  # Read only: the tap reads it, nobody writes
    assert "Internal_Notes__c" not in contact       # not in the mappings: still hidden
    ledger = sf.ledger()
    assert ledger["by_kind"]["describe"] == 6  # 2 per preflight, 2 more for the checks above
    assert set(ledger["by_kind"]) == {"oauth", "describe"}


def test_a_missing_field_is_created_and_becomes_writable(sf: Any, tmp_path: Path) -> None:
    mapping = with_propensity(tmp_path)
    assert preflight(sf, mapping) == [
        "Contact.Personalization_Propensity__c is missing or hidden from the integration user: "
        "create it or grant Read and Edit on Contact.Personalization_Propensity__c "
        f"(field-level security) to {PERMISSION_SET}",
    ]
    package = package_for(tmp_path, mapping)
    field_file = (package / "force-app" / "main" / "default" / "objects" / "Contact" / "fields"
                  / "Personalization_Propensity__c.field-meta.xml")
    assert b"<precision>5</precision>" in field_file.read_bytes()

    created = deploy_package(sf, package, assign=False)  # deployed, permission set unassigned
    [field] = [c for c in created["details"]["componentSuccesses"]
               if c["fullName"] == "Contact.Personalization_Propensity__c"]
    assert field["created"] is True
    assert sf.admin("GET", "records/Contact?fields=Personalization_Propensity__c") == []
    assert len(preflight(sf, mapping)) == 1  # exists, but hidden like any new field

    deploy_package(sf, package)  # `sf org assign permset` for the integration user
    assert preflight(sf, mapping) == []
    described = visible(sf, "Contact")["Personalization_Propensity__c"]
    assert (described["type"], described["precision"], described["scale"],
            described["updateable"]) == ("double", 5, 2, True)

    [contact_id] = sf.admin("POST", "records/Contact", json=[
        {"LastName": "Lovelace", "Email": "ada@example.com"}])
    run_target(sf, tmp_path, mapping, [
        {"id": "u-1", "emailAddress": "ada@example.com", "propensity": 0.73,
         "attributes": {"plan": "gold"}}])
    [row] = sf.admin("GET", f"records/Contact?where=Id = '{contact_id}'"
                            "&fields=Personalization_Propensity__c,Personalization_Tier__c")
    assert row == {"Personalization_Propensity__c": 0.73, "Personalization_Tier__c": "Gold"}
