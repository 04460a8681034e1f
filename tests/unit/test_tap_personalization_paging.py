"""tap-personalization's export paging (next page fetched ahead) and its per-record fast path.

Against a scripted export API (requests-mock): which pages are asked for and when, relative to
the records the consumer has taken; failures of the page fetched ahead; and the exact records
and messages the tap emits, compared with what singer-sdk's own record pipeline makes.
"""

from __future__ import annotations

import copy
import io
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm
from singer_sdk import Stream
from tap_personalization.errors import (
    PersonalizationRequestError,
    PersonalizationUnavailableError,
)
from tap_personalization.tap.schemas import (
    ACCOUNT_FIELDS,
    USER_FIELDS,
    membership_record,
    normalize_row,
)
from tap_personalization.tap.tap import TapPersonalization

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


# --- records: exact content, and the same messages singer-sdk makes ----------------------------


ODD_ROWS = [
    {
        "id": "u-1",
        "emailAddress": "Ada@Example.com",
        "displayName": None,
        "accountId": 42,
        "engagementScore": "NaN",
        "firstActivity": "1700000000123",
        "lastActivity": -1,
        "segmentMembership": [
            "seg-a",
            {"id": "seg-b", "joined": "2024-05-01T12:00:00+02:00", "rank": 1},
        ],
        "attributes": [{"name": "plan", "value": "gold", "updated": 1731000000000}],
        "loyalty": "gold",
        "geo": "Lyon",
    },
    {"id": "u-2", "engagementScore": "Infinity", "lastActivity": 253402300799999},
    {"id": "u-3", "engagementScore": "1e400", "segmentMembership": "seg-a"},
    {"id": "u-4", "engagementScore": 0.1, "firstActivity": 0, "lastActivity": -62135596800000},
]


def test_records_are_exactly_as_documented(requests_mock: rm.Mocker) -> None:
    Export(requests_mock, ODD_ROWS)

    records = [m["record"] for m in run_tap(make_config()) if m["type"] == "RECORD"]

    empty = {"displayName": None, "accountId": None, "accountName": None, "engagement": None}
    assert records == [
        {
            "id": "u-1",
            "emailAddress": "Ada@Example.com",
            "displayName": None,
            "accountId": "42",
            "accountName": None,
            "engagementScore": None,  # NaN: null, as singer-sdk's conformance made it
            "engagement": None,
            "firstActivity": "2023-11-14T22:13:20.123+00:00",
            "lastActivity": "1969-12-31T23:59:59.999+00:00",
            "segmentMembership": [
                {"id": "seg-a", "name": None, "joined": None},
                {"id": "seg-b", "joined": "2024-05-01T10:00:00.000+00:00", "rank": 1, "name": None},
            ],
            "geo": None,
            "attributes": {"plan": "gold"},
            "attributesUpdated": {"plan": "2024-11-07T17:20:00.000+00:00"},
            "extra": {"loyalty": "gold", "geo": "Lyon"},
        },
        {
            "id": "u-2",
            "emailAddress": None,
            **empty,
            "engagementScore": None,
            "firstActivity": None,
            "lastActivity": "9999-12-31T23:59:59.999+00:00",
            "segmentMembership": [],
            "geo": None,
            "attributes": {},
            "attributesUpdated": {},
            "extra": {},
        },
        {
            "id": "u-3",
            "emailAddress": None,
            **empty,
            "engagementScore": None,  # too large for a float: null, as the SDK made it
            "firstActivity": None,
            "lastActivity": None,
            "segmentMembership": [],
            "geo": None,
            "attributes": {},
            "attributesUpdated": {},
            "extra": {"segmentMembership": "seg-a"},
        },
        {
            "id": "u-4",
            "emailAddress": None,
            **empty,
            "engagementScore": 0.1,
            "firstActivity": "1970-01-01T00:00:00.000+00:00",
            "lastActivity": "0001-01-01T00:00:00.000+00:00",
            "segmentMembership": [],
            "geo": None,
            "attributes": {},
            "attributesUpdated": {},
            "extra": {},
        },
    ]
    assert list(records[0]) == [*USER_FIELDS, "attributes", "attributesUpdated", "extra"]


