"""tap-personalization's export paging: the next page is fetched ahead.

Against a scripted export API (requests-mock): which pages are asked for and when, relative to
the records the consumer has taken, and failures of the page fetched ahead.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from contextlib import redirect_stdout
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm
from singer_sdk import Stream
from tap_personalization.client import (
    PersonalizationRequestError,
    PersonalizationUnavailableError,
)
from tap_personalization.tap import TapPersonalization

USERS_URL = "https://acme.us-5.evergage.com/api/dataset/engage/users.json"
PAGE_SIZE = 2
WAIT_S = 10.0  # generous upper bound for a background request to reach the fake API


def make_config(**overrides: Any) -> dict[str, Any]:
    return {
        "account": "acme",
        "instance": "us-5",
        "dataset": "engage",
        "api_key_id": "key-id-1",
        "api_key_secret": "s3cr3t",
        "page_size": PAGE_SIZE,
        "max_retries": 3,
        **overrides,
    }


def user(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"u-{n}",
        "emailAddress": f"User{n}@Example.com",
        "engagementScore": 0.5,
        "firstActivity": 1700000000000 + n,
        "lastActivity": 1732400000000 + n,
        "segmentMembership": [{"id": "seg-vip", "name": "VIP", "joined": 1731000000000}],
        "attributes": {"plan": "gold", "visits30d": n},
        **extra,
    }


class Export:
    """users.json in pages of PAGE_SIZE rows; failures can be scripted per page.

    Each request is logged with how many records the consumer had taken at that moment, and
    sets an event per page, so a test can wait until a page has been asked for.
    """

    def __init__(self, mocker: rm.Mocker, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.consumed = 0
        self.requests: list[tuple[int, int]] = []  # (page, records consumed by then)
        self.asked = {page: threading.Event() for page in range(len(rows) // PAGE_SIZE + 2)}
        self.script: dict[int, list[Callable[[Any], Any]]] = {}
        mocker.get(USERS_URL, json=self._answer)

    def fail(self, page: int, *outcomes: Callable[[Any], Any]) -> None:
        self.script.setdefault(page, []).extend(outcomes)

    def _answer(self, request: Any, context: Any) -> Any:
        page = int(parse_qs(urlsplit(request.url).query)["page"][0])
        self.requests.append((page, self.consumed))
        self.asked[page].set()
        if self.script.get(page):
            return self.script[page].pop(0)(context)
        return self.rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]

    def pages(self) -> list[int]:
        return [page for page, _ in self.requests]


def status(code: int) -> Callable[[Any], Any]:
    def outcome(context: Any) -> Any:
        context.status_code = code
        context.reason = HTTPStatus(code).phrase
        return {"error": f"status {code}"}

    return outcome


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the retry logic asks for, instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    return waits


def users_stream(**config: Any) -> Stream:
    return TapPersonalization(config=make_config(**config)).streams["users"]


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-next-page")]


def run_tap(config: dict[str, Any], catalog: dict | None = None) -> list[dict[str, Any]]:
    """Sync `users` only; every Singer message, parsed, in order."""
    tap = TapPersonalization(config=config, catalog=catalog)
    for name, stream in tap.streams.items():
        stream.selected = name == "users"
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    return [json.loads(line) for line in out.getvalue().splitlines()]


# --- the next page is fetched ahead, never further, never after the end ----------------------


def test_next_page_is_fetched_while_the_current_one_is_emitted(requests_mock: rm.Mocker) -> None:
    export = Export(requests_mock, [user(n) for n in range(1, 8)])  # 2 + 2 + 2 + 1 rows
    asked_before_page_was_emitted = []

    ids = []
    for index, record in enumerate(users_stream().get_records(None)):
        if index % PAGE_SIZE == 0:  # first record of a page: the next page is on its way
            page = index // PAGE_SIZE
            asked_before_page_was_emitted.append(export.asked[page + 1].wait(WAIT_S))
        ids.append(record["id"])
        export.consumed += 1

    assert ids == [f"u-{n}" for n in range(1, 8)]  # in order, each once
    assert asked_before_page_was_emitted == [True, True, True, True]
    assert export.pages() == [0, 1, 2, 3, 4]  # page 4 is the empty one: nothing after it
    for page, consumed in export.requests:  # at most one page ahead of the consumer
        assert (page - 1) * PAGE_SIZE <= consumed <= max(page - 1, 0) * PAGE_SIZE + 1
    assert prefetch_threads() == []


def test_a_full_last_page_is_followed_by_one_empty_page_only(requests_mock: rm.Mocker) -> None:
    export = Export(requests_mock, [user(n) for n in range(1, 5)])

    messages = run_tap(make_config())

    assert export.pages() == [0, 1, 2]
    assert [m["record"]["id"] for m in messages if m["type"] == "RECORD"] == [
        "u-1",
        "u-2",
        "u-3",
        "u-4",
    ]


def test_a_page_whose_rows_all_lack_an_id_does_not_end_the_export(
    requests_mock: rm.Mocker,
) -> None:
    nameless = [{k: v for k, v in user(n).items() if k != "id"} for n in (3, 4)]
    export = Export(requests_mock, [user(1), user(2), *nameless, user(5)])

    messages = run_tap(make_config())

    assert export.pages() == [0, 1, 2, 3]
    assert [m["record"]["id"] for m in messages if m["type"] == "RECORD"] == ["u-1", "u-2", "u-5"]


# --- failures of the page fetched ahead --------------------------------------------------------


def test_a_refused_next_page_fails_where_it_is_reached_with_the_usual_message(
    requests_mock: rm.Mocker,
) -> None:
    export = Export(requests_mock, [user(n) for n in range(1, 6)])
    export.fail(1, status(400))
    records = iter(users_stream().get_records(None))

    first_page = [next(records)["id"], next(records)["id"]]
    with pytest.raises(PersonalizationRequestError) as caught:
        next(records)

    assert first_page == ["u-1", "u-2"]
    assert str(caught.value) == (
        "Personalization rejected GET /api/dataset/engage/users.json?page=1&pageSize=2 "
        'with HTTP 400 Bad Request: {"error": "status 400"}'
    )
    assert export.pages() == [0, 1]  # refused once, never retried, nothing asked after it
    assert prefetch_threads() == []


def test_a_failing_next_page_is_retried_like_any_page_then_gives_up(
    requests_mock: rm.Mocker, sleeps: list[float]
) -> None:
    export = Export(requests_mock, [user(n) for n in range(1, 8)])
    export.fail(1, status(503))  # healed by one retry
    export.fail(2, *[status(503)] * 5)  # outlasts max_retries = 3
    emitted: list[str] = []

    with pytest.raises(PersonalizationUnavailableError) as caught:
        emitted.extend(record["id"] for record in users_stream().get_records(None))

    assert emitted == ["u-1", "u-2", "u-3", "u-4"]
    assert export.pages() == [0, 1, 1, 2, 2, 2]
    assert len(sleeps) == 1 + 2
    assert str(caught.value) == (
        "Personalization kept failing on GET /api/dataset/engage/users.json?page=2&pageSize=2 "
        "(HTTP 503 Service Unavailable after 3 attempts): the service is overloaded or down; "
        "run again later or raise max_retries."
    )
    assert prefetch_threads() == []


def test_a_consumer_that_stops_leaves_no_thread_and_asks_nothing_more(
    requests_mock: rm.Mocker,
) -> None:
    export = Export(requests_mock, [user(n) for n in range(1, 8)])
    records = users_stream().get_records(None)

    first = next(iter(records))
    records.close()

    assert first["id"] == "u-1"
    assert prefetch_threads() == []
    assert export.pages() == [0, 1]  # page 1 was on its way; page 2 never asked for
