"""API versions the sandbox answers to (Salesforce's 20.0 to 62.0)."""

from __future__ import annotations

import re

OLDEST, NEWEST = 20, 62
SUPPORTED = tuple(f"{major}.0" for major in range(OLDEST, NEWEST + 1))
_VERSION = re.compile(r"^(\d{2})\.0$")


def parse_version(text: str, *, prefix: str = "") -> str | None:
    """`"v59.0"` (with prefix "v") or `"59.0"` -> `"59.0"`; None if unsupported."""
    if prefix:
        if not text.startswith(prefix):
            return None
        text = text[len(prefix):]
    match = _VERSION.match(text)
    if match is None or not OLDEST <= int(match[1]) <= NEWEST:
        return None
    return text
