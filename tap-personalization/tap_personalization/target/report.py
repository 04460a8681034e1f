"""The run summary and the rejects file: where every input record ended up.

Per mapped object the counts must add up (`received` = written + segment changes +
unchanged + skipped + unmatched + rejected): that is the nothing-lost invariant, checked
before the summary is written. The summary goes to one structured log line, `report.json`,
`report.md` and, in CI, `$GITHUB_STEP_SUMMARY`. Records that could not be applied go to
`rejects.jsonl`, one JSON line each (`outcome` unmatched or rejected, a stable `reason` code
and a message), streamed to disk so a run of millions stays flat in memory. A successful
run's log lines avoid the words Meltano's `config test` treats as failure.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tap_personalization.errors import PersonalizationError
from tap_personalization.target.changes import UNMATCHED, Refusal

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
REJECTS_FILE = "rejects.jsonl"


class RejectThresholdError(PersonalizationError):
    """More records were rejected than `fail_on_rejects` allows (every outcome is written)."""


def reject_allowance(fail_on_rejects: float, input_records: int) -> float:
    """`fail_on_rejects` below 1 is a share of the input, from 1 on a count."""
    return fail_on_rejects * input_records if fail_on_rejects < 1 else fail_on_rejects


@dataclass
class ObjectStats:
    """Outcomes of one mapped object (Contact, Lead, Account) or of segment membership."""

    target: str
    stream: str = ""
    received: int = 0
    written: int = 0
    segment_adds: int = 0
    segment_removes: int = 0
    #: Found, but every value was already delivered: no feed row, no event.
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unmatched: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    clears_not_applied: int = 0

    @property
    def accounted(self) -> int:
        return (self.written + self.segment_adds + self.segment_removes + self.unchanged
                + sum(self.skipped.values()) + sum(self.unmatched.values())
                + sum(self.rejected.values()))

    @property
    def balanced(self) -> bool:
        return self.accounted == self.received

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "stream": self.stream,
            "received": self.received,
            "written": self.written,
            "segment_adds": self.segment_adds,
            "segment_removes": self.segment_removes,
            "unchanged": self.unchanged,
            "skipped": dict(sorted(self.skipped.items())),
            "unmatched": dict(sorted(self.unmatched.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "clears_not_applied": self.clears_not_applied,
        }


@dataclass
class StreamStats:
    records: int = 0
    ignored: bool = False


class RejectsFile:
    """`rejects.jsonl`, created empty at the start of every run (an empty file is an answer)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / REJECTS_FILE
        directory.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = self.path.open("w", encoding="utf-8")
        self.lines = 0

    def write(self, refusal: Refusal) -> None:
        line = {
            "stream": refusal.stream or None,  # none: an input line without a stream
            "object": refusal.sobject or None,
            "id": refusal.key,
            "outcome": refusal.outcome,
            "reason": refusal.reason,
            "message": refusal.message,
            **({"details": refusal.details} if refusal.details else {}),
        }
        self._handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self.lines += 1

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


@dataclass(frozen=True)
class PlannedFile:
    """A feed file a dry run built and did not deliver."""

    feed: str
    rows: int


@dataclass(frozen=True)
class Sample:
    """What a dry run would change on one user: attribute → (current value, new value)."""

    sobject: str
    key: str
    user_id: str
    changes: dict[str, tuple[Any, Any]]
    unchanged: int

    def as_json(self) -> dict[str, Any]:
        return {"object": self.sobject, "id": self.key, "userId": self.user_id,
                "changes": {name: {"old": old, "new": new}
                            for name, (old, new) in self.changes.items()},
                "unchanged": self.unchanged}


