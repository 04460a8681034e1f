"""Validation of `POST /__admin/faults` bodies, shared by both emulators.

Each emulator declares its faults as a frozen dataclass; this turns a JSON body into one,
or raises ValueError naming the offending key, so a test that mistypes a fault learns it
at once instead of running without the fault it meant to inject.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, ClassVar, Protocol, TypeVar


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


_T = TypeVar("_T", bound=_Dataclass)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int)


def parse_faults(
    raw: Any,
    settings: type[_T],
    *,
    example: str,
    rates: tuple[str, ...] = (),
    counts: tuple[str, ...] = (),
    ranges: dict[str, tuple[float, float]] | None = None,
    patterns: tuple[str, ...] = (),
) -> _T:
    """`settings` built from `raw`: rates in 0..1, counts non-negative, ranges inclusive.

    Keys left out keep the dataclass default; `seed`, when present, must be an integer.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"faults must be a JSON object, e.g. {example}")
    known = {f.name for f in fields(settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name in rates:
        if name in raw:
            value = raw[name]
            if not _is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
            values[name] = float(value)
    for name in counts:
        if name in raw:
            value = raw[name]
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
            values[name] = value
    for name, (low, high) in (ranges or {}).items():
        if name in raw:
            value = raw[name]
            if not _is_number(value) or not low <= value <= high:
                raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
            values[name] = float(value)
    for name in patterns:
        if name in raw:
            value = raw[name]
            try:
                re.compile(value)
            except (TypeError, re.error) as exc:
                raise ValueError(f"{name} must be a regular expression, got {value!r} "
                                 f"({exc})") from None
            values[name] = value
    seed = raw.get("seed")
    if seed is not None and not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return settings(**values, seed=seed)
