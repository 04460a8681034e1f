"""The JSON shapes the export and lookup endpoints serve, built from stored rows.

Why two attribute shapes: public payloads show both `attributes` as a map and as a list of
`{"name", "value", "updated"}`, and the docs do not say which a dataset returns. A fixed,
deterministic share of users (those whose id hashes to 0 modulo 5, about one in five) is
served in the list shape, so a client that only handles one shape fails visibly in tests.
The single-user lookup serves `engagement: {"score", "date"}` instead of `engagementScore`,
as seen in lookup payloads. Accounts carry no segment memberships in the sandbox.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

LIST_SHAPE_MODULUS = 5


def uses_list_shape(user_id: str) -> bool:
    return zlib.crc32(user_id.encode("utf-8")) % LIST_SHAPE_MODULUS == 0


def _attribute_map(stored: str) -> dict[str, Any]:
    return {name: entry[0] for name, entry in sorted(json.loads(stored).items())}


def _attribute_list(stored: str) -> list[dict[str, Any]]:
    return [{"name": name, "value": entry[0], "updated": entry[1]}
            for name, entry in sorted(json.loads(stored).items())]


def user_object(row: dict[str, Any], *, include_geo: bool = False, lookup: bool = False,
                canonical: bool = False) -> dict[str, Any]:
    """One user as served; `canonical` (admin) always uses the map shape and adds geo."""
    listed = not canonical and uses_list_shape(row["id"])
    user: dict[str, Any] = {
        "id": row["id"],
        "emailAddress": row["email"],
        "displayName": row["display_name"],
        "accountId": row["account_id"],
        "accountName": row["account_name"],
    }
    if lookup:
        user["engagement"] = {"score": row["engagement_score"], "date": row["last_activity"]}
    else:
        user["engagementScore"] = row["engagement_score"]
    user["firstActivity"] = row["first_activity"]
    user["lastActivity"] = row["last_activity"]
    user["segmentMembership"] = row["memberships"]
    user["attributes"] = (_attribute_list(row["attributes"]) if listed
                          else _attribute_map(row["attributes"]))
    if include_geo or canonical:
        user["geo"] = json.loads(row["geo"]) if row["geo"] else None
    return user


def account_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "domain": row["domain"],
        "engagementScore": row["engagement_score"],
        "lastActivity": row["last_activity"],
        "segmentMembership": [],
        "attributes": _attribute_map(row["attributes"]),
    }


CSV_FIXED_COLUMNS = ("id", "emailAddress", "displayName", "accountId", "accountName",
                     "engagementScore", "firstActivity", "lastActivity", "segments")


def user_csv_row(row: dict[str, Any], attribute_names: list[str]) -> list[Any]:
    """users.csv: fixed columns, segment ids joined by `;`, one column per attribute."""
    values = {name: entry[0] for name, entry in json.loads(row["attributes"]).items()}
    return [row["id"], row["email"], row["display_name"], row["account_id"],
            row["account_name"], row["engagement_score"], row["first_activity"],
            row["last_activity"], ";".join(m["id"] for m in row["memberships"]),
            *(_csv_value(values.get(name)) for name in attribute_names)]


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value