@dataclass
class RunReport:
    """Accumulates over the run; rendered once at the end (also when the run fails).

    In a dry run `written` means "would be written", `planned_files` are the feed files that
    were built and not delivered, and `samples` show old → new values of a few users.
    """

    delivery: str
    dry_run: bool = False
    started_at: float = field(default_factory=time.monotonic)
    streams: dict[str, StreamStats] = field(default_factory=dict)
    objects: dict[str, ObjectStats] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    api_calls: Counter[str] = field(default_factory=Counter)
    sftp_uploads: int = 0
    status: str = "running"
    failure: str | None = None
    planned_files: list[PlannedFile] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    full_refresh: bool = False
    #: Feed files of earlier runs by where this run found them (processed, failed, ...).
    earlier_files: Counter[str] = field(default_factory=Counter)
    # Input lines that were not Singer messages (each one a reject line).
    unreadable_lines: int = 0

    def stream(self, name: str) -> StreamStats:
        return self.streams.setdefault(name, StreamStats())

    def object(self, name: str, target: str, stream: str = "") -> ObjectStats:
        return self.objects.setdefault(name, ObjectStats(target, stream))

    def refuse(self, refusal: Refusal) -> None:
        stats = self.objects[refusal.sobject]
        counter = stats.unmatched if refusal.outcome == UNMATCHED else stats.rejected
        counter[refusal.reason] += 1

    @property
    def input_records(self) -> int:
        return sum(s.records for s in self.streams.values() if not s.ignored)

    @property
    def records_read(self) -> int:
        """Every record and unreadable line the run read, ignored streams included."""
        return sum(s.records for s in self.streams.values()) + self.unreadable_lines

    @property
    def rejected_total(self) -> int:
        return (sum(sum(o.rejected.values()) for o in self.objects.values())
                + self.unreadable_lines)

    @property
    def unbalanced(self) -> list[str]:
        return [name for name, stats in self.objects.items() if not stats.balanced]

    def as_json(self) -> dict[str, Any]:
        dry_run = {
            "would_deliver": [{"feed": f.feed, "rows": f.rows} for f in self.planned_files],
            "samples": [sample.as_json() for sample in self.samples],
        } if self.dry_run else {}
        return {
            "status": self.status,
            "failure": self.failure,
            "dry_run": self.dry_run,
            "delivery": self.delivery,
            "elapsed_seconds": round(time.monotonic() - self.started_at, 3),
            "records_read": self.records_read,
            "input_records": self.input_records,
            "ignored_records": sum(s.records for s in self.streams.values() if s.ignored),
            "unreadable_lines": self.unreadable_lines,
            "rejected_records": self.rejected_total,
            "unchanged_records": sum(o.unchanged for o in self.objects.values()),
            "full_refresh": self.full_refresh,
            "earlier_feed_files": dict(sorted(self.earlier_files.items())),
            "unmatched_records": sum(sum(o.unmatched.values()) for o in self.objects.values()),
            "streams": {name: {"records": s.records, "ignored": s.ignored}
                        for name, s in sorted(self.streams.items())},
            "objects": {name: stats.as_json() for name, stats in self.objects.items()},
            "files": list(self.files),
            "api_calls": dict(sorted(self.api_calls.items())),
            "api_calls_total": sum(self.api_calls.values()),
            "sftp_uploads": self.sftp_uploads,
            **dry_run,
        }

    def log_line(self) -> str:
        """One line of JSON: greppable in Meltano's log, parseable by log shippers."""
        return "run summary " + json.dumps(self.as_json(), separators=(",", ":"))

    def to_markdown(self) -> str:
        data = self.as_json()
        written = "would write" if self.dry_run else "written"
        lines = [
            "## target-personalization " + (
                "dry run (nothing was sent to Personalization)" if self.dry_run else "run"),
            "",
            f"Status: **{self.status}**" + (f" — {self.failure}" if self.failure else "")
            + f"; delivery `{self.delivery}`; {data['records_read']} records read "
            + f"({data['input_records']} in mapped streams, {data['ignored_records']} in "
            + "ignored streams"
            + (f", {self.unreadable_lines} unreadable lines" if self.unreadable_lines else "")
            + f"); {data['elapsed_seconds']:.1f} s.",
            "",
            f"| object | stream | target | received | {written} | segment adds "
            "| segment removes | unchanged | skipped | unmatched | rejected |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, stats in self.objects.items():
            lines.append(
                f"| {name} | {stats.stream} | {stats.target} | {stats.received} "
                f"| {stats.written} "
                f"| {stats.segment_adds} | {stats.segment_removes} | {stats.unchanged} "
                f"| {_counts(stats.skipped)} | {_counts(stats.unmatched)} "
                f"| {_counts(stats.rejected)} |")
        calls = ", ".join(f"{kind} {n}" for kind, n in data["api_calls"].items()) or "none"
        lines += ["", f"API calls: {data['api_calls_total']} ({calls})."]
        if self.sftp_uploads:
            lines.append(f"SFTP uploads: {self.sftp_uploads}.")
        if self.full_refresh:
            lines.append("Full refresh: every value was sent, unchanged or not.")
        if self.earlier_files:
            lines.append("Feed files of earlier runs: " + ", ".join(
                f"{n} {where}" for where, n in sorted(self.earlier_files.items()))
                + " (values count as delivered once their file is processed).")
        if self.files:
            lines += ["", "Feed files: " + ", ".join(f"`{name}`" for name in self.files) + "."]
        not_cleared = sum(o.clears_not_applied for o in self.objects.values())
        if not_cleared:
            lines.append(f"Values to clear left as they are (feeds cannot clear): {not_cleared}.")
        ignored = [name for name, s in sorted(self.streams.items()) if s.ignored]
        if ignored:
            lines.append("Ignored streams (not in the mapping): " + ", ".join(ignored) + ".")
        if self.dry_run:
            lines += self._dry_run_markdown()
        return "\n".join(lines) + "\n"

    def _dry_run_markdown(self) -> list[str]:
        planned = ", ".join(f"{f.feed} ({f.rows} rows)" for f in self.planned_files) or "none"
        lines = ["", f"Feed files not delivered: {planned}."]
        if self.samples:
            lines += ["", "Sample of attribute changes (current value from the users export):",
                      ""]
            for sample in self.samples:
                changes = "; ".join(f"{name}: {old!r} → {new!r}"
                                    for name, (old, new) in sample.changes.items())
                lines.append(f"- {sample.sobject} {sample.key} → user {sample.user_id}: "
                             f"{changes or 'no change'}"
                             + (f" ({sample.unchanged} unchanged)" if sample.unchanged else ""))
        return lines

    def write(self, directory: Path, *, final: bool = True) -> dict[str, Path]:
        """Both reports (each replaced whole, never seen half-written), and at the end of the
        run (`final`) the Markdown appended to the CI step summary when set."""
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / REPORT_JSON
        markdown_path = directory / REPORT_MARKDOWN
        _replace(json_path, json.dumps(self.as_json(), indent=2) + "\n")
        markdown = self.to_markdown()
        _replace(markdown_path, markdown)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary and final:
            with Path(summary).open("a", encoding="utf-8") as handle:
                handle.write(markdown)
        return {"json": json_path, "markdown": markdown_path}


def _counts(counter: Counter[str]) -> str:
    total = sum(counter.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) + ")"


def _replace(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a reader sees the old or the new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
