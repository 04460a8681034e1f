"""Record shapes of the streams, and the tolerant parsing of export rows into them.

The export payload is not fully documented, so parsing is tolerant and lossless:
- epoch-millisecond timestamps become ISO 8601 date-time strings in UTC with millisecond
  precision (nothing is lost; Singer targets get a real `format: date-time`);
- `attributes` is always emitted as a map, whether the API sent a map or a list of
  `{name, value, updated}` (the `updated` times go to `attributesUpdated`);
- top-level keys this tap does not know are kept under `extra`, and a known key whose value
  does not fit its type is moved there too (and counted), never dropped.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from singer_sdk import typing as th

Converter = Callable[[Any], Any]

_DIGITS = frozenset("0123456789")


# --- value converters: return the typed value or raise ValueError ------------------------------


def text(value: Any) -> str | None:
    """A scalar as a string; objects and lists do not fit a string field."""
    if type(value) is str:
        return value
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ValueError("not a scalar")
    return value if isinstance(value, str) else str(value)


def number(value: Any) -> int | float | Decimal | None:
    """A JSON number, or a numeric string (kept exact as Decimal)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError("not numeric") from exc
    raise ValueError("not a number")


def score(value: Any) -> int | float | Decimal | None:
    """`number` for a record's top-level score: NaN and infinities become null.

    That is what singer-sdk's type conformance made of them; the streams emit records as
    built, without that pass (see `PersonalizationStream`), so the rule lives here.
    """
    found = value if type(value) is Decimal else number(value)  # JSON decimals come as Decimal
    if isinstance(found, float | Decimal) and not -math.inf < float(found) < math.inf:
        return None  # NaN compares false: this is singer-sdk's isnan-or-isinf test
    return found


def date_time(value: Any) -> str | None:
    """Epoch milliseconds (or an ISO 8601 string) as an ISO 8601 UTC string, ms precision."""
    if type(value) is int:  # what the API sends: checked first, it is most of an export's work
        return _from_whole_epoch_ms(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("boolean is not a time")
    if isinstance(value, str):
        stripped = value.strip()
        if stripped and set(stripped.lstrip("-")) <= _DIGITS:
            return _from_whole_epoch_ms(int(stripped))
        moment = datetime.fromisoformat(stripped)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    elif isinstance(value, int | float | Decimal):
        moment = _from_epoch_ms(value)
    else:
        raise ValueError("not a time")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _from_epoch_ms(value: float | Decimal) -> datetime:
    try:
        return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError("epoch milliseconds out of range") from exc


_SECONDS_PER_DAY = 86_400
_EPOCH_DAY = date(1970, 1, 1)
#: The parts of `HH:MM:SS.mmm+00:00`, formatted once instead of per timestamp.
_HOURS_MINUTES = [f"{hour:02d}:{minute:02d}" for hour in range(24) for minute in range(60)]
_SECONDS = [f":{second:02d}." for second in range(60)]
_MILLIS = [f"{millis:03d}+00:00" for millis in range(1000)]


def _from_whole_epoch_ms(value: int) -> str:
    """`date_time` of whole milliseconds, in integer arithmetic: exact, and three times as
    fast as a float timestamp (timestamps are most of an export's parsing work). The date
    part is cached: an export's timestamps fall on a limited number of days."""
    seconds, millis = divmod(value, 1000)
    days, seconds = divmod(seconds, _SECONDS_PER_DAY)
    minutes, seconds = divmod(seconds, 60)
    return f"{_iso_day(days)}{_HOURS_MINUTES[minutes]}{_SECONDS[seconds]}{_MILLIS[millis]}"


@functools.lru_cache(maxsize=4096)
def _iso_day(days: int) -> str:
    """`YYYY-MM-DDT` of a day counted from 1970-01-01."""
    try:
        return f"{(_EPOCH_DAY + timedelta(days=days)).isoformat()}T"
    except OverflowError as exc:
        raise ValueError("epoch milliseconds out of range") from exc


def open_object(value: Any) -> dict[str, Any] | None:
    """A JSON object kept as it is (geo, engagement extras)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def engagement(value: Any) -> dict[str, Any] | None:
    """`{score, date}` as seen in the single-user look-up; other keys kept."""
    found = open_object(value)
    if found is None:
        return None
    return {**found, "score": number(found.get("score")), "date": date_time(found.get("date"))}


def memberships(value: Any) -> list[dict[str, Any]]:
    """`segmentMembership` as `[{id, name, joined}]`; bare segment ids are accepted too."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("not a list")
    result: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, str):
            result.append({"id": item, "name": None, "joined": None})
        elif isinstance(item, dict):
            result.append(
                {
                    **item,
                    "id": text(item.get("id")),
                    "name": text(item.get("name")),
                    "joined": date_time(item.get("joined")),
                }
            )
        else:
            raise ValueError("membership is neither an object nor an id")
    return result


_ATTRIBUTE_ITEM_KEYS = frozenset({"name", "value", "updated"})


def attribute_map(value: Any) -> tuple[dict[str, Any], dict[str, str | None]]:
    """Attributes as a map, from either shape; plus when each was updated (list shape only)."""
    if value is None:
        return {}, {}
    if isinstance(value, dict):
        return dict(value), {}
    if not isinstance(value, list):
        raise ValueError("attributes are neither a map nor a list")
    values: dict[str, Any] = {}
    updated: dict[str, str | None] = {}
    for item in value:
        if not isinstance(item, dict) or "name" not in item or set(item) - _ATTRIBUTE_ITEM_KEYS:
            raise ValueError("attribute item is not {name, value, updated}")
        name = str(item["name"])
        values[name] = item.get("value")
        if "updated" in item:
            updated[name] = date_time(item["updated"])
    return values, updated


