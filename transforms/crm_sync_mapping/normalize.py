"""Normalisers that turn a match value into a comparison key.

Both sides of a match go through the same normaliser, so "Ada@Example.com " in
Personalization finds "ada@example.com" in Salesforce, and "ACME, Incorporated" finds
"Acme Inc.". A normaliser never raises: a value that normalises to nothing is `None`,
which the matcher treats as "no key" (the record cannot match on this rule).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

# Legal-form words dropped from the END of a company name. Dots are removed before the
# comparison, so "L.L.C." arrives here as "llc" and "S.A." as "sa".
LEGAL_SUFFIXES = frozenset({
    "ag", "bv", "co", "company", "corp", "corporation", "gmbh", "inc", "incorporated",
    "kg", "limited", "llc", "llp", "lp", "ltd", "nv", "plc", "pty", "sa", "sarl", "spa",
    "srl",
})

_JOINING_PUNCTUATION = re.compile(r"[.'\u2019`]")  # "L.L.C." → "llc", "O'Neil" → "oneil"
_SPACES = re.compile(r"\s+")


def normalize_trim(value: str) -> str:
    """Surrounding blanks are never meaningful in a key."""
    return value.strip()


def normalize_lowercase(value: str) -> str:
    """For keys compared without case (Salesforce's own text comparisons ignore case)."""
    return value.lower()


def normalize_email(value: str) -> str:
    """Emails are typed by people: NFC so composed/decomposed accents agree, no case."""
    return unicodedata.normalize("NFC", value).strip().lower()


def normalize_company_name(value: str) -> str:
    """Reduce a company name to what survives formatting differences between systems.

    "Example Corp." and "Example Corporation", or "ACME, Incorporated" and "Acme Inc.",
    are the same company written differently: case, punctuation and the legal form vary.
    A name made only of a legal word (a company called "Co") keeps that word.
    """
    text = unicodedata.normalize("NFKC", value).casefold()
    text = _JOINING_PUNCTUATION.sub("", text)
    text = "".join(
        char if not unicodedata.category(char).startswith(("P", "S")) else " "
        for char in text
    )
    words = _SPACES.sub(" ", text).strip().split(" ")
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "trim": normalize_trim,
    "lowercase": normalize_lowercase,
    "email": normalize_email,
    "company_name": normalize_company_name,
}


def apply_normalizers(value: object, names: Iterable[str]) -> str | None:
    """Key of a raw value: text, normalised in order; `None` when missing or blank.

    Numbers are keyed by their text so a numeric id still matches a text field; a list
    or a map cannot be a key.
    """
    if value is None or isinstance(value, dict | list | tuple):
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = value if isinstance(value, str) else str(value)
    for name in names:
        text = NORMALIZERS[name](text)
    return text if text.strip() else None
