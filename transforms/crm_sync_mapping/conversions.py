"""Value conversions applied, in order, to a value read from a source path.

Rules every conversion follows (the README lists them for analytics engineers):
- `None` (no value) passes through untouched; the field's null policy decides about it.
- On a list (a `list[].field` projection) every conversion except `join` applies to each
  element; `join` turns the list into one text.
- A value a conversion cannot handle raises `InvalidValue` with a plain reason; the field
  mapping turns it into `ConversionError(field, reason)` so the record is reported, never
  silently changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

KEEP = "keep"  # value_map default: leave an unmapped value as it is


class InvalidValue(ValueError):
    """A value that a conversion cannot handle; the message is the reason."""


class ConversionError(ValueError):
    """A record's value could not be converted for one field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Conversion:
    """One step of a `convert:` list.

    `argument` holds the number or separator of `round`, `truncate` and `join`;
    `value_map` and `default` belong to `value_map` (`has_default` is false when the file
    gives no default, and then an unmapped value is an error).
    """

    name: str
    argument: Any = None
    value_map: tuple[tuple[str, Any], ...] = ()
    default: Any = None
    has_default: bool = False
    _lookup: dict[str, Any] = field(
        init=False, default_factory=dict, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(self.value_map))

    def apply(self, value: Any) -> Any:
        """Converted value (see module docstring for None and lists)."""
        if value is None:
            return None
        if self.name == "join":
            return _join(value, self.argument)
        if isinstance(value, list):
            return [None if item is None else self._one(item) for item in value]
        return self._one(value)

    def _one(self, value: Any) -> Any:
        if self.name == "value_map":
            return self._map(value)
        function = _SIMPLE.get(self.name)
        if function is not None:
            return function(value)
        return _WITH_ARGUMENT[self.name](value, self.argument)

    def _map(self, value: Any) -> Any:
        key = map_key(value)
        if key in self._lookup:
            return self._lookup[key]
        if not self.has_default:
            known = ", ".join(repr(k) for k, _ in self.value_map)
            raise InvalidValue(f"value {value!r} is not in value_map ({known}) and no default")
        return value if self.default == KEEP else self.default


def map_key(value: Any) -> str:
    """Text a value is looked up by in a value_map: YAML keys are read the same way."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _text(value: Any, conversion: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(
            f"{conversion} needs text, got {_kind(value)} {value!r}; add 'string' before it"
        )
    return value


def _number_in(value: Any, conversion: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(
            f"{conversion} needs a number, got {_kind(value)} {value!r}; add 'number' before it"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValue(f"{conversion} needs a finite number, got {value!r}")
    return value


def _kind(value: Any) -> str:
    return {bool: "true/false", str: "text", int: "number", float: "number", dict: "map",
            list: "list"}.get(type(value), type(value).__name__)


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise InvalidValue(f"string needs a single value, got {_kind(value)} {value!r}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any) -> float | int | None:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            parsed: float | int = int(text)
        except ValueError:
            try:
                parsed = float(text)
            except ValueError:
                raise InvalidValue(f"{value!r} is not a number") from None
        value = parsed
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"{_kind(value)} {value!r} is not a number")
    return _number_in(value, "number")


def _integer(value: Any) -> int | None:
    number = _number(value)
    if number is None:
        return None
    if isinstance(number, float):
        if not number.is_integer():
            raise InvalidValue(f"{value!r} is not a whole number; add {{round: 0}} before it")
        return int(number)
    return number


def _epoch_ms(value: Any, conversion: str) -> datetime:
    if isinstance(value, str):
        if not value.strip().lstrip("-").isdigit():
            raise InvalidValue(f"{value!r} is not a time in epoch milliseconds")
        value = int(value.strip())
    number = _number_in(value, conversion)
    try:
        return datetime.fromtimestamp(number / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidValue(f"{value!r} is not a time in epoch milliseconds") from None


def _format_datetime(moment: datetime) -> str:
    """Salesforce's own datetime form: UTC, milliseconds, `Z`, a four-digit year.

    `%Y` writes year 1 as `1` on Linux, so the year is padded by hand; a time at the edge of
    the calendar (9999-12-31T23:30:00-01:00) has no UTC form and is an invalid value.
    """
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidValue(f"{moment.isoformat()} is outside the years 1 to 9999 in UTC") from None
    return (f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.")
            + f"{moment.microsecond // 1000:03d}Z")


def _epoch_ms_to_datetime(value: Any) -> str:
    return _format_datetime(_epoch_ms(value, "epoch_ms_to_datetime"))


def _epoch_ms_to_date(value: Any) -> str:
    return _epoch_ms(value, "epoch_ms_to_date").date().isoformat()


def _iso_datetime(value: Any) -> str | None:
    text = _text(value, "iso_datetime").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise InvalidValue(f"{value!r} is not an ISO 8601 date or datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without offset is taken as UTC
    return _format_datetime(moment)


def _round(value: Any, digits: int) -> float | int:
    number = _number_in(value, "round")
    return round(number, digits) if digits else round(number)


def _truncate(value: Any, length: int) -> str:
    return _text(value, "truncate")[:length]


def _join(value: Any, separator: str) -> str:
    items = value if isinstance(value, list | tuple) else [value]
    parts = []
    for item in items:
        if item is None or item == "":
            continue
        if isinstance(item, dict | list):
            raise InvalidValue(f"join needs a list of single values, got {_kind(item)} {item!r}")
        parts.append(_string(item))
    return separator.join(parts)


_SIMPLE: dict[str, Callable[[Any], Any]] = {
    "trim": lambda value: _text(value, "trim").strip(),
    "lowercase": lambda value: _text(value, "lowercase").lower(),
    "uppercase": lambda value: _text(value, "uppercase").upper(),
    "string": _string,
    "number": _number,
    "integer": _integer,
    "epoch_ms_to_datetime": _epoch_ms_to_datetime,
    "epoch_ms_to_date": _epoch_ms_to_date,
    "iso_datetime": _iso_datetime,
}
_WITH_ARGUMENT: dict[str, Callable[[Any, Any], Any]] = {
    "round": _round,
    "truncate": _truncate,
}

SIMPLE_CONVERSIONS = tuple(_SIMPLE)
CONVERSIONS_WITH_ARGUMENT = ("round", "truncate", "join", "value_map")


def apply_all(conversions: tuple[Conversion, ...], value: Any) -> Any:
    """Run a `convert:` list in order."""
    for conversion in conversions:
        value = conversion.apply(value)
    return value
