"""Source paths: where in an input record a value comes from.

Grammar (one step per dot): `name`, `name[]` (every element of a list; the rest of the
path is read from each element and the results form a list), `name[3]` (one element,
0-based). Examples: `emailAddress`, `attributes.plan`, `segmentMembership[].name`,
`segmentMembership[0].id`.

Reading never raises: a missing key, an index past the end or a step into a value of the
wrong shape gives `None` (the record simply has no value there), because export payloads
vary and the mapping must not crash on a user without, say, any segment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(r"(?P<name>[A-Za-z_$][A-Za-z0-9_$\-]*)(?:\[(?P<index>[0-9]*)\])?")

_ALL = -1  # index meaning "every element"


class PathError(ValueError):
    """A source path that does not follow the grammar; the message says where."""


@dataclass(frozen=True)
class Step:
    """One dotted step: a key, and optionally a list index (`_ALL` for `[]`)."""

    name: str
    index: int | None = None


@dataclass(frozen=True)
class SourcePath:
    """A parsed source path; `read(record)` extracts its value."""

    text: str
    steps: tuple[Step, ...]

    @property
    def projects_list(self) -> bool:
        """Whether the value is a list (the path contains `[]`)."""
        return any(step.index == _ALL for step in self.steps)

    def read(self, record: Mapping[str, Any]) -> Any:
        """Value at this path, `None` when absent (see module docstring)."""
        return _read(record, self.steps)


def parse_path(text: str) -> SourcePath:
    """Parse a source path, raising PathError with the offending step."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("a source path cannot be empty")
    steps: list[Step] = []
    for position, part in enumerate(text.split(".")):
        match = _STEP.fullmatch(part)
        if match is None:
            where = "empty step" if not part else f"step '{part}'"
            raise PathError(
                f"bad source path '{text}': {where} (step {position + 1}); write steps like "
                "'a.b', 'list[].field' or 'list[0].field'"
            )
        index = match.group("index")
        if index is None:
            steps.append(Step(match.group("name")))
        else:
            steps.append(Step(match.group("name"), _ALL if index == "" else int(index)))
    return SourcePath(text, tuple(steps))


def _read(value: Any, steps: tuple[Step, ...]) -> Any:
    for position, step in enumerate(steps):
        value = _key(value, step.name)
        if value is None or step.index is None:
            continue
        if not isinstance(value, list | tuple):
            return None
        if step.index == _ALL:
            rest = steps[position + 1 :]
            return _flatten(_read(item, rest) for item in value)
        value = value[step.index] if step.index < len(value) else None
    return value


def _key(value: Any, name: str) -> Any:
    """One key step; also reads the `[{"name": k, "value": v}]` attribute shape."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(name)
    if isinstance(value, list | tuple):
        # Personalization sometimes serves `attributes` as name/value pairs instead of a
        # map; reading both shapes keeps `attributes.plan` working either way.
        for item in value:
            if isinstance(item, Mapping) and item.get("name") == name and "value" in item:
                return item["value"]
    return None


def _flatten(values: Any) -> list[Any]:
    """Results of a projection; nested projections (`a[].b[]`) give one flat list."""
    result: list[Any] = []
    for value in values:
        if isinstance(value, list):
            result.extend(value)
        elif value is not None:
            result.append(value)
    return result
