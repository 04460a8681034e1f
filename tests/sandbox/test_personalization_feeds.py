"""Personalization sandbox, ETL feeds: each documented rule, the 10 % rule, atomic names."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
from emulators import defaults

AUTH = (defaults.PZN_API_KEY_ID, defaults.PZN_API_KEY_SECRET)


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    personalization_sandbox.reset()
    personalization_sandbox.admin("POST", "segments", json=[
        {"id": "seg-vip", "name": "VIP"}, {"id": "seg-webinar", "name": "Webinar Attendees"}])
    personalization_sandbox.admin("POST", "accounts", json=[
        {"id": "example-corp", "name": "Example Corp.", "attributes": {}}])
    personalization_sandbox.admin("POST", "users", json=[
        {"id": f"u-{n:06d}", "emailAddress": f"User{n}@Example.com",
         "accountId": "example-corp", "accountName": "Example Corp.",
         "attributes": {"plan": "gold", "visits30d": n},
         "segmentMembership": [{"id": "seg-vip", "name": "VIP", "joined": 1}] if n == 1 else []}
        for n in range(1, 21)])
    personalization_sandbox.clear_ledger()
    return personalization_sandbox


def _inbound(sandbox: Any) -> Path:
    return Path(sandbox.data_dir) / "personalization" / "inbound"


def _drop(sandbox: Any, name: str, content: str | bytes) -> None:
    """Upload as a writer must: under a temporary name, then rename into place."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    temporary = _inbound(sandbox) / f".{name}.part"
    temporary.write_bytes(data)
    temporary.rename(_inbound(sandbox) / name)


def _result(sandbox: Any, name: str) -> dict[str, Any]:
    """Process now; the background thread may have taken the file first, so read /feeds."""
    sandbox.admin("POST", "process-inbound")
    results = sandbox.admin("GET", "feeds", params={"file": name})["feeds"]
    assert len(results) == 1, results
    result: dict[str, Any] = results[0]
    return result


def _csv(*rows: str) -> str:
    return "\r\n".join(rows) + "\r\n"


def _user(sandbox: Any, user_id: str) -> dict[str, Any]:
    user: dict[str, Any] = sandbox.admin("GET", "users", params={"id": user_id})[0]
    return user


def test_user_feed_by_user_id_applies_and_blank_cells_keep_values(sandbox: Any) -> None:
    name = "user-2026-03-01_02-00-00.csv"
    _drop(sandbox, name, _csv("userId,attribute:plan,attribute:crmTier",
                              "u-000001,silver,Gold", "u-000002,,Silver"))
    result = _result(sandbox, name)
    assert (result["status"], result["rows"], result["applied"], result["errors"]) == \
        ("processed", 2, 2, [])
    assert _user(sandbox, "u-000001")["attributes"]["plan"] == "silver"
    second = _user(sandbox, "u-000002")["attributes"]
    assert (second["plan"], second["crmTier"]) == ("gold", "Silver")
    processed = Path(sandbox.data_dir) / "personalization" / "processed"
    assert (processed / name).exists()
    assert not (_inbound(sandbox) / name).exists()
    assert json.loads((processed / f"{name}.result.json").read_text())["applied"] == 2
    assert sandbox.ledger()["calls"][-1] | {"at": None} == {
        "kind": "feed_file", "method": "FEED", "path": name, "status": 200, "at": None}


