"""singer-sdk's standard tap tests (discovery, connection, schemas, keys, final state).

They run against a small fake export API (requests-mock) that serves both attribute shapes,
a segment filter and the empty page that ends paging.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from singer_sdk.testing import get_tap_test_class
from tap_personalization.tap.tap import TapPersonalization

BASE = "https://sandbox.us-1.evergage.com"
CONFIG = {
    "account": "sandbox",
    "instance": "us-1",
    "dataset": "engage",
    "api_key_id": "key-id",
    "api_key_secret": "key-secret",
    "page_size": 3,
    "include_geo": True,
    "segments": [{"id": "seg-vip", "name": "VIP"}],
}
VIP = {"id": "seg-vip", "name": "VIP", "joined": 1731000000000}
USERS = [
    {
        "id": f"u-{n:06d}",
        "emailAddress": f"user{n}@example.com",
        "displayName": f"User {n}",
        "accountId": "example-corp",
        "accountName": "Example Corp.",
        "engagementScore": n / 10,
        "engagement": {"score": n, "date": 1732400000000},
        "firstActivity": 1700000000000,
        "lastActivity": 1732400000000,
        "segmentMembership": [VIP] if n % 2 else [],
        "geo": {"city": "Lyon"},
        "attributes": (
            {"plan": "gold"} if n % 3 else [{"name": "plan", "value": "silver", "updated": 1}]
        ),
        "source": "export",
    }
    for n in range(1, 8)
]
ACCOUNTS = [
    {
        "id": "example-corp",
        "name": "Example Corp.",
        "domain": "example.com",
        "engagementScore": 0.7,
        "firstActivity": 1700000000000,
        "lastActivity": 1732400000000,
        "segmentMembership": [VIP],
        "attributes": [{"name": "industry", "value": "Retail", "updated": 1731000000000}],
    }
]


def _pages(rows: list[dict[str, Any]]) -> Any:
    def answer(request: Any, context: Any) -> list[dict[str, Any]]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        page, size = int(query["page"]), int(query["pageSize"])
        found = rows
        if segment := query.get("filter"):
            found = [r for r in rows if segment in {m["id"] for m in r["segmentMembership"]}]
        return found[page * size : (page + 1) * size]

    return answer


_StandardTests = get_tap_test_class(TapPersonalization, config=CONFIG)


class TestTapPersonalizationStandard(_StandardTests):
    """The SDK's suite, with the fake API active for the whole class."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def fake_api(cls) -> Iterator[requests_mock.Mocker]:
        with requests_mock.Mocker() as mocker:
            mocker.get(f"{BASE}/api/dataset/engage/users.json", json=_pages(USERS))
            mocker.get(f"{BASE}/api/dataset/engage/accounts.json", json=_pages(ACCOUNTS))
            yield mocker

    def test_fake_api_saw_every_page(self, fake_api: requests_mock.Mocker) -> None:
        """The suite's full sync paged each export to its empty page, segment filter included."""
        seen = {
            (urlsplit(r.url).path.rsplit("/", 1)[-1], tuple(sorted(parse_qs(r.query))))
            for r in fake_api.request_history
        }
        assert ("users.json", ("filter", "includegeo", "page", "pagesize")) not in seen
        assert ("users.json", ("filter", "page", "pagesize")) in seen
        assert ("users.json", ("includegeo", "page", "pagesize")) in seen
        pages = sorted(
            int(parse_qs(urlsplit(r.url).query)["page"][0])
            for r in fake_api.request_history
            if r.path.endswith("/accounts.json")
        )
        assert pages[:2] == [0, 1]
