"""Personalization sandbox, reading out: paging, filters, both attribute shapes, lookup."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import requests
from emulators import defaults

AUTH = (defaults.PZN_API_KEY_ID, defaults.PZN_API_KEY_SECRET)
BASE = f"/api/dataset/{defaults.PZN_DATASET}"
SEGMENTS = [{"id": "seg-vip", "name": "VIP"}, {"id": "seg-newsletter", "name": "Newsletter"}]


def _user(number: int) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": f"u-{number:06d}", "emailAddress": f"user{number}@example.com",
        "displayName": f"User {number}", "accountId": "example-corp",
        "accountName": "Example Corp.", "engagementScore": round(number / 1000, 3),
        "firstActivity": 1_700_000_000_000, "lastActivity": 1_732_400_000_000 + number,
        "attributes": {"plan": "gold", "visits30d": number % 30},
        "segmentMembership": [],
        "geo": {"country": "US", "city": "Springfield"},
    }
    if number % 3 == 0:
        user["segmentMembership"].append({"id": "seg-vip", "name": "VIP", "joined": 1_731_000})
    return user


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    personalization_sandbox.reset()
    personalization_sandbox.admin("POST", "segments", json=SEGMENTS)
    personalization_sandbox.admin("POST", "users", json=[_user(n) for n in range(1, 238)])
    personalization_sandbox.admin("POST", "accounts", json=[
        {"id": f"acct-{n:03d}", "name": f"Account {n}", "domain": f"a{n}.example",
         "engagementScore": 0.5, "lastActivity": 1_732_400_000_000,
         "attributes": {"tier": "A"}} for n in range(1, 8)])
    personalization_sandbox.clear_ledger()
    return personalization_sandbox


def _get(sandbox: Any, path: str, auth: tuple[str, str] = AUTH,
         **params: Any) -> requests.Response:
    return requests.get(f"{sandbox.url}{path}", params=params, auth=auth,
                        verify=sandbox.ca_bundle, timeout=30)


def _all_pages(sandbox: Any, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    page = 0
    while True:
        answer = _get(sandbox, path, page=page, **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body, list)
        if not body:
            return items, page + 1
        items.extend(body)
        page += 1


def test_paged_export_is_complete_ordered_and_duplicate_free(sandbox: Any) -> None:
    users, calls = _all_pages(sandbox, f"{BASE}/users.json", pageSize=50)
    ids = [user["id"] for user in users]
    assert len(ids) == 237
    assert ids == sorted(set(ids))
    assert calls == 6  # five pages and the empty one that ends paging
    assert sandbox.ledger()["by_kind"] == {"users_export": 6}


def test_default_page_size_is_50_and_cap_is_5000(sandbox: Any) -> None:
    assert len(_get(sandbox, f"{BASE}/users.json").json()) == 50
    assert len(_get(sandbox, f"{BASE}/users.json", pageSize=5000).json()) == 237
    too_big = _get(sandbox, f"{BASE}/users.json", pageSize=5001)
    assert too_big.status_code == 400
    assert "pageSize" in too_big.json()["message"]


@pytest.mark.parametrize(("params", "named"), [
    ({"page": -1}, "page"), ({"page": "x"}, "page"), ({"pageSize": 0}, "pageSize"),
    ({"pagesize": 10}, "pagesize"), ({"start": 5, "end": 4}, "start"),
    ({"includeGeo": "yes"}, "includeGeo"), ({"filter": "no-such-segment"}, "no-such-segment"),
])
def test_bad_parameters_are_400_naming_the_parameter(
        sandbox: Any, params: dict[str, Any], named: str) -> None:
    answer = _get(sandbox, f"{BASE}/users.json", **params)
    assert answer.status_code == 400
    assert named in answer.json()["message"]


def test_user_object_has_the_documented_sandbox_shape(sandbox: Any) -> None:
    users = _get(sandbox, f"{BASE}/users.json", pageSize=5000, start=0,
                 end=1_900_000_000_000).json()
    user = next(u for u in users if u["id"] == "u-000003")
    assert list(user) == ["id", "emailAddress", "displayName", "accountId", "accountName",
                          "engagementScore", "firstActivity", "lastActivity",
                          "segmentMembership", "attributes"]
    assert user["emailAddress"] == "user3@example.com"
    assert user["segmentMembership"] == [{"id": "seg-vip", "name": "VIP", "joined": 1_731_000}]
    assert "geo" not in user


def test_a_share_of_users_comes_with_attributes_as_a_list(sandbox: Any) -> None:
    users = _get(sandbox, f"{BASE}/users.json", pageSize=5000).json()
    listed = [u for u in users if isinstance(u["attributes"], list)]
    mapped = [u for u in users if isinstance(u["attributes"], dict)]
    assert 20 < len(listed) < 80  # about one in five of 237
    assert len(listed) + len(mapped) == 237
    sample = listed[0]
    number = int(sample["id"][2:])
    assert sorted(sample["attributes"], key=lambda a: a["name"]) == sample["attributes"]
    values = {item["name"]: item["value"] for item in sample["attributes"]}
    assert values == {"plan": "gold", "visits30d": number % 30}
    assert all(isinstance(item["updated"], int) for item in sample["attributes"])
    again = _get(sandbox, f"{BASE}/users.json", pageSize=5000).json()
    assert [u["id"] for u in again if isinstance(u["attributes"], list)] == \
        [u["id"] for u in listed]  # deterministic


@pytest.mark.parametrize("key", ["seg-vip", "VIP"])
def test_filter_by_segment_id_or_name_returns_only_members(sandbox: Any, key: str) -> None:
    users, _ = _all_pages(sandbox, f"{BASE}/users.json", pageSize=20, filter=key)
    assert [u["id"] for u in users] == [f"u-{n:06d}" for n in range(3, 238, 3)]
    assert all(any(m["id"] == "seg-vip" for m in u["segmentMembership"]) for u in users)


def test_filter_of_an_empty_segment_is_an_empty_page(sandbox: Any) -> None:
    assert _get(sandbox, f"{BASE}/users.json", filter="Newsletter").json() == []


def test_include_geo_adds_geo(sandbox: Any) -> None:
    users = _get(sandbox, f"{BASE}/users.json", pageSize=3, includeGeo="true").json()
    assert [u["geo"] for u in users] == [{"country": "US", "city": "Springfield"}] * 3


def test_single_user_lookup_serves_engagement_object(sandbox: Any) -> None:
    user = _get(sandbox, f"{BASE}/user/u-000010").json()
    assert user["id"] == "u-000010"
    assert user["engagement"] == {"score": 0.01, "date": 1_732_400_000_010}
    assert "engagementScore" not in user
    missing = _get(sandbox, f"{BASE}/user/u-999999")
    assert missing.status_code == 404
    assert "u-999999" in missing.json()["message"]
    assert sandbox.ledger()["by_kind"] == {"user_lookup": 2}


def test_account_export_pages(sandbox: Any) -> None:
    accounts, calls = _all_pages(sandbox, f"{BASE}/accounts.json", pageSize=3)
    assert [a["id"] for a in accounts] == [f"acct-{n:03d}" for n in range(1, 8)]
    assert calls == 4
    assert accounts[0] == {"id": "acct-001", "name": "Account 1", "domain": "a1.example",
                           "engagementScore": 0.5, "lastActivity": 1_732_400_000_000,
                           "segmentMembership": [], "attributes": {"tier": "A"}}
    assert _get(sandbox, f"{BASE}/accounts.json", filter="VIP").status_code == 400
    assert sandbox.ledger()["by_kind"] == {"accounts_export": 5}


def test_users_csv_page(sandbox: Any) -> None:
    answer = _get(sandbox, f"{BASE}/users.csv", pageSize=4)
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [row["id"] for row in rows] == ["u-000001", "u-000002", "u-000003", "u-000004"]
    assert rows[2]["segments"] == "seg-vip"
    assert rows[2]["attribute:visits30d"] == "3"
    assert "attribute:emailAddress" not in rows[0]
