"""tap-personalization against the Personalization sandbox: a real server over TLS.

The tap only gets a URL and the sandbox CA; the sandbox ledger counts the calls it made.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tracemalloc
from collections import Counter
from contextlib import redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from emulators import defaults
from tap_personalization.api import PersonalizationClient
from tap_personalization.errors import PersonalizationTLSError
from tap_personalization.tap.tap import TapPersonalization

pytestmark = pytest.mark.integration

USERS = 3000
SEGMENTS = [
    {"id": "seg-vip", "name": "VIP"},
    {"id": "seg-cart-abandoners", "name": "Cart Abandoners"},
    {"id": "seg-newsletter", "name": "Newsletter"},
]


def seed_user(n: int) -> dict[str, Any]:
    memberships = []
    if n % 4 == 0:
        memberships.append({"id": "seg-vip", "name": "VIP", "joined": 1_731_000_000_000 + n})
    if n % 7 == 0:
        memberships.append(
            {"id": "seg-newsletter", "name": "Newsletter", "joined": 1_730_000_000_000}
        )
    return {
        "id": f"u-{n:06d}",
        "emailAddress": f"User{n}@Example.com",
        "displayName": f"User {n}",
        "accountId": f"acct-{n % 40:03d}",
        "accountName": f"Account {n % 40}",
        "engagementScore": round(n / USERS, 4),
        "firstActivity": 1_700_000_000_000 + n,
        "lastActivity": 1_732_400_000_000 + n * 1000,
        "segmentMembership": memberships,
        "attributes": {"plan": ["gold", "silver", "bronze"][n % 3], "visits30d": n % 30},
        "geo": {"country": "FR", "city": "Lyon"} if n % 2 else None,
    }


@pytest.fixture(scope="module")
def seeded(personalization_sandbox: Any) -> Any:
    """3,000 users in three segments (one of them empty) and 40 accounts."""
    sandbox = personalization_sandbox
    sandbox.reset()
    sandbox.admin("POST", "segments", json=SEGMENTS)
    for start in range(1, USERS + 1, 1000):
        batch = [seed_user(n) for n in range(start, min(start + 1000, USERS + 1))]
        sandbox.admin("POST", "users", json=batch)
    accounts = [
        {
            "id": f"acct-{n:03d}",
            "name": f"Account {n}",
            "domain": f"a{n}.example",
            "engagementScore": 0.5,
            "lastActivity": 1_732_400_000_000,
            "attributes": {"tier": "A"},
        }
        for n in range(40)
    ]
    sandbox.admin("POST", "accounts", json=accounts)
    return sandbox


@pytest.fixture
def sandbox(seeded: Any) -> Any:
    seeded.faults()
    seeded.clear_ledger()
    yield seeded
    seeded.faults()


def tap_config(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    config = {
        "base_url": sandbox.url,
        "dataset": defaults.PZN_DATASET,
        "api_key_id": defaults.PZN_API_KEY_ID,
        "api_key_secret": defaults.PZN_API_KEY_SECRET,
        "ca_bundle": sandbox.ca_bundle,
        "page_size": 250,
        "segments": SEGMENTS,
        "max_retries": 6,
    }
    config.update(overrides)
    return config


def run_tap(
    config: dict[str, Any], streams: set[str] | None = None
) -> tuple[dict[str, list[dict]], dict]:
    tap = TapPersonalization(config=config)
    for name, stream in tap.streams.items():
        stream.selected = streams is None or name in streams
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    records: dict[str, list[dict]] = {}
    state: dict = {}
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
        elif message["type"] == "STATE":
            state = message["value"]
    return records, state


def calls(sandbox: Any) -> Counter[tuple[str, int]]:
    return Counter((c["kind"], c["status"]) for c in sandbox.ledger()["calls"])


def epoch_ms(value: str) -> int:
    return round(datetime.fromisoformat(value).timestamp() * 1000)


def test_every_user_exported_once_with_correct_types(sandbox: Any) -> None:
    records, state = run_tap(tap_config(sandbox, include_geo=True), {"users", "accounts"})

    users = records["users"]
    assert len(users) == USERS
    assert len({u["id"] for u in users}) == USERS
    truth = {u["id"]: u for u in sandbox.admin("GET", "users")}
    assert {u["id"] for u in users} == set(truth)
    for record in users:
        expected = truth[record["id"]]
        assert epoch_ms(record["firstActivity"]) == expected["firstActivity"]
        assert epoch_ms(record["lastActivity"]) == expected["lastActivity"]
        assert record["attributes"] == expected["attributes"]  # whichever shape was served
        assert record["emailAddress"] == expected["emailAddress"]
        assert record["geo"] == expected["geo"]
        assert record["extra"] == {}
    list_shaped = [u for u in users if u["attributesUpdated"]]
    assert 0 < len(list_shaped) < USERS  # both shapes were served and parsed
    assert len(records["accounts"]) == 40
    pages = math.ceil(USERS / 250) + 1  # full pages, then the empty one
    assert calls(sandbox) == {("users_export", 200): pages, ("accounts_export", 200): 1 + 1}
    assert state["bookmarks"]["users"]["record_count"] == USERS


def test_segment_membership_matches_the_sandbox(sandbox: Any) -> None:
    records, state = run_tap(tap_config(sandbox), {"segment_members", "segments"})

    truth = {
        (m["id"], u["id"], m["joined"])
        for u in sandbox.admin("GET", "users")
        for m in u["segmentMembership"]
    }
    got = [
        (r["segment_id"], r["user_id"], epoch_ms(r["joined"])) for r in records["segment_members"]
    ]
    assert len(got) == len(set(got))
    assert set(got) == truth
    members = {s["id"]: s["members"] for s in sandbox.admin("GET", "segments")}
    counts = {s["id"]: s["member_count"] for s in records["segments"]}
    assert counts == {"seg-vip": 750, "seg-cart-abandoners": 0, "seg-newsletter": 428}
    assert counts == members
    expected_calls = sum(math.ceil(n / 250) + 1 for n in counts.values())
    assert calls(sandbox) == {("users_export", 200): expected_calls}
    partitions = state["bookmarks"]["segment_members"]["partitions"]
    assert {p["context"]["segment_id"]: p["record_count"] for p in partitions} == counts


def test_rate_limits_and_server_errors_survived_without_a_lost_page(sandbox: Any) -> None:
    sandbox.faults(rate_429=0.3, retry_after=1, rate_5xx=0.2, seed=11)

    records, _ = run_tap(tap_config(sandbox, page_size=500), {"users"})

    ids = [u["id"] for u in records["users"]]
    assert len(ids) == USERS
    assert len(set(ids)) == USERS
    seen = calls(sandbox)
    assert (
        seen[("users_export", 200)] == math.ceil(USERS / 500) + 1
    )  # each page answered exactly once
    assert seen[("users_export", 429)] > 0
    assert seen[("users_export", 503)] > 0


@pytest.mark.parametrize("page_size", [1000, 700, 5000])
def test_export_asks_for_each_page_once_then_the_empty_one(sandbox: Any, page_size: int) -> None:
    """The next page is fetched ahead while a page is written, yet never more pages than
    the data has, plus the empty page that ends the export: exactly pages + 1 calls."""
    records, state = run_tap(tap_config(sandbox, page_size=page_size), {"users"})

    pages = math.ceil(USERS / page_size)
    asked = [c["path"] for c in sandbox.ledger()["calls"]]
    assert asked == [
        f"/api/dataset/engage/users.json?page={page}&pageSize={page_size}"
        for page in range(pages + 1)
    ]
    assert calls(sandbox) == {("users_export", 200): pages + 1}
    assert [u["id"] for u in records["users"]] == [f"u-{n:06d}" for n in range(1, USERS + 1)]
    assert state["bookmarks"]["users"]["record_count"] == USERS


def test_fail_next_503s_are_retried(sandbox: Any) -> None:
    sandbox.faults(fail_next=2)

    records, _ = run_tap(tap_config(sandbox, page_size=1000), {"accounts"})

    assert len(records["accounts"]) == 40
    assert calls(sandbox) == {("accounts_export", 503): 2, ("accounts_export", 200): 2}


def run_cli(config: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    executable = Path(sys.executable).with_name("tap-personalization")
    return subprocess.run(
        [str(executable), "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )


def test_cli_connection_test_is_one_call(sandbox: Any, tmp_path: Path) -> None:
    result = run_cli(tap_config(sandbox), tmp_path, "--test")

    assert result.returncode == 0, result.stderr
    assert "Connection OK" in result.stderr
    assert calls(sandbox) == {("users_export", 200): 1}


@pytest.mark.parametrize(
    ("key_id", "secret", "words"),
    [
        ("sandbox-key-id", "wrong-secret", "did not accept the API token (HTTP 401"),
        ("sandbox-events-key-id", "sandbox-events-key-secret", "refused this API token (HTTP 403"),
        (
            "sandbox-other-dataset-key-id",
            "sandbox-other-dataset-key-secret",
            "refused this API token (HTTP 403",
        ),
    ],
)
def test_wrong_credentials_are_explained(
    sandbox: Any, tmp_path: Path, key_id: str, secret: str, words: str
) -> None:
    config = tap_config(sandbox, api_key_id=key_id, api_key_secret=secret)

    result = run_cli(config, tmp_path)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert any(words in line for line in errors), result.stderr
    assert "Traceback" not in result.stderr
    assert secret not in result.stderr
    assert '"Can access API"' in result.stderr
    assert "dataset 'engage'" in result.stderr
    assert "RECORD" not in result.stdout
    assert sum(calls(sandbox).values()) == 1  # refused once, never retried


def test_untrusted_certificate_says_to_set_ca_bundle(sandbox: Any) -> None:
    config = tap_config(sandbox)
    del config["ca_bundle"]

    with pytest.raises(PersonalizationTLSError, match="set ca_bundle"):
        run_tap(config, {"accounts"})

    assert sum(calls(sandbox).values()) == 0


def test_client_event_api_with_busy_retry(sandbox: Any) -> None:
    sandbox.faults(busy_next=1)
    event = {
        "action": "CRM Sync",
        "source": {"channel": "Server"},
        "flags": {"noCampaigns": True, "nonInteractive": True},
        "user": {"id": "u-000001", "attributes": {"crmLeadStatus": "Working"}},
    }

    with PersonalizationClient(tap_config(sandbox)) as client:
        reply = client.send_event(event)
        looked_up = client.lookup_user("u-000001")
        missing = client.lookup_user("u-999999")

    assert reply["errorCode"] == 0
    assert looked_up is not None
    assert looked_up["attributes"]["crmLeadStatus"] == "Working"
    assert missing is None
    assert calls(sandbox) == {("event", 200): 2, ("user_lookup", 200): 1, ("user_lookup", 404): 1}


class _CountingSink(io.TextIOBase):
    """Counts Singer lines without keeping them, so only the tap's own memory is measured."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def _peak_while_exporting(config: dict[str, Any], stream: str, *, trace: bool = True) -> int:
    tap = TapPersonalization(config=config)
    for name, candidate in tap.streams.items():
        candidate.selected = name == stream
    sink = _CountingSink()
    if trace:
        tracemalloc.start()
    try:
        with redirect_stdout(sink):
            tap.sync_all()
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_the_number_of_users(sandbox: Any) -> None:
    """Same pages of 100 users: 428 members of one segment vs all 3,000 users."""
    config = tap_config(sandbox, page_size=100, segments=[{"id": "seg-newsletter"}])
    for stream in ("segment_members", "users"):  # one-off costs (imports, caches) first
        _peak_while_exporting(config, stream, trace=False)
    sandbox.clear_ledger()

    small_peak = _peak_while_exporting(config, "segment_members")
    big_peak = _peak_while_exporting(config, "users")

    pages = calls(sandbox)[("users_export", 200)]
    assert pages == (math.ceil(428 / 100) + 1) + (math.ceil(USERS / 100) + 1)  # 7x the rows ...
    print(f"peak: {small_peak} bytes for 428 users, {big_peak} bytes for {USERS} users")
    assert big_peak < 2 * small_peak  # ... but about the memory of one page either way

