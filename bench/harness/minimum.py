"""The fewest API calls each path could make, by ledger kind, to compare with the ledger.

Polls are left out on purpose: how many a job needs depends on how long the server takes,
not on the plugin, so they are reported next to the server's processing time instead.
"""

from __future__ import annotations

from math import ceil
from typing import Any

LOOKUP_BATCH = 1_000  # candidates per SOQL look-up (the native integration's figure)
BULK_BATCH = 10_000  # records per Bulk API 1.0 batch
REST_PAGE = 2_000  # rows per REST query page
POLL_KINDS = ("bulk_poll",)
EXCESS_LISTED = 10


def target_minimum(candidates: dict[str, int], matches: dict[str, int]) -> dict[str, int]:
    """target-salesforce-crm: auth, describe and look-ups per object, then one Bulk job.

    Per object with candidates: one describe and ⌈candidates/1,000⌉ look-ups; per object
    with matches: one job (create + close), ⌈matches/10,000⌉ batches and as many result
    fetches.
    """
    objects = [name for name, count in candidates.items() if count]
    written = [name for name, count in matches.items() if count]
    batches = sum(ceil(matches[name] / BULK_BATCH) for name in written)
    return {
        "oauth": 1,
        "describe": len(objects),
        "soap_query": sum(ceil(candidates[name] / LOOKUP_BATCH) for name in objects),
        "bulk_job": 2 * len(written),
        "bulk_batch": batches,
        "bulk_result": batches,
    }


def tap_minimum(users: int, page_size: int) -> dict[str, int]:
    """tap-personalization: every page once, plus the empty page that ends the export."""
    return {"users_export": ceil(users / page_size) + 1}


def crm_read_minimum(rows: dict[str, int], related: tuple[str, ...] = ()) -> dict[str, int]:
    """tap-salesforce-crm without an input catalog: auth, one describe per object read and
    per object reached through a relationship column (its field types), every REST page once.

    An object with no rows still costs one query (its empty first page).
    """
    return {
        "oauth": 1,
        "describe": len(rows) + len(related),
        "rest_query": sum(max(1, ceil(count / REST_PAGE)) for count in rows.values()),
    }


def compare(actual: dict[str, int], minimum: dict[str, int],
            calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Actual vs minimum per kind; `excess` lists every non-poll kind off its minimum.

    With the ledger's `calls`, the requests of the kinds in excess are listed too (first
    ten each), so a report can say which call was not needed.
    """
    kinds = sorted(set(actual) | set(minimum))
    excess = {kind: actual.get(kind, 0) - minimum.get(kind, 0) for kind in kinds
              if kind not in POLL_KINDS and actual.get(kind, 0) != minimum.get(kind, 0)}
    requests: dict[str, list[str]] = {kind: [] for kind in excess}
    for call in calls or []:
        listed = requests.get(call["kind"])
        if listed is not None and len(listed) < EXCESS_LISTED:
            listed.append(f"{call['method']} {call['path'][:200]}")
    return {
        "actual": {kind: actual.get(kind, 0) for kind in kinds},
        "minimum": minimum,
        "minimum_total": sum(minimum.values()),
        "actual_total": sum(actual.values()),
        "polls": sum(actual.get(kind, 0) for kind in POLL_KINDS),
        "excess": excess,
        "at_minimum": not excess,
        "excess_requests": requests,
    }
