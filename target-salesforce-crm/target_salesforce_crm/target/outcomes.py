"""Per-record outcome files: every input record that was not written ends up in one of them.

`rejects.jsonl` holds records refused on purpose (invalid input, ambiguous match, a value
the CRM would refuse, or a per-record error from the Bulk API); `unmatched.jsonl` holds
records with no CRM counterpart. Both are JSON Lines so a run of millions of records
streams to disk instead of accumulating in memory, and so a later run (or a warehouse
load) can pick the rows up again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REJECTS_FILE = "rejects.jsonl"
# What one reject line repeats of a value and of its message, at most.
MAX_VALUE_CHARS = 200
MAX_MESSAGE_CHARS = 1_000
UNMATCHED_FILE = "unmatched.jsonl"

# Stages tell a reader whether Salesforce ever saw the record.
STAGE_INPUT = "input"  # the record itself is unusable (schema, missing key)
STAGE_MATCH = "match"  # the look-up could not decide (ambiguous)
STAGE_MAPPING = "mapping"  # a mapped value could not be converted
STAGE_PRECHECK = "precheck"  # refused before sending: Salesforce would refuse it
STAGE_SALESFORCE = "salesforce"  # refused by the Bulk API

# Codes of rejects decided on our side; Salesforce's own codes are kept verbatim.
INVALID_RECORD = "INVALID_RECORD"
MISSING_KEY = "MISSING_KEY"
AMBIGUOUS_MATCH = "AMBIGUOUS_MATCH"
INVALID_VALUE = "INVALID_VALUE"
MISSING_EXTERNAL_ID = "MISSING_EXTERNAL_ID"
UNREADABLE_LINE = "UNREADABLE_LINE"  # an input line that is not a Singer message


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Names one input record in every file and message (never its whole content).

    `drain` (numbered from 1 in a run) and `position` (within its drain) tell apart two
    records that share a key, also when their writes finish in a later drain.
    """

    stream: str | None  # None: an input line whose stream could not be read
    key: str
    position: int = field(default=-1, compare=False)
    drain: int = field(default=0, compare=False)


@dataclass
class Reject:
    """One refused record, with what a person needs to fix it."""

    source: SourceRef
    sobject: str | None
    code: str
    message: str
    stage: str
    crm_id: str | None = None
    fields: list[str] = field(default_factory=list)
    values: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "stream": self.source.stream,
            "key": self.source.key,
            "object": self.sobject,
            "crm_id": self.crm_id,
            "stage": self.stage,
            "code": self.code,
            "message": capped(self.message, MAX_MESSAGE_CHARS),
            "fields": list(self.fields),
            "values": None if self.values is None else {
                name: capped(value, MAX_VALUE_CHARS) for name, value in self.values.items()},
        }


def capped(value: Any, limit: int) -> Any:
    """A long text shortened for a reject line: its start and its length, never all of it.

    A 1 MB value refused on each of thousands of records must not make rejects.jsonl a copy
    of it per record.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value)} characters)"
    return value


class OutcomeFiles:
    """Appends outcome lines; files are truncated once per run so each run's files stand alone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, IO[str]] = {}
        self.counts: dict[str, int] = {REJECTS_FILE: 0, UNMATCHED_FILE: 0}

    @property
    def rejects_path(self) -> Path:
        return self.directory / REJECTS_FILE

    @property
    def unmatched_path(self) -> Path:
        return self.directory / UNMATCHED_FILE

    def open(self) -> None:
        """Create both files up front: an empty file is an answer, a missing one is a question."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in (REJECTS_FILE, UNMATCHED_FILE):
            if name not in self._files:
                self._files[name] = (self.directory / name).open("w", encoding="utf-8")

    def reject(self, reject: Reject) -> None:
        self._write(REJECTS_FILE, reject.as_json())

    def unmatched(
        self, source: SourceRef, sobjects: list[str], match_keys: dict[str, str | None]
    ) -> None:
        """`sobjects` lists every object tried, so a Contact-then-Lead miss is one line."""
        self._write(
            UNMATCHED_FILE,
            {
                "stream": source.stream,
                "key": source.key,
                "objects": sobjects,
                "match_keys": match_keys,
            },
        )

    def flush(self) -> None:
        """Called after every drain and settle: a STATE message promises these lines exist."""
        for handle in self._files.values():
            handle.flush()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _write(self, name: str, line: dict[str, Any]) -> None:
        if name not in self._files:
            self.open()
        self._files[name].write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self.counts[name] += 1
