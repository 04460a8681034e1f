"""Ledger of every API call, so tests can count calls instead of trusting the client.

The kind of a call is derived from its method and path alone, in one place, so that a
request refused early (too long, dropped, 503, bad session) is still counted under the
same kind as a successful one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from emulators.salesforce.apidb import ApiDatabase

KINDS = (
    "oauth", "rest_query", "soap_query", "describe", "limits", "bulk_job", "bulk_batch",
    "bulk_poll", "bulk_result", "rest_other",
)
DEFAULT_LIMIT = 5000

_REST = re.compile(r"^/services/data/v[^/]+/(?P<rest>.*)$")
_BULK = re.compile(r"^/services/async/[^/]+/(?P<rest>.*)$")


def classify(method: str, path: str) -> str | None:
    """Ledger kind of a request, or None when it is not an API call (admin, unknown)."""
    if path.startswith("/services/oauth2/"):
        return "oauth"
    if path.startswith("/services/Soap/"):
        return "soap_query"
    bulk = _BULK.match(path)
    if bulk:
        return _bulk_kind(method, [p for p in bulk["rest"].split("/") if p])
    rest = _REST.match(path)
    if rest:
        return _rest_kind(method, [p for p in rest["rest"].split("/") if p])
    if path.startswith("/services/"):
        return "rest_other"
    return None


def _bulk_kind(method: str, parts: list[str]) -> str:
    if len(parts) <= 2:  # job, job/{id}
        return "bulk_job" if method == "POST" else "bulk_poll"
    if len(parts) == 3:  # job/{id}/batch
        return "bulk_batch" if method == "POST" else "bulk_poll"
    if len(parts) == 4:  # job/{id}/batch/{id}
        return "bulk_poll"
    return "bulk_result"  # .../result, .../request


def _rest_kind(method: str, parts: list[str]) -> str:
    if parts[:2] == ["jobs", "query"]:  # Bulk API 2.0 query jobs
        if len(parts) > 3:  # jobs/query/{id}/results
            return "bulk_result"
        return "bulk_poll" if method == "GET" else "bulk_job"
    if parts[:2] == ["jobs", "ingest"]:  # Bulk API 2.0 ingest jobs
        if len(parts) > 3:  # jobs/ingest/{id}/batches, .../successfulResults, ...
            return "bulk_batch" if parts[3] == "batches" else "bulk_result"
        return "bulk_poll" if method == "GET" else "bulk_job"
    if parts[:1] in (["query"], ["queryAll"]):
        return "rest_query"
    if parts == ["limits"]:
        return "limits"
    if parts == ["sobjects"] or (len(parts) == 3 and parts[0] == "sobjects"
                                 and parts[2] == "describe"):
        return "describe"
    return "rest_other"


class Ledger:
    """Append-only call log in SQLite (bounded memory however long a run lasts)."""

    def __init__(self, db: ApiDatabase) -> None:
        self._db = db

    def record(self, kind: str, method: str, path: str, status: int) -> None:
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._db.execute(
            "INSERT INTO ledger(kind, method, path, status, at) VALUES (?, ?, ?, ?, ?)",
            (kind, method, path[:2000], status, at),
        )

    def summary(self) -> dict[str, Any]:
        rows = self._db.all("SELECT kind, COUNT(*) AS n FROM ledger GROUP BY kind ORDER BY kind")
        by_kind = {row["kind"]: row["n"] for row in rows}
        return {"total": sum(by_kind.values()), "by_kind": by_kind}

    def report(self, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        """Summary plus the most recent `limit` calls, oldest first."""
        rows = self._db.all(
            "SELECT kind, method, path, status, at FROM ledger ORDER BY seq DESC LIMIT ?",
            (max(0, limit),),
        )
        return {**self.summary(), "calls": [dict(row) for row in reversed(rows)]}

    def clear(self) -> None:
        self._db.execute("DELETE FROM ledger")