def test_number_attribute_cells_are_converted_and_checked(sandbox: Any) -> None:
    name = "user-2026-03-01_02-00-01.csv"
    rows = ["userId,attribute:visits30d", *(f"u-{n:06d},{n * 10}" for n in range(1, 20)),
            "u-000020,lots"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert (result["status"], result["applied"]) == ("processed", 19)
    assert result["errors"] == [{"row": 20, "line": 21,
                                 "reason": "attribute visits30d is a number; 'lots' is not a "
                                           "number"}]
    assert _user(sandbox, "u-000003")["attributes"]["visits30d"] == 30
    assert _user(sandbox, "u-000020")["attributes"]["visits30d"] == 20


def test_user_feed_by_identity_columns_is_case_sensitive(sandbox: Any) -> None:
    name = "user-2026-03-01_02-00-02.csv"
    rows = ["attribute:emailAddress,attribute:sfcrmContactId,attribute:crmTier",
            *(f"User{n}@Example.com,003{n:015d},Gold" for n in range(1, 20)),
            "user20@example.com,00300000000000020,Gold"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert (result["status"], result["applied"], result["error_count"]) == ("processed", 19, 1)
    assert "user20@example.com" in result["errors"][0]["reason"]
    first = _user(sandbox, "u-000001")["attributes"]
    assert (first["sfcrmContactId"], first["crmTier"]) == ("003000000000000001", "Gold")
    assert "crmTier" not in _user(sandbox, "u-000020")["attributes"]


def test_exactly_ten_percent_of_errors_still_applies_good_rows(sandbox: Any) -> None:
    name = "user-2026-03-01_02-00-03.csv"
    rows = ["userId,attribute:crmTier", *(f"u-{n:06d},Gold" for n in range(1, 10)),
            "u-999999,Gold"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert (result["status"], result["rows"], result["applied"]) == ("processed", 10, 9)
    assert result["errors"] == [{"row": 10, "line": 11, "reason": "unknown user id 'u-999999'"}]
    assert _user(sandbox, "u-000009")["attributes"]["crmTier"] == "Gold"


def test_more_than_ten_percent_of_errors_fails_the_file_and_applies_nothing(
        sandbox: Any) -> None:
    name = "user-2026-03-01_02-00-04.csv"
    rows = ["userId,attribute:crmTier", *(f"u-{n:06d},Gold" for n in range(1, 9)),
            "u-999998,Gold", "abc,Gold"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert (result["status"], result["rows"], result["applied"], result["error_count"]) == \
        ("failed", 10, 0, 2)
    assert [e["row"] for e in result["errors"]] == [9, 10]
    assert "4 to 120" in result["errors"][1]["reason"]
    assert "nothing applied" in result["message"]
    assert "crmTier" not in _user(sandbox, "u-000001")["attributes"]
    assert sandbox.ledger()["calls"][-1]["status"] == 422


def test_in_flight_names_are_ignored_until_renamed(sandbox: Any) -> None:
    inbound = _inbound(sandbox)
    final = "user-2026-03-01_02-00-05.csv"
    content = _csv("userId,attribute:crmTier", "u-000001,Gold")
    for partial in (f"{final}.tmp", f".{final}", "user-2026-03-01.csv", "notes.txt"):
        (inbound / partial).write_text(content)
    assert sandbox.admin("POST", "process-inbound") == {"processed": []}
    assert sorted(p.name for p in inbound.iterdir()) == sorted(
        [f"{final}.tmp", f".{final}", "user-2026-03-01.csv", "notes.txt"])
    (inbound / f"{final}.tmp").rename(inbound / final)
    assert _result(sandbox, final)["applied"] == 1
    assert sandbox.admin("GET", "status")["counts"]["feed_files"] == 1


def test_background_thread_processes_without_being_asked(sandbox: Any) -> None:
    name = "user-2026-03-01_02-00-06.csv"
    _drop(sandbox, name, _csv("userId,attribute:crmTier", "u-000005,Bronze"))
    deadline = time.monotonic() + 30
    while not sandbox.admin("GET", "feeds", params={"file": name})["feeds"]:
        assert time.monotonic() < deadline, "the inbound folder was not processed"
        time.sleep(0.2)
    assert _user(sandbox, "u-000005")["attributes"]["crmTier"] == "Bronze"


def test_gzip_and_zip_feeds(sandbox: Any) -> None:
    _drop(sandbox, "user-2026-03-01_03-00-00.csv.gz",
          gzip.compress(_csv("userId,attribute:crmTier", "u-000001,Gold").encode()))
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("users.csv", _csv("userId,attribute:crmTier", "u-000002,Silver"))
    _drop(sandbox, "user-2026-03-01_03-00-01.zip", packed.getvalue())
    two = io.BytesIO()
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "userId\r\n")
        archive.writestr("b.csv", "userId\r\n")
    _drop(sandbox, "user-2026-03-01_03-00-02.zip", two.getvalue())
    assert _result(sandbox, "user-2026-03-01_03-00-00.csv.gz")["applied"] == 1
    assert _result(sandbox, "user-2026-03-01_03-00-01.zip")["applied"] == 1
    refused = _result(sandbox, "user-2026-03-01_03-00-02.zip")
    assert refused["status"] == "failed"
    assert "exactly one .csv" in refused["message"]
    assert _user(sandbox, "u-000002")["attributes"]["crmTier"] == "Silver"


def test_quoted_fields_and_unicode_values(sandbox: Any) -> None:
    name = "user-2026-03-01_04-00-00.csv"
    _drop(sandbox, name, _csv('userId,attribute:note',
                              'u-000001,"Zoë, ""VIP""\nsecond line"'))
    assert _result(sandbox, name)["applied"] == 1
    assert _user(sandbox, "u-000001")["attributes"]["note"] == 'Zoë, "VIP"\nsecond line'


@pytest.mark.parametrize(("content", "reason"), [
    ("", "empty"),
    ("\ufeffuserId,attribute:plan\r\nu-000001,x\r\n", "byte-order mark"),
    ("userId,plan\r\nu-000001,x\r\n", "unknown column 'plan'"),
    ("userId,attribute:plan,attribute:plan\r\n", "duplicate column"),
    ("attribute:plan\r\ngold\r\n", "identity column"),
    ("userId," + ",".join(f"attribute:a{n}" for n in range(51)) + "\r\n", "limit is 50"),
    ("userId,attribute:bad-name\r\n", "bad-name"),
    ('userId,attribute:plan\r\nu-000001,"unterminated\r\n', "malformed CSV"),
])
def test_file_level_errors_fail_the_whole_file(sandbox: Any, content: str, reason: str) -> None:
    name = "user-2026-03-01_05-00-00.csv"
    _drop(sandbox, name, content)
    result = _result(sandbox, name)
    assert result["status"] == "failed"
    assert reason in result["message"]
    assert _user(sandbox, "u-000001")["attributes"]["plan"] == "gold"


def test_invalid_utf8_fails_the_file(sandbox: Any) -> None:
    name = "user-2026-03-01_05-00-01.csv"
    _drop(sandbox, name, b"userId,attribute:plan\r\nu-000001,caf\xe9\r\n")
    result = _result(sandbox, name)
    assert result["status"] == "failed"
    assert "UTF-8" in result["message"]


def test_row_errors_name_the_problem(sandbox: Any) -> None:
    name = "user-2026-03-01_05-00-02.csv"
    rows = ["userId,attribute:plan,attribute:note", *(f"u-{n:06d},silver," for n in range(1, 18)),
            "u-000018,silver,x,extra", "u-000019,silver," + "é" * 513, "u-000020, ,"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert result["status"] == "failed"  # 3 of 20 is over 10 %
    reasons = [e["reason"] for e in result["errors"]]
    assert "row has 4 cells, the header has 3" in reasons[0]
    assert "1026 bytes" in reasons[1]
    assert "only whitespace" in reasons[2]


def test_dataset_attribute_limit_fails_the_file(sandbox: Any) -> None:
    first = "user-2026-03-01_06-00-00.csv"
    _drop(sandbox, first, _csv("userId," + ",".join(f"attribute:f{n}" for n in range(50))))
    assert _result(sandbox, first)["status"] == "processed"
    second = "user-2026-03-01_06-00-01.csv"
    _drop(sandbox, second, _csv("userId," + ",".join(f"attribute:g{n}" for n in range(50))))
    result = _result(sandbox, second)
    assert result["status"] == "failed"
    assert "attribute limit" in result["message"]


def test_unsupported_feed_type_and_impossible_date_fail_with_reason(sandbox: Any) -> None:
    _drop(sandbox, "product-2026-03-01_00-00-00.csv", "id\r\n")
    _drop(sandbox, "user-2026-02-30_00-00-00.csv", "userId\r\n")
    assert "not supported" in _result(sandbox, "product-2026-03-01_00-00-00.csv")["message"]
    assert "not a real date" in _result(sandbox, "user-2026-02-30_00-00-00.csv")["message"]


def test_account_feed_updates_creates_and_checks_ids(sandbox: Any) -> None:
    name = "account-2026-03-01_07-00-00.csv"
    rows = ["accountId,attribute:name,attribute:crmIndustry",
            "example-corp,,Retail",
            *(f"new-{n},New {n} Ltd,Energy" for n in range(8)),
            "Bad Id,Bad,Energy"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert (result["status"], result["applied"]) == ("processed", 9)
    assert "lowercase" in result["errors"][0]["reason"]
    accounts = {a["id"]: a for a in sandbox.admin("GET", "accounts")}
    assert accounts["example-corp"]["name"] == "Example Corp."
    assert accounts["example-corp"]["attributes"] == {"crmIndustry": "Retail"}
    assert accounts["new-3"]["name"] == "New 3 Ltd"
    assert len(accounts) == 9
    rename = "account-2026-03-01_07-00-01.csv"
    _drop(sandbox, rename, _csv("accountId,attribute:name", "example-corp,Example Corporation"))
    assert _result(sandbox, rename)["applied"] == 1
    assert _user(sandbox, "u-000001")["accountName"] == "Example Corporation"
    unknown = "account-2026-03-01_07-00-02.csv"
    _drop(sandbox, unknown, _csv("accountId,attribute:crmIndustry", "ghost-inc,Retail"))
    assert "attribute:name" in _result(sandbox, unknown)["errors"][0]["reason"]


def test_segment_delta_adds_and_removes_members(sandbox: Any) -> None:
    name = "segment-delta-2026-03-01_08-00-00.csv"
    rows = ["userId,segmentId,updateType",
            *(f"u-{n:06d},seg-webinar,Add" for n in range(2, 11)), "u-000001,seg-vip,Remove"]
    _drop(sandbox, name, _csv(*rows))
    assert _result(sandbox, name)["applied"] == 10
    members = requests.get(
        f"{sandbox.url}/api/dataset/engage/users.json", auth=AUTH, verify=sandbox.ca_bundle,
        params={"filter": "Webinar Attendees", "pageSize": 100}, timeout=30).json()
    assert [u["id"] for u in members] == [f"u-{n:06d}" for n in range(2, 11)]
    assert {s["id"]: s["members"] for s in sandbox.admin("GET", "segments")} == \
        {"seg-vip": 0, "seg-webinar": 9}


def test_segment_delta_by_identity_and_its_row_errors(sandbox: Any) -> None:
    name = "segment-delta-2026-03-01_08-00-01.csv"
    rows = ["attribute:emailAddress,segmentId,updateType",
            *(f"User{n}@Example.com,seg-webinar,Add" for n in range(1, 9)),
            "User9@Example.com,seg-nope,Add", "User10@Example.com,seg-webinar,add"]
    _drop(sandbox, name, _csv(*rows))
    result = _result(sandbox, name)
    assert result["status"] == "failed"
    assert "does not exist" in result["errors"][0]["reason"]
    assert "Add or Remove" in result["errors"][1]["reason"]
    assert {s["id"]: s["members"] for s in sandbox.admin("GET", "segments")}["seg-webinar"] == 0


def test_segment_delta_needs_its_columns(sandbox: Any) -> None:
    name = "segment-delta-2026-03-01_08-00-02.csv"
    _drop(sandbox, name, _csv("userId,segmentId", "u-000001,seg-vip"))
    assert "updateType" in _result(sandbox, name)["message"]
