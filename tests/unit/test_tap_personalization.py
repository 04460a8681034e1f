"""tap-personalization against a scripted Personalization API (requests-mock).

Each test asserts on outcomes: the records and STATE the tap emits, the exact request
sequence the fake API saw, the waits between retries, and the messages operators read.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm
from click.testing import CliRunner
from singer_sdk.exceptions import ConfigValidationError
from tap_personalization.api import PersonalizationClient
from tap_personalization.errors import (
    EventRejectedError,
    PersonalizationAuthError,
    PersonalizationConfigError,
    PersonalizationRequestError,
    PersonalizationTLSError,
    PersonalizationUnavailableError,
)
from tap_personalization.retry import retry_after_seconds, wait_before_retry
from tap_personalization.settings import base_url_from_config
from tap_personalization.tap.schemas import USER_FIELDS, attribute_map, date_time, normalize_row
from tap_personalization.tap.tap import TapPersonalization

BASE = "https://acme.us-5.evergage.com"
SECRET = "s3cr3t-token-value"
USERS_URL = f"{BASE}/api/dataset/engage/users.json"
ACCOUNTS_URL = f"{BASE}/api/dataset/engage/accounts.json"
EVENT_URL = f"{BASE}/api2/authevent/engage"


def make_config(**overrides: Any) -> dict[str, Any]:
    config = {
        "account": "acme",
        "instance": "us-5",
        "dataset": "engage",
        "api_key_id": "key-id-1",
        "api_key_secret": SECRET,
        "page_size": 2,
        "max_retries": 4,
        "segments": [{"id": "seg-vip", "name": "VIP"}, {"id": "seg-news", "name": "Newsletter"}],
    }
    config.update(overrides)
    return config


def user(n: int, **extra: Any) -> dict[str, Any]:
    row = {
        "id": f"u-{n:06d}",
        "emailAddress": f"User{n}@Example.com",
        "displayName": f"User {n}",
        "accountId": "example-corp",
        "accountName": "Example Corp.",
        "engagementScore": 0.5,
        "firstActivity": 1700000000000,
        "lastActivity": 1732400000000 + n,
        "segmentMembership": [{"id": "seg-vip", "name": "VIP", "joined": 1731000000000}],
        "attributes": {"plan": "gold", "visits30d": n},
    }
    row.update(extra)
    return row


class FakeApi:
    """The export endpoints: pages of rows, and scripted failures per (export, page)."""

    def __init__(self, mocker: rm.Mocker, *, users: list[dict], accounts: list[dict] = ()):
        self.rows = {"users": users, "accounts": list(accounts)}
        self.script: dict[tuple[str, int], list[Callable[[Any], Any]]] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        for export, url in (("users", USERS_URL), ("accounts", ACCOUNTS_URL)):
            mocker.get(url, json=self._answer(export))

    def fail(self, export: str, page: int, *outcomes: Callable[[Any], Any]) -> None:
        """Answer the next requests for this page with these outcomes, then normally."""
        self.script.setdefault((export, page), []).extend(outcomes)

    def _answer(self, export: str) -> Callable[[Any, Any], Any]:
        def answer(request: Any, context: Any) -> Any:
            query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
            self.calls.append((export, query))
            page, size = int(query["page"]), int(query["pageSize"])
            queued = self.script.get((export, page))
            if queued:
                return queued.pop(0)(context)
            rows = self.rows[export]
            if segment := query.get("filter"):
                rows = [
                    r for r in rows if segment in {m["id"] for m in r.get("segmentMembership", [])}
                ]
            return rows[page * size : (page + 1) * size]

        return answer

    def pages(self, export: str = "users") -> list[int]:
        return [int(q["page"]) for e, q in self.calls if e == export]


def status(code: int, headers: dict[str, str] | None = None) -> Callable[[Any], Any]:
    def outcome(context: Any) -> Any:
        context.status_code = code
        context.headers.update(headers or {})
        return {"error": f"status {code}"}

    return outcome


def connection_error(context: Any) -> Any:
    raise requests.exceptions.ConnectionError("[Errno 104] Connection reset by peer")


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the retry logic asks for, instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    return waits


def run_tap(
    config: dict[str, Any],
    *,
    streams: Iterable[str] | None = None,
    state: dict[str, Any] | None = None,
) -> tuple[dict[str, list[dict]], list[dict]]:
    """Sync the tap; return records per stream and the STATE messages, as a target sees them."""
    tap = TapPersonalization(config=config, state=state or {})
    if streams is not None:
        for name, stream in tap.streams.items():
            stream.selected = name in set(streams)
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    records: dict[str, list[dict]] = {}
    states: list[dict] = []
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
        elif message["type"] == "STATE":
            states.append(message["value"])
    return records, states


# --- paging and parsing ------------------------------------------------------------------------


def test_users_paged_from_zero_until_the_empty_page(requests_mock: rm.Mocker) -> None:
    api = FakeApi(requests_mock, users=[user(n) for n in range(1, 6)])

    records, states = run_tap(make_config(), streams=["users"])

    assert api.pages() == [0, 1, 2, 3]  # 2 + 2 + 1 rows, then the empty page ends it
    assert all(q["pageSize"] == "2" for _, q in api.calls)
    assert [r["id"] for r in records["users"]] == [f"u-{n:06d}" for n in range(1, 6)]
    assert states[-1]["bookmarks"]["users"]["record_count"] == 5
    assert "last_complete_run" in states[-1]["bookmarks"]["users"]


def test_a_full_page_is_not_taken_as_the_last_one(requests_mock: rm.Mocker) -> None:
    api = FakeApi(requests_mock, users=[user(n) for n in range(1, 5)])

    records, _ = run_tap(make_config(), streams=["users"])

    assert api.pages() == [0, 1, 2]
    assert len(records["users"]) == 4


def test_user_fields_are_typed(requests_mock: rm.Mocker) -> None:
    FakeApi(requests_mock, users=[user(1)])

    records, _ = run_tap(make_config(), streams=["users"])

    record = records["users"][0]
    assert record["firstActivity"] == "2023-11-14T22:13:20.000+00:00"
    assert record["lastActivity"] == "2024-11-23T22:13:20.001+00:00"
    assert record["segmentMembership"] == [
        {"id": "seg-vip", "name": "VIP", "joined": "2024-11-07T17:20:00.000+00:00"}
    ]
    assert record["engagementScore"] == 0.5
    assert record["emailAddress"] == "User1@Example.com"  # case kept: matching decides
    assert record["extra"] == {}


def test_both_attribute_shapes_become_a_map(requests_mock: rm.Mocker) -> None:
    listed = [
        {"name": "plan", "value": "silver", "updated": 1731000000000},
        {"name": "visits30d", "value": 3, "updated": 1731000001000},
    ]
    FakeApi(requests_mock, users=[user(1), user(2, attributes=listed)])

    records, _ = run_tap(make_config(), streams=["users"])

    mapped, from_list = records["users"]
    assert mapped["attributes"] == {"plan": "gold", "visits30d": 1}
    assert mapped["attributesUpdated"] == {}
    assert from_list["attributes"] == {"plan": "silver", "visits30d": 3}
    assert from_list["attributesUpdated"] == {
        "plan": "2024-11-07T17:20:00.000+00:00",
        "visits30d": "2024-11-07T17:20:01.000+00:00",
    }


def test_unknown_keys_and_misfit_values_are_kept_under_extra(
    requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    odd = user(1, loyaltyTier="gold", lastActivity="yesterday", engagement={"score": 121})
    FakeApi(requests_mock, users=[odd])

    with caplog.at_level(logging.WARNING):
        records, _ = run_tap(make_config(), streams=["users"])

    record = records["users"][0]
    assert record["extra"] == {"loyaltyTier": "gold", "lastActivity": "yesterday"}
    assert record["lastActivity"] is None
    assert record["engagement"] == {"score": 121, "date": None}
    assert "lastActivity x1" in caplog.text


def test_rows_without_id_are_reported_not_silently_dropped(
    requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    nameless = user(2)
    del nameless["id"]
    FakeApi(requests_mock, users=[user(1), nameless, user(3)])

    with caplog.at_level(logging.WARNING):
        records, _ = run_tap(make_config(), streams=["users"])

    assert [r["id"] for r in records["users"]] == ["u-000001", "u-000003"]
    assert "row without id" in caplog.text
    assert "1 rows without id were left out" in caplog.text


def test_geo_and_start_are_requested_when_configured(requests_mock: rm.Mocker) -> None:
    api = FakeApi(requests_mock, users=[user(1, geo={"city": "Lyon", "countryCode": "FR"})])

    records, _ = run_tap(
        make_config(include_geo=True, start_date="2024-01-01T00:00:00Z"), streams=["users"]
    )

    assert api.calls[0][1]["includeGeo"] == "true"
    assert api.calls[0][1]["start"] == "1704067200000"
    assert records["users"][0]["geo"] == {"city": "Lyon", "countryCode": "FR"}


def test_accounts_export(requests_mock: rm.Mocker) -> None:
    account = {
        "id": "example-corp",
        "name": "Example Corp.",
        "domain": "example.com",
        "engagementScore": 0.7,
        "lastActivity": 1732400000000,
        "attributes": [{"name": "industry", "value": "Retail"}],
        "region": "EMEA",
    }
    api = FakeApi(requests_mock, users=[], accounts=[account])

    records, _ = run_tap(make_config(), streams=["accounts"])

    assert api.pages("accounts") == [0, 1]
    (record,) = records["accounts"]
    assert record["attributes"] == {"industry": "Retail"}
    assert record["lastActivity"] == "2024-11-23T22:13:20.000+00:00"
    assert record["extra"] == {"region": "EMEA"}


def test_non_array_body_is_a_clear_error(requests_mock: rm.Mocker) -> None:
    requests_mock.get(USERS_URL, json={"message": "unexpected"})

    with pytest.raises(PersonalizationRequestError, match="where the export API sends an array"):
        run_tap(make_config(), streams=["users"])


# --- retries -----------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured_and_no_page_is_lost(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    api = FakeApi(requests_mock, users=[user(n) for n in range(1, 6)])
    api.fail("users", 1, status(429, {"Retry-After": "7"}))

    records, _ = run_tap(make_config(), streams=["users"])

    assert api.pages() == [0, 1, 1, 2, 3]
    assert sleeps == [7.0]
    assert [r["id"] for r in records["users"]] == [f"u-{n:06d}" for n in range(1, 6)]


def test_5xx_retried_with_growing_jittered_waits(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    api = FakeApi(requests_mock, users=[user(n) for n in range(1, 4)])
    api.fail("users", 0, status(503), status(502), status(500))

    records, _ = run_tap(make_config(), streams=["users"])

    assert api.pages() == [0, 0, 0, 0, 1, 2]
    assert len(records["users"]) == 3
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps, start=1):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling


def test_connection_errors_retried(requests_mock: rm.Mocker, sleeps: list[float]) -> None:
    api = FakeApi(requests_mock, users=[user(n) for n in range(1, 4)])
    api.fail("users", 1, connection_error, connection_error)

    records, _ = run_tap(make_config(), streams=["users"])

    assert api.pages() == [0, 1, 1, 1, 2]
    assert len(sleeps) == 2
    assert len(records["users"]) == 3


def test_retries_end_with_a_clear_message_after_max_retries(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    api = FakeApi(requests_mock, users=[user(1)])
    api.fail("users", 0, *[status(503)] * 10)

    with pytest.raises(PersonalizationUnavailableError) as caught:
        run_tap(make_config(max_retries=3), streams=["users"])

    assert api.pages() == [0, 0, 0]
    assert len(sleeps) == 2
    message = str(caught.value)
    assert "HTTP 503" in message
    assert "after 3 attempts" in message
    assert "max_retries" in message
    assert "\n" not in message


def test_state_is_not_marked_complete_when_the_export_fails(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    api = FakeApi(requests_mock, users=[user(n) for n in range(1, 6)])
    api.fail("users", 1, *[status(500)] * 10)
    before = {"bookmarks": {"users": {"last_complete_run": "2024-01-01T00:00:00.000+00:00"}}}
    tap = TapPersonalization(config=make_config(max_retries=2), state=before)

    with redirect_stdout(io.StringIO()), pytest.raises(PersonalizationUnavailableError):
        tap.sync_all()

    assert (
        tap.state["bookmarks"]["users"]["last_complete_run"]
        == before["bookmarks"]["users"]["last_complete_run"]
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [("12", 12.0), ("0", 0.0), ("-3", 0.0), ("99999", 900.0), ("soon", None)],
)
def test_retry_after_parsing(header: str, expected: float | None) -> None:
    response = requests.Response()
    response.headers["Retry-After"] = header
    assert retry_after_seconds(response) == expected


def test_retry_after_as_http_date() -> None:
    response = requests.Response()
    response.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past
    assert retry_after_seconds(response) == 0.0
    failure = requests.exceptions.RetryError(response=response)
    assert wait_before_retry(failure, attempt=5) == 0.0


def test_backoff_is_capped() -> None:
    waits = [wait_before_retry(None, attempt) for attempt in range(1, 12)]
    assert max(waits) <= 60.0
    assert waits[-1] >= 30.0


# --- authentication and secrets ------------------------------------------------------------------


@pytest.mark.parametrize("code", [401, 403])
def test_refused_token_ends_with_an_actionable_message(
    requests_mock: rm.Mocker, sleeps: list[float], code: int
) -> None:
    api = FakeApi(requests_mock, users=[user(1)])
    api.fail("users", 0, status(code))

    with pytest.raises(PersonalizationAuthError) as caught:
        run_tap(make_config(), streams=["users"])

    assert api.pages() == [0]  # never retried
    assert sleeps == []
    message = str(caught.value)
    for words in (
        f"HTTP {code}",
        "api_key_id",
        "api_key_secret",
        '"Can access API"',
        "dataset 'engage'",
        "IP allow-list",
    ):
        assert words in message
    assert "\n" not in message


def test_secret_never_logged(
    requests_mock: rm.Mocker, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(requests_mock, users=[user(1), user(2), user(3)])
    api.fail("users", 0, status(429, {"Retry-After": "1"}), connection_error)
    api.fail("users", 1, status(401))
    encoded = base64.b64encode(f"key-id-1:{SECRET}".encode()).decode()

    with caplog.at_level(logging.DEBUG), pytest.raises(PersonalizationAuthError) as caught:
        run_tap(make_config(), streams=["users"])

    assert "Retrying GET /api/dataset/engage/users.json?page=0" in caplog.text
    sent = requests_mock.request_history[0].headers["Authorization"]
    assert sent == f"Basic {encoded}"  # the token is used ...
    for text in (caplog.text, str(caught.value)):  # ... and never shown
        assert SECRET not in text
        assert encoded not in text


def test_cli_prints_one_line_instead_of_a_trace(
    requests_mock: rm.Mocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(requests_mock, users=[user(1)])
    api.fail("users", 0, status(403))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(make_config()))

    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(TapPersonalization.cli, ["--config", str(config_file)])

    assert result.exit_code == 1
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "tap-personalization"
    ]
    assert len(errors) == 1
    assert errors[0].exc_info is None
    assert "refused this API token (HTTP 403" in errors[0].getMessage()


def test_cli_connection_test_makes_one_harmless_read(
    requests_mock: rm.Mocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(requests_mock, users=[user(1), user(2)])
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(make_config()))

    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(
            TapPersonalization.cli, ["--config", str(config_file), "--test"]
        )

    assert result.exit_code == 0
    assert api.calls == [("users", {"page": "0", "pageSize": "1"})]
    assert "Connection OK" in caplog.text


def test_cli_connection_test_explains_a_wrong_token(
    requests_mock: rm.Mocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(requests_mock, users=[user(1)])
    api.fail("users", 0, status(401))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(make_config()))

    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(
            TapPersonalization.cli, ["--config", str(config_file), "--test"]
        )

    assert result.exit_code == 1
    assert "did not accept the API token (HTTP 401" in caplog.text
    assert SECRET not in caplog.text


def test_cli_connection_test_names_a_bad_setting_without_a_traceback(
    requests_mock: rm.Mocker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(requests_mock, users=[user(1)])
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**make_config(), "page_size": "lots"}))

    with caplog.at_level(logging.ERROR):
        result = CliRunner().invoke(
            TapPersonalization.cli, ["--config", str(config_file), "--test"]
        )

    assert result.exit_code == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "'lots' is not of type 'integer', 'null' in config['page_size']",
        "Config validation failed"]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert api.calls == []


# --- settings --------------------------------------------------------------------------------


def test_base_url_from_account_and_instance() -> None:
    assert base_url_from_config({"account": "acme", "instance": "us-5"}) == BASE
    assert base_url_from_config({"account": "oldie"}) == "https://oldie.evergage.com"
    assert (
        base_url_from_config({"base_url": "https://127.0.0.1:18444/", "account": "acme"})
        == "https://127.0.0.1:18444"
    )


def test_requests_go_to_the_account_host(requests_mock: rm.Mocker) -> None:
    api = FakeApi(requests_mock, users=[user(1)])

    run_tap(make_config(), streams=["users"])

    assert requests_mock.request_history[0].url.startswith(f"{USERS_URL}?")
    assert api.pages() == [0, 1]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"account": None, "instance": None}, "Set base_url"),
        ({"base_url": "http://plain.example"}, "must start with https://"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle: file /nonexistent/ca.pem"),
        ({"segments": [{"id": "a"}, {"id": "a"}]}, "segment id a twice"),
    ],
)
def test_settings_problems_name_the_setting(overrides: dict[str, Any], words: str) -> None:
    config = {k: v for k, v in make_config(**overrides).items() if v is not None}

    with pytest.raises(ConfigValidationError) as caught:
        TapPersonalization(config=config)

    assert any(words in error for error in caught.value.errors)


def test_ca_bundle_is_the_verify_path(requests_mock: rm.Mocker, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    FakeApi(requests_mock, users=[user(1)])

    run_tap(make_config(ca_bundle=str(ca)), streams=["users"])
    with PersonalizationClient(make_config(ca_bundle=str(ca))) as client:
        client.check_connection()

    assert {call.verify for call in requests_mock.request_history} == {str(ca)}


def test_tls_failure_is_explained_and_not_retried(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.get(
        USERS_URL,
        exc=requests.exceptions.SSLError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
        ),
    )

    with pytest.raises(PersonalizationTLSError) as caught:
        run_tap(make_config(), streams=["users"])

    assert requests_mock.call_count == 1
    assert "set ca_bundle" in str(caught.value)
    assert "certificate not trusted" in str(caught.value)


# --- segments ----------------------------------------------------------------------------------


def test_segment_members_one_partition_per_configured_segment(requests_mock: rm.Mocker) -> None:
    newsletter = [{"id": "seg-news", "name": "Newsletter", "joined": 1731000000000}]
    both = [*user(0)["segmentMembership"], *newsletter]
    api = FakeApi(
        requests_mock,
        users=[
            user(1),
            user(2, segmentMembership=both),
            user(3, segmentMembership=newsletter),
            user(4, segmentMembership=[]),
            user(5),
        ],
    )

    records, states = run_tap(make_config(), streams=["segment_members", "segments"])

    filters = [(q["filter"], q["page"]) for _, q in api.calls]
    assert filters == [
        ("seg-vip", "0"), ("seg-vip", "1"), ("seg-vip", "2"),
        ("seg-news", "0"), ("seg-news", "1"),
    ]  # fmt: skip
    pairs = [(r["segment_id"], r["user_id"]) for r in records["segment_members"]]
    assert pairs == [
        ("seg-vip", "u-000001"),
        ("seg-vip", "u-000002"),
        ("seg-vip", "u-000005"),
        ("seg-news", "u-000002"),
        ("seg-news", "u-000003"),
    ]
    first = records["segment_members"][0]
    assert first == {
        "segment_id": "seg-vip",
        "segment_name": "VIP",
        "user_id": "u-000001",
        "email_address": "User1@Example.com",
        "joined": "2024-11-07T17:20:00.000+00:00",
    }
    partitions = states[-1]["bookmarks"]["segment_members"]["partitions"]
    assert [(p["context"], p["record_count"]) for p in partitions] == [
        ({"segment_id": "seg-vip"}, 3),
        ({"segment_id": "seg-news"}, 2),
    ]
    counts = {r["id"]: (r["name"], r["member_count"]) for r in records["segments"]}
    assert counts == {"seg-vip": ("VIP", 3), "seg-news": ("Newsletter", 2)}


def test_segments_alone_report_counts_from_state_and_call_nothing(
    requests_mock: rm.Mocker,
) -> None:
    state = {
        "bookmarks": {
            "segment_members": {
                "partitions": [
                    {
                        "context": {"segment_id": "seg-vip"},
                        "last_complete_run": "2025-01-02T03:04:05.000+00:00",
                        "record_count": 41,
                    }
                ]
            }
        }
    }

    records, _ = run_tap(make_config(), streams=["segments"], state=state)

    assert requests_mock.call_count == 0
    assert records["segments"] == [
        {
            "id": "seg-vip",
            "name": "VIP",
            "member_count": 41,
            "members_synced_at": "2025-01-02T03:04:05.000+00:00",
        },
        {"id": "seg-news", "name": "Newsletter", "member_count": None, "members_synced_at": None},
    ]


def test_no_segments_configured_means_no_member_calls(requests_mock: rm.Mocker) -> None:
    FakeApi(requests_mock, users=[user(1)])

    records, _ = run_tap(make_config(segments=[]), streams=["segment_members", "segments"])

    assert requests_mock.call_count == 0
    assert records == {}


# --- optional activity filter ------------------------------------------------------------------


def test_activity_filter_uses_last_complete_run_minus_lookback(
    requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    day = 86_400_000
    run_at = 1732400000000  # 2024-11-23T22:13:20Z
    rows = [
        user(1, lastActivity=run_at - 3 * day),  # before the lookback window
        user(2, lastActivity=run_at - 1 * day),  # inside it
        user(3, lastActivity=None),  # unknown: kept
    ]
    FakeApi(requests_mock, users=rows)
    state = {"bookmarks": {"users": {"last_complete_run": "2024-11-23T22:13:20.000+00:00"}}}

    with caplog.at_level(logging.INFO):
        records, states = run_tap(
            make_config(filter_by_last_activity=True, lookback_days=2),
            streams=["users"],
            state=state,
        )

    assert [r["id"] for r in records["users"]] == ["u-000002", "u-000003"]
    assert "1 rows left out as inactive since 2024-11-21T22:13:20" in caplog.text
    assert states[-1]["bookmarks"]["users"]["record_count"] == 3


def test_without_the_filter_every_user_is_emitted(requests_mock: rm.Mocker) -> None:
    FakeApi(requests_mock, users=[user(1, lastActivity=0)])
    state = {"bookmarks": {"users": {"last_complete_run": "2024-11-23T22:13:20.000+00:00"}}}

    records, _ = run_tap(make_config(), streams=["users"], state=state)

    assert len(records["users"]) == 1


# --- PersonalizationClient (for the target) --------------------------------------------------


def test_client_event_api_retries_busy_and_rejects_invalid(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(
        EVENT_URL,
        [
            {"json": {"errorCode": 3}},
            {"status_code": 503, "json": {}},
            {"json": {"errorCode": 0, "user": {"id": "u-1"}}},
            {"json": {"errorCode": 5, "errorMessage": "bad action"}},
        ],
    )
    event = {
        "action": "CRM Sync",
        "user": {"id": "u-1", "attributes": {"crmLeadStatus": "Working"}},
    }

    with PersonalizationClient(make_config()) as client:
        reply = client.send_event(event)
        with pytest.raises(EventRejectedError) as rejected:
            client.send_event(event)

    assert reply["errorCode"] == 0
    assert requests_mock.call_count == 4
    assert len(sleeps) == 2
    assert requests_mock.request_history[0].json() == event
    assert rejected.value.code == 5
    assert "u-1" in str(rejected.value)
    assert "invalid event" in str(rejected.value)


def test_client_event_api_403_names_the_send_events_flag(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    requests_mock.post(EVENT_URL, status_code=403, json={})

    with (
        PersonalizationClient(make_config()) as client,
        pytest.raises(PersonalizationAuthError, match='"Can send events"'),
    ):
        client.send_event({"action": "CRM Sync", "user": {"id": "u-1"}})

    assert requests_mock.call_count == 1


def test_client_lookup_user(requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{BASE}/api/dataset/engage/user/u-1", json={"id": "u-1"})
    requests_mock.get(f"{BASE}/api/dataset/engage/user/nobody", status_code=404, json={})

    with PersonalizationClient(make_config()) as client:
        assert client.lookup_user("u-1") == {"id": "u-1"}
        assert client.lookup_user("nobody") is None


def test_client_refuses_bad_settings() -> None:
    with pytest.raises(PersonalizationConfigError, match="Set base_url"):
        PersonalizationClient({"dataset": "engage", "api_key_id": "k", "api_key_secret": "s"})


# --- conversions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000000, "2023-11-14T22:13:20.000+00:00"),
        ("1700000000123", "2023-11-14T22:13:20.123+00:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000+00:00"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000+00:00"),
        (None, None),
    ],
)
def test_date_time_conversion(value: Any, expected: str | None) -> None:
    assert date_time(value) == expected


@pytest.mark.parametrize("value", [True, "not a date", {"ms": 1}, 10**20])
def test_date_time_rejects_what_it_cannot_read(value: Any) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        date_time(value)


def test_attribute_items_with_unexpected_keys_stay_whole_in_extra() -> None:
    odd = [{"name": "plan", "value": "gold", "source": "import"}]
    with pytest.raises(ValueError, match=r"not \{name, value, updated\}"):
        attribute_map(odd)
    issues: Counter[str] = Counter()
    record = normalize_row({"id": "u-1", "attributes": odd}, USER_FIELDS, issues)
    assert record["attributes"] == {}
    assert record["extra"] == {"attributes": odd}
    assert issues == {"attributes": 1}


def test_unknown_segment_points_at_the_segments_setting(requests_mock: rm.Mocker) -> None:
    message = {"error": "Bad Request", "message": "filter 'seg-gone' names no segment"}
    requests_mock.get(USERS_URL, status_code=400, json=message)

    with pytest.raises(PersonalizationRequestError) as caught:
        run_tap(make_config(segments=[{"id": "seg-gone"}]), streams=["segment_members"])

    assert "HTTP 400" in str(caught.value)
    assert "names no segment" in str(caught.value)
    assert "Check setting segments: is 'seg-gone' a segment id" in str(caught.value)
    assert requests_mock.call_count == 1


def test_stream_maps_and_flattening_keep_schema_and_records_in_step(
    requests_mock: rm.Mocker, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeApi(requests_mock, users=[user(1)])
    config = make_config(
        stream_maps={"users": {"emailAddress": "md5(emailAddress)"}},
        flattening_enabled=True,
        flattening_max_depth=1,
    )
    tap = TapPersonalization(config=config)
    for name, stream in tap.streams.items():
        stream.selected = name == "users"

    tap.sync_all()

    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (schema,) = [m["schema"] for m in messages if m["type"] == "SCHEMA"]
    (record,) = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert set(record) <= set(schema["properties"])
    assert record["emailAddress"] != "User1@Example.com"
    assert json.loads(record["attributes"]) == {"plan": "gold", "visits30d": 1}
    assert json.loads(record["segmentMembership"])[0]["id"] == "seg-vip"
