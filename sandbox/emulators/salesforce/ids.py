"""Salesforce record ids: 15-character case-sensitive base plus the case-safe suffix.

Clients compare, dedupe and index by the 18-character form, so the sandbox must issue real
ones (a wrong suffix would make a client's own id check reject them) and must accept the
15-character form and any letter case of the 18-character form on input, as Salesforce does.
"""

from __future__ import annotations

import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_SUFFIX_VALUE = {ch: index for index, ch in enumerate(_SUFFIX_ALPHABET)}
_ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)
_UPPER = frozenset(string.ascii_uppercase)
# Characters 4-5 stand for the server pod in real ids; a fixed value keeps ours recognisable.
POD = "5g"
COUNTER_WIDTH = 10  # 15 = 3 (key prefix) + 2 (pod) + 10 (counter)


def suffix(base: str) -> str:
    """The 3-character checksum: one bit per upper-case letter of each 5-character chunk."""
    upper = _UPPER
    return "".join(
        _SUFFIX_ALPHABET[(base[i] in upper) | (base[i + 1] in upper) << 1
                         | (base[i + 2] in upper) << 2 | (base[i + 3] in upper) << 3
                         | (base[i + 4] in upper) << 4]
        for i in (0, 5, 10))


def make_id(key_prefix: str, counter: int) -> str:
    """The 18-character id of the `counter`-th record of an object."""
    if not 0 <= counter < 62 ** COUNTER_WIDTH:
        raise ValueError(f"id counter {counter} does not fit in {COUNTER_WIDTH} base-62 digits")
    digits = []
    value = counter
    while value:
        value, remainder = divmod(value, 62)
        digits.append(BASE62[remainder])
    base = key_prefix + POD + "".join(reversed(digits)).rjust(COUNTER_WIDTH, "0")
    return base + suffix(base)


def normalize_id(value: str) -> str | None:
    """The canonical 18-character id for a 15- or 18-character id, None if malformed.

    An 18-character id is case-insensitive: its suffix says which letters are upper case.
    """
    if not isinstance(value, str) or len(value) not in (15, 18) or not set(value) <= _ALPHANUMERIC:
        return None
    if len(value) == 15:
        return value + suffix(value)
    if suffix(value[:15]) == value[15:]:
        return value  # already canonical: the common case, kept cheap
    tail = value[15:].upper()
    if any(ch not in _SUFFIX_VALUE for ch in tail):
        return None
    chars = list(value[:15])
    for chunk, ch in enumerate(tail):
        bits = _SUFFIX_VALUE[ch]
        for position in range(5):
            index = chunk * 5 + position
            upper = bool(bits & (1 << position))
            if upper and not chars[index].isalpha():
                return None
            chars[index] = chars[index].upper() if upper else chars[index].lower()
    base = "".join(chars)
    return base + tail


def key_prefix(record_id: str) -> str:
    return record_id[:3]
