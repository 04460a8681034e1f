"""Demo data: deterministic, categories that add up, and the matching problems it promises."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from emulators.demo_data import generate
from emulators.personalization.store import DB_FILE, PersonalizationStore
from emulators.salesforce.store import SalesforceStore
from rapidfuzz import fuzz

SYSTEM_FIELDS = {"CreatedDate", "LastModifiedDate", "SystemModstamp"}
LEGAL_WORDS = {"inc", "incorporated", "corp", "corporation", "llc", "l", "c", "ltd", "limited",
               "co", "company"}


def _normalise(name: str) -> str:
    words = re.sub(r"[^\w\s]", " ", name.casefold()).split()
    return " ".join(word for word in words if word not in LEGAL_WORDS)


def _stores(data_dir: Path) -> tuple[PersonalizationStore, SalesforceStore]:
    return (PersonalizationStore(data_dir / "personalization" / DB_FILE),
            SalesforceStore(data_dir / "salesforce" / "salesforce.db"))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    data_dir = tmp_path_factory.mktemp("demo")
    return data_dir, generate(data_dir, users=2000, seed=7)


@pytest.fixture(scope="module")
def data(seeded: tuple[Path, dict[str, int]]) -> dict[str, Any]:
    pzn, crm = _stores(seeded[0])
    return {
        "users": list(pzn.iter_users()), "accounts": list(pzn.iter_accounts()),
        "segments": pzn.segments(),
        **{sobject: crm.records(sobject) for sobject in
           ("Account", "Contact", "Lead", "Campaign", "CampaignMember")},
        "crm": crm,
    }


def _snapshot(data_dir: Path) -> dict[str, Any]:
    pzn, crm = _stores(data_dir)
    return {
        "users": list(pzn.iter_users()), "accounts": list(pzn.iter_accounts()),
        **{sobject: [{k: v for k, v in row.items() if k not in SYSTEM_FIELDS}
                     for row in crm.records(sobject)]
           for sobject in ("Account", "Contact", "Lead", "Campaign", "CampaignMember")},
    }


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", users=300, seed=3)
    second = generate(tmp_path / "b", users=300, seed=3)
    other = generate(tmp_path / "c", users=300, seed=4)
    assert first == second
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")
    assert _snapshot(tmp_path / "a")["users"] != _snapshot(tmp_path / "c")["users"]
    assert other["users"] == 300


def test_generate_replaces_previous_data(tmp_path: Path) -> None:
    generate(tmp_path, users=300, seed=1)
    counts = generate(tmp_path, users=40, seed=2)
    pzn, crm = _stores(tmp_path)
    assert pzn.counts()["users"] == counts["users"] == 40
    assert crm.counts()["Contact"] == counts["Contact"]
    assert generate(tmp_path, users=0, seed=2)["Contact"] == 0


def test_counts_match_the_stores_and_categories_add_up(
        seeded: tuple[Path, dict[str, int]], data: dict[str, Any]) -> None:
    counts = seeded[1]
    assert counts["users"] == len(data["users"]) == 2000
    assert counts["accounts"] == len(data["accounts"])
    for sobject in ("Account", "Contact", "Lead", "Campaign", "CampaignMember"):
        assert counts[sobject] == len(data[sobject]), sobject
    users = [counts[f"users_{c}"] for c in
             ("contact_only", "contact_and_lead", "converted_lead", "lead_only", "no_crm_match")]
    assert sum(users) == counts["users"]
    assert counts["Contact"] == (counts["users_contact_only"] + counts["users_contact_and_lead"]
                                 + counts["users_converted_lead"] + counts["contacts_crm_only"])
    assert counts["Lead"] == (counts["users_contact_and_lead"] + counts["users_converted_lead"]
                              + counts["users_lead_only"])
    accounts = [counts[f"accounts_{c}"] for c in
                ("exact_name", "name_variant", "fuzzy_name", "ambiguous", "no_crm_match")]
    assert sum(accounts) == counts["accounts"]
    assert counts["Account"] == (counts["accounts_exact_name"] + counts["accounts_name_variant"]
                                 + counts["accounts_fuzzy_name"]
                                 + 2 * counts["accounts_ambiguous"])
    assert 0.55 <= (counts["Contact"] - counts["contacts_crm_only"]) / 2000 <= 0.65
    assert 0.20 <= counts["users_no_crm_match"] / 2000 <= 0.30
    assert 6 <= 2000 / counts["accounts"] <= 10


def test_user_emails_match_crm_records_case_insensitively_or_not_at_all(
        seeded: tuple[Path, dict[str, int]], data: dict[str, Any]) -> None:
    by_folded = {user["email"].casefold(): user for user in data["users"]}
    assert len(by_folded) == 2000  # unique per user
    differs = 0
    for contact in data["Contact"]:
        user = by_folded.get(contact["Email"].casefold())
        if user is None:
            assert ".crm" in contact["Email"]  # a CRM-only colleague
            continue
        differs += contact["Email"] != user["email"]
    assert differs == seeded[1]["contacts_email_case_differs"] > 0
    crm_emails = {row["Email"].casefold() for row in (*data["Contact"], *data["Lead"])}
    unmatched = [u for u in data["users"] if u["email"].casefold() not in crm_emails]
    assert len(unmatched) == seeded[1]["users_no_crm_match"]


def test_special_character_emails_exist_in_both_systems(
        seeded: tuple[Path, dict[str, int]], data: dict[str, Any]) -> None:
    special = [u["email"] for u in data["users"]
               if "'" in u["email"] or not u["email"].isascii()]
    assert len(special) == seeded[1]["emails_special_characters"] >= 20
    assert any("'" in email for email in special)
    assert any(not email.isascii() for email in special)
    crm_emails = {row["Email"] for row in (*data["Contact"], *data["Lead"])}
    assert {email.casefold() for email in special} <= {e.casefold() for e in crm_emails}


def test_converted_leads_point_at_their_contact(
        seeded: tuple[Path, dict[str, int]], data: dict[str, Any]) -> None:
    contacts = {row["Id"]: row for row in data["Contact"]}
    converted = [row for row in data["Lead"] if row["IsConverted"]]
    assert len(converted) == seeded[1]["leads_converted"] > 0
    for lead in converted:
        assert lead["Status"] == "Closed - Converted"
        assert lead["ConvertedDate"]
        contact = contacts[lead["ConvertedContactId"]]
        assert contact["Email"] == lead["Email"]
        assert lead["ConvertedAccountId"] == contact["AccountId"]
    both = Counter(row["Email"].casefold() for row in data["Lead"] if not row["IsConverted"])
    contact_emails = {row["Email"].casefold() for row in data["Contact"]}
    assert sum(1 for email in both if email in contact_emails) == \
        seeded[1]["users_contact_and_lead"]


def test_account_names_exact_variant_fuzzy_ambiguous_and_missing(
        seeded: tuple[Path, dict[str, int]], data: dict[str, Any]) -> None:
    crm_names = [row["Name"] for row in data["Account"]]
    pzn = {row["id"]: row["name"] for row in data["accounts"]}
    assert pzn["acme-inc"] == "Acme Inc."
    assert pzn["example-corp"] == "Example Corp."
    assert {"ACME, Incorporated", "Example Corporation"} <= set(crm_names)
    exact = set(crm_names)
    by_norm = Counter(_normalise(name) for name in crm_names)
    kinds: Counter[str] = Counter()
    for name in pzn.values():
        if by_norm[_normalise(name)] == 2:
            kinds["ambiguous"] += 1
        elif name in exact:
            kinds["exact_name"] += 1
        elif by_norm[_normalise(name)] == 1:
            kinds["name_variant"] += 1
        elif any(fuzz.ratio(_normalise(name), _normalise(other)) >= 85 for other in crm_names):
            kinds["fuzzy_name"] += 1
        else:
            kinds["no_crm_match"] += 1
    counts = seeded[1]
    for kind in ("exact_name", "name_variant", "fuzzy_name", "ambiguous", "no_crm_match"):
        assert kinds[kind] == counts[f"accounts_{kind}"] >= 2, kind


def test_field_values_fit_the_crm_catalog(data: dict[str, Any]) -> None:
    crm: SalesforceStore = data["crm"]
    for sobject, fields in (("Account", ("Industry", "Type")),
                            ("Lead", ("Status", "Industry", "Rating", "LeadSource")),
                            ("Contact", ("LeadSource",)), ("Campaign", ("Type", "Status"))):
        described = {f["name"]: f for f in crm.describe(sobject)["fields"]}
        for name in fields:
            allowed = {v["value"] for v in described[name]["picklistValues"]}
            used = {row[name] for row in data[sobject]} - {None}
            assert used <= allowed, (sobject, name, used - allowed)
    assert all(row["LastName"] and row["Company"] for row in data["Lead"])


def test_campaigns_and_their_members(data: dict[str, Any]) -> None:
    campaigns = {row["Name"]: row["Id"] for row in data["Campaign"]}
    webinar = campaigns["Spring Webinar 2026"]
    members = [row for row in data["CampaignMember"] if row["CampaignId"] == webinar]
    assert any(row["ContactId"] for row in members)
    assert any(row["LeadId"] for row in members)
    assert all(bool(row["ContactId"]) != bool(row["LeadId"]) for row in data["CampaignMember"])


def test_personalization_side_shape(data: dict[str, Any]) -> None:
    segments = {row["id"]: row for row in data["segments"]}
    assert set(segments) == {"seg-vip", "seg-cart-abandoners", "seg-newsletter", "seg-webinar"}
    assert segments["seg-webinar"]["name"] == "Webinar Attendees"
    assert segments["seg-webinar"]["members"] == 0
    assert all(segments[s]["members"] > 0 for s in ("seg-vip", "seg-newsletter"))
    user = data["users"][0]
    assert user["id"] == "u-000001"
    attributes = {name: entry[0] for name, entry in json.loads(user["attributes"]).items()}
    assert attributes["plan"] in {"gold", "silver", "bronze"}
    assert isinstance(attributes["visits30d"], int)
    assert user["first_activity"] <= user["last_activity"]
    accounts = {row["id"] for row in data["accounts"]}
    assert all(u["account_id"] in accounts for u in data["users"] if u["account_id"])
    assert all(re.fullmatch(r"[a-z0-9-]+", account) for account in accounts)
