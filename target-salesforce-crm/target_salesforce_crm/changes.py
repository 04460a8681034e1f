"""Field-level differences between a CRM record as read and the values about to be sent.

A dry run shows a reviewer what would change. Values come back from SOQL typed by
describe (numbers as numbers, datetimes as Salesforce text) while the mapping produces JSON
values, so equal values in different spellings (`12.0` and `12`, `...Z` and `...+0000`)
must not be shown as changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from target_salesforce_crm.writer import json_ready


def _as_datetime(value: str) -> dt.datetime | None:
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit():
        return None
    text = text.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # Salesforce writes +0000
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def same_value(old: Any, new: Any) -> bool:
    """Equal as Salesforce stores them (numbers by value, datetimes by instant)."""
    new = json_ready(new)
    if old is None or new is None:
        return old in (None, "") and new in (None, "")
    if isinstance(old, bool) or isinstance(new, bool):
        return old == new
    if isinstance(old, int | float) and isinstance(new, int | float):
        return float(old) == float(new)
    if isinstance(old, str) and isinstance(new, str):
        if old == new:
            return True
        old_time, new_time = _as_datetime(old), _as_datetime(new)
        return old_time is not None and old_time == new_time
    return bool(old == new)


def field_changes(current: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """`{field: {"old", "new"}}` for every sent field whose value differs (Id excluded)."""
    by_lower = {name.lower(): value for name, value in current.items()}
    changes: dict[str, Any] = {}
    for name, new in payload.items():
        if name.lower() == "id":
            continue
        old = by_lower.get(name.lower())
        if not same_value(old, new):
            changes[name] = {"old": old, "new": json_ready(new)}
    return changes