def _sdk_and_ours(stream: Stream, record: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """RECORD messages for one record, from singer-sdk's own method and from the stream's."""

    def made(messages: Iterator[Any]) -> list[dict]:
        return [{k: v for k, v in m.to_dict().items() if k != "time_extracted"} for m in messages]

    sdk = made(Stream._generate_record_messages(stream, copy.deepcopy(record)))
    ours = made(stream._generate_record_messages(copy.deepcopy(record)))
    return sdk, ours


def _built(row: dict[str, Any]) -> dict[str, Any]:
    return normalize_row(row, USER_FIELDS, Counter())


def _catalog(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    catalog = TapPersonalization(config=make_config()).catalog_dict
    (users,) = [s for s in catalog["streams"] if s["tap_stream_id"] == "users"]
    change(users)
    return catalog


def test_record_messages_match_the_sdks_when_everything_is_selected() -> None:
    """Pins the override of singer-sdk's private `_generate_record_messages`: if the SDK
    changes what it emits for a record, this comparison fails."""
    config = make_config(
        stream_maps={
            "users": {"__filter__": "id != 'u-2'"},
            "vip_users": {
                "__source__": "users",
                "email": "emailAddress",
                "__key_properties__": ["email"],
                "__else__": None,
            },
        }
    )
    stream = TapPersonalization(config=config).streams["users"]
    stream.selected = True

    assert stream._records_pass_as_built()  # the fast path is the one compared
    for row in [*ODD_ROWS, user(7, geo={"city": "Lyon"})]:
        sdk, ours = _sdk_and_ours(stream, _built(row))
        assert ours == sdk
        assert len(ours) == (1 if row["id"] == "u-2" else 2)


@pytest.mark.parametrize(
    ("name", "record"),
    [
        (
            "accounts",
            normalize_row(
                {"id": "acme", "engagementScore": "NaN", "lastActivity": 1, "tier": "A"},
                ACCOUNT_FIELDS,
                Counter(),
            ),
        ),
        ("segment_members", membership_record(_built(ODD_ROWS[0]), "seg-b", "B")),
    ],
)
def test_record_messages_match_the_sdks_for_the_other_streams(
    name: str, record: dict[str, Any]
) -> None:
    stream = TapPersonalization(config=make_config()).streams[name]
    stream.selected = True

    assert stream._records_pass_as_built()
    sdk, ours = _sdk_and_ours(stream, record)
    assert ours == sdk
    assert len(ours) == 1


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda entry: next(
                m for m in entry["metadata"] if m["breadcrumb"] == ["properties", "extra"]
            )["metadata"].update(selected=False),
            id="a property deselected",
        ),
        pytest.param(
            lambda entry: entry["schema"]["properties"]["engagementScore"].update(
                type=["boolean", "null"]
            ),
            id="another schema in the catalog",
        ),
    ],
)
def test_record_messages_go_through_the_sdk_otherwise(change: Callable[[dict], None]) -> None:
    tap = TapPersonalization(config=make_config(), catalog=_catalog(change))
    stream = tap.streams["users"]
    stream.selected = True

    assert not stream._records_pass_as_built()
    for row in ODD_ROWS:
        sdk, ours = _sdk_and_ours(stream, _built(row))
        assert ours == sdk


# --- decoding pages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            b'[{"id": "u-1", "displayName": "Jos\xc3\xa9"}]', "application/json", id="utf-8"
        ),
        pytest.param(
            b'\xef\xbb\xbf[{"id": "u-1", "displayName": "Jos\xc3\xa9"}]',
            "application/json",
            id="utf-8 with a BOM",
        ),
        pytest.param(
            b'[{"id": "u-1", "displayName": "Jos\xe9"}]',
            "application/json; charset=iso-8859-1",
            id="latin-1",
        ),
    ],
)
def test_pages_are_decoded_whatever_the_charset(
    requests_mock: rm.Mocker, body: bytes, content_type: str
) -> None:
    pages = iter([body, b"[]"])
    requests_mock.get(
        USERS_URL,
        content=lambda request, context: next(pages),
        headers={"Content-Type": content_type},
    )

    records = [m["record"] for m in run_tap(make_config()) if m["type"] == "RECORD"]

    assert [(r["id"], r["displayName"]) for r in records] == [("u-1", "José")]


def test_a_body_that_is_not_json_is_explained(requests_mock: rm.Mocker) -> None:
    requests_mock.get(USERS_URL, text="<html>login</html>", headers={"Content-Type": "text/html"})

    with pytest.raises(PersonalizationRequestError) as caught:
        run_tap(make_config())

    assert str(caught.value) == (
        "GET /api/dataset/engage/users.json?page=0&pageSize=2 answered HTTP 200 with a body "
        "that is not JSON (text/html): check base_url points at the Personalization API. "
        "Body: <html>login</html>"
    )
