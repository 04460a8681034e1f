"""The run summary: what happened to every record, and what it cost in API calls.

The same numbers go to one structured log line, `report.json` (for machines and the next
run), `report.md` (for people) and, in CI, `$GITHUB_STEP_SUMMARY`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"


class RejectThresholdError(Exception):
    """More records were rejected than `fail_on_rejects` allows (outcomes are written)."""


def reject_allowance(fail_on_rejects: float, input_records: int) -> float:
    """`fail_on_rejects` below 1 is a share of the input, from 1 on a count."""
    return fail_on_rejects * input_records if fail_on_rejects < 1 else fail_on_rejects


@dataclass
class ObjectStats:
    """Outcomes of one CRM object; `balanced` is the nothing-lost invariant."""

    candidates: int = 0
    matched: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    updated: int = 0
    created: int = 0
    unchanged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    # Of `retried`: rows sent again in a Serial job after UNABLE_TO_LOCK_ROW.
    lock_retried: int = 0
    lookup_calls: int = 0
    bulk_jobs: int = 0
    bulk_batches: int = 0
    # Dry run: a few records' field-level changes, old → new (bounded, see SAMPLE_SIZE).
    changes_sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def accounted(self) -> int:
        return (self.updated + self.created + self.unchanged + self.unmatched + self.ambiguous
                + self.rejected_total)

    @property
    def balanced(self) -> bool:
        return self.accounted == self.candidates

    def as_json(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "ambiguous": self.ambiguous,
            "updated": self.updated,
            "created": self.created,
            "unchanged": self.unchanged,
            "rejected": self.rejected_total,
            "rejected_by_code": dict(sorted(self.rejected.items())),
            "retried": self.retried,
            "lock_retried": self.lock_retried,
            "lookup_calls": self.lookup_calls,
            "bulk_jobs": self.bulk_jobs,
            "bulk_batches": self.bulk_batches,
            **({"changes_sample": self.changes_sample} if self.changes_sample else {}),
        }


@dataclass
class StreamStats:
    """Records received per input stream; `ignored` when the mapping does not name it."""

    records: int = 0
    invalid: int = 0
    ignored: bool = False


@dataclass
class RunReport:
    """Accumulates across drains; rendered once at the end (or when the run fails)."""

    started_at: float = field(default_factory=time.monotonic)
    streams: dict[str, StreamStats] = field(default_factory=dict)
    objects: dict[str, ObjectStats] = field(default_factory=dict)
    api_calls: Counter[str] = field(default_factory=Counter)
    api_usage: tuple[int, int] | None = None
    status: str = "running"
    dry_run: bool = False
    # With "2.0" each Bulk batch is one ingest job: `bulk_batches` counts those jobs.
    bulk_api: str = "1.0"
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    # Input lines that were not Singer messages (each one a reject line).
    unreadable_lines: int = 0
    # Per object: what the batches an ended run left unanswered did (see recovery.py).
    recovered: dict[str, Counter[str]] = field(default_factory=dict)

    def stream(self, name: str) -> StreamStats:
        return self.streams.setdefault(name, StreamStats())

    def object(self, name: str) -> ObjectStats:
        return self.objects.setdefault(name, ObjectStats())

    @property
    def input_records(self) -> int:
        """Records of mapped streams: the base of the `fail_on_rejects` share."""
        return sum(s.records for s in self.streams.values() if not s.ignored)

    @property
    def ignored_records(self) -> int:
        return sum(s.records for s in self.streams.values() if s.ignored)

    @property
    def records_read(self) -> int:
        """Every record and unreadable line the run read, ignored streams included."""
        return sum(s.records for s in self.streams.values()) + self.unreadable_lines

    @property
    def rejected_total(self) -> int:
        invalid = sum(s.invalid for s in self.streams.values()) + self.unreadable_lines
        return invalid + sum(o.rejected_total for o in self.objects.values())

    @property
    def elapsed_seconds(self) -> float:
        return round(time.monotonic() - self.started_at, 3)

    def as_json(self) -> dict[str, Any]:
        # `error` only when there is one: `meltano config test` fails a loader whose output
        # mentions the word at all.
        return {
            "status": self.status,
            "dry_run": self.dry_run,
            "bulk_api": self.bulk_api,
            **({"error": self.error} if self.error else {}),
            "elapsed_seconds": self.elapsed_seconds,
            "records_read": self.records_read,
            "input_records": self.input_records,
            "ignored_records": self.ignored_records,
            "unreadable_lines": self.unreadable_lines,
            "rejected_records": self.rejected_total,
            "streams": {
                name: {"records": s.records, "invalid": s.invalid, "ignored": s.ignored}
                for name, s in sorted(self.streams.items())
            },
            "objects": {name: o.as_json() for name, o in self.objects.items()},
            **({"recovered": {name: dict(sorted(counts.items()))
                              for name, counts in sorted(self.recovered.items())}}
               if self.recovered else {}),
            "api_calls": dict(sorted(self.api_calls.items())),
            "api_calls_total": sum(self.api_calls.values()),
            "api_usage": (
                {"used": self.api_usage[0], "max": self.api_usage[1]} if self.api_usage else None
            ),
            "files": self.files,
        }

    def log_line(self) -> str:
        """One line, JSON: greppable in Meltano's log and parseable by log shippers."""
        return "run summary " + json.dumps(self.as_json(), separators=(",", ":"))

    def to_markdown(self) -> str:
        data = self.as_json()
        lines = [
            "## target-salesforce-crm " + ("dry run" if self.dry_run else "run"),
            "",
            *(["Dry run: nothing was written; *updated* and *created* are what a real run "
               "would write.", ""] if self.dry_run else []),
            f"Status: **{self.status}**"
            + (f" — {self.error}" if self.error else "")
            + f"; {data['records_read']} records read ({data['input_records']} in mapped "
            + f"streams, {data['ignored_records']} in ignored streams"
            + (f", {self.unreadable_lines} unreadable lines" if self.unreadable_lines else "")
            + ")"
            + f"; {data['elapsed_seconds']:.1f} s.",
            "",
            "| object | candidates | matched | unmatched | ambiguous | updated | created "
            "| unchanged | rejected | retried | of them after a lock |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, stats in data["objects"].items():
            lines.append(
                f"| {name} | {stats['candidates']} | {stats['matched']} | {stats['unmatched']} "
                f"| {stats['ambiguous']} | {stats['updated']} | {stats['created']} "
                f"| {stats['unchanged']} | {stats['rejected']} | {stats['retried']} "
                f"| {stats['lock_retried']} |"
            )
        codes = Counter[str]()
        for stats in self.objects.values():
            codes.update(stats.rejected)
        if codes:
            lines += ["", "Rejected by code: " + ", ".join(
                f"`{code}` {count}" for code, count in sorted(codes.items())
            ) + "."]
        lines += _sample_lines(self.objects)
        for name, counts in sorted(self.recovered.items()):
            lines += ["", f"Recovered from an ended run on {name}: " + ", ".join(
                f"{count} {what}" for what, count in sorted(counts.items())) + " (its "
                "records are not written again)."]
        calls = ", ".join(f"{kind} {n}" for kind, n in data["api_calls"].items()) or "none"
        lines += ["", f"API calls: {data['api_calls_total']} ({calls}); Bulk API "
                      f"{self.bulk_api}."]
        if self.api_usage:
            lines.append(f"Daily API usage after the run: {self.api_usage[0]}/{self.api_usage[1]}.")
        ignored = [n for n, s in sorted(self.streams.items()) if s.ignored]
        if ignored:
            lines.append("Ignored streams (not in the mapping): " + ", ".join(ignored) + ".")
        if self.files:
            lines += ["", "Files: " + ", ".join(f"{k}: `{v}`" for k, v in self.files.items())]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, *, final: bool = True) -> dict[str, Path]:
        """Write both reports (each replaced whole, never seen half-written), and at the end
        of the run (`final`) append the Markdown to the CI step summary when set."""
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


def _sample_lines(objects: dict[str, ObjectStats]) -> list[str]:
    """Dry run: the sampled field changes as a list a reviewer can scan."""
    lines: list[str] = []
    for name, stats in objects.items():
        if not stats.changes_sample:
            continue
        lines += ["", f"Sample of changes on {name}:"]
        for sample in stats.changes_sample:
            changes = "; ".join(
                f"{field} {change['old']!r} → {change['new']!r}"
                for field, change in sample["changes"].items()
            )
            lines.append(f"- {sample['key']} ({sample['crm_id']}): {changes}")
    return lines


def _replace(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a reader sees the old or the new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