# --- rows to records -------------------------------------------------------------------------

USER_FIELDS: dict[str, Converter] = {
    "id": text,
    "emailAddress": text,
    "displayName": text,
    "accountId": text,
    "accountName": text,
    "engagementScore": score,
    "engagement": engagement,
    "firstActivity": date_time,
    "lastActivity": date_time,
    "segmentMembership": memberships,
    "geo": open_object,
}

ACCOUNT_FIELDS: dict[str, Converter] = {
    "id": text,
    "name": text,
    "domain": text,
    "engagementScore": score,
    "firstActivity": date_time,
    "lastActivity": date_time,
    "segmentMembership": memberships,
}


def normalize_row(
    row: Mapping[str, Any],
    fields: Mapping[str, Converter],
    issues: Counter[str],
) -> dict[str, Any]:
    """One export row as a record with every schema key present.

    `issues` counts, per key, values that did not fit and were moved to `extra`, so the stream
    can report them once instead of once per row.
    """
    record: dict[str, Any] = dict.fromkeys(fields)  # schema order, whatever order the row has
    record["attributes"], record["attributesUpdated"] = {}, {}
    extra: dict[str, Any] = {}
    for key, value in row.items():
        convert = fields.get(key)
        if convert is not None:
            try:
                record[key] = convert(value)
            except ValueError:
                record[key] = convert(None)
                extra[key] = value
                issues[key] += 1
        elif key == "attributes":
            try:
                record["attributes"], record["attributesUpdated"] = attribute_map(value)
            except ValueError:
                extra[key] = value
                issues[key] += 1
        else:
            extra[key] = value
    for name in fields.keys() - row.keys():  # absent: the converter's empty value, e.g. []
        record[name] = fields[name](None)
    record["extra"] = extra
    return record


def membership_record(
    user: Mapping[str, Any], segment_id: str, segment_name: str
) -> dict[str, Any]:
    """One (segment, user) pair of a filtered export, with when the user joined if known."""
    joined = next(
        (m.get("joined") for m in user.get("segmentMembership") or [] if m.get("id") == segment_id),
        None,
    )
    return {
        "segment_id": segment_id,
        "segment_name": segment_name,
        "user_id": user["id"],
        "email_address": user.get("emailAddress"),
        "joined": joined,
    }


# --- JSON schemas ---------------------------------------------------------------------------

_MEMBERSHIP = th.ArrayType(
    th.ObjectType(
        th.Property("id", th.StringType, description="Segment id."),
        th.Property("name", th.StringType, description="Segment name."),
        th.Property("joined", th.DateTimeType, description="When the member joined (UTC)."),
        additional_properties=True,
    )
)


def _open_object(name: str, description: str) -> th.Property:
    """An object of any keys, declared without `properties`.

    Without `properties`, singer-sdk's schema flattening turns it into one JSON string
    column instead of record keys its flattened schema does not declare.
    """
    return th.Property(
        name,
        th.CustomType({"type": ["object", "null"], "additionalProperties": True}),
        description=description,
    )


_ATTRIBUTES = _open_object(
    "attributes", "Custom attributes as a name → value map, whatever shape the API sent."
)
_ATTRIBUTES_UPDATED = _open_object(
    "attributesUpdated",
    "Attribute name → last update (UTC), when the API sent list-shaped attributes.",
)
_EXTRA = _open_object(
    "extra", "Keys this tap does not know, and values that did not fit their type, as sent."
)

USERS_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="Personalization user id."),
    th.Property("emailAddress", th.StringType, description="Email address, as stored."),
    th.Property("displayName", th.StringType),
    th.Property("accountId", th.StringType, description="Id of the user's account."),
    th.Property("accountName", th.StringType),
    th.Property("engagementScore", th.NumberType),
    _open_object(
        "engagement",
        "Engagement summary {score, date (UTC)}, when the API sends one (single-user look-up).",
    ),
    th.Property("firstActivity", th.DateTimeType, description="First activity (UTC)."),
    th.Property("lastActivity", th.DateTimeType, description="Last activity (UTC)."),
    th.Property("segmentMembership", _MEMBERSHIP, description="Segments the user is in."),
    _open_object("geo", "Geo location, when include_geo is on."),
    _ATTRIBUTES,
    _ATTRIBUTES_UPDATED,
    _EXTRA,
).to_dict()

ACCOUNTS_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="Account id (lowercase)."),
    th.Property("name", th.StringType),
    th.Property("domain", th.StringType),
    th.Property("engagementScore", th.NumberType),
    th.Property("firstActivity", th.DateTimeType, description="First activity (UTC)."),
    th.Property("lastActivity", th.DateTimeType, description="Last activity (UTC)."),
    th.Property("segmentMembership", _MEMBERSHIP, description="Segments the account is in."),
    _ATTRIBUTES,
    _ATTRIBUTES_UPDATED,
    _EXTRA,
).to_dict()

SEGMENTS_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="Segment id (from settings)."),
    th.Property("name", th.StringType, description="Segment name (from settings)."),
    th.Property(
        "member_count",
        th.IntegerType,
        description="Members seen by the last complete segment_members sync; null if none yet.",
    ),
    th.Property(
        "members_synced_at",
        th.DateTimeType,
        description="Start of that segment_members sync (UTC).",
    ),
).to_dict()

SEGMENT_MEMBERS_SCHEMA = th.PropertiesList(
    th.Property("segment_id", th.StringType, required=True),
    th.Property("segment_name", th.StringType),
    th.Property("user_id", th.StringType, required=True),
    th.Property("email_address", th.StringType),
    th.Property("joined", th.DateTimeType, description="When the user joined (UTC), if known."),
).to_dict()
