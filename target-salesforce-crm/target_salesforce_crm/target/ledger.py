"""Every input record's outcome, exactly once per CRM object it is mapped to.

The settle-and-account step of the flow. Outcomes decided before sending (invalid,
missing key, ambiguous, unmatched, refused by a check) are counted and written at once;
a record handed to the writer is registered with how many writes it has out, and is
counted when the last of them is answered, by the worst answer. The report's balance
(input = updated + created + unchanged + unmatched + ambiguous + rejected) and a STATE
message's promise both rest on this ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from target_salesforce_crm.target.matching import MatchResult
from target_salesforce_crm.target.outcomes import (
    AMBIGUOUS_MATCH,
    STAGE_MATCH,
    STAGE_SALESFORCE,
    OutcomeFiles,
    Reject,
    SourceRef,
)
from target_salesforce_crm.target.report import ObjectStats, RunReport
from target_salesforce_crm.target.writer import WriteItem, WriteOutcome

# Which outcome a record gets when its CRM records fared differently (rejected beats all).
_STATUS_RANK = {"unchanged": 0, "updated": 1, "created": 2}


@dataclass(slots=True)
class _Open:
    """One input record's outcome for one object while some of its writes are unanswered."""

    remaining: int = 0
    status: str | None = None
    code: str | None = None


class OutcomeLedger:
    """Counts into the run's report and writes the outcome files' lines."""

    def __init__(self, report: RunReport, outcomes: OutcomeFiles) -> None:
        self.report = report
        self.outcomes = outcomes
        # (object, drain, position) -> outcome so far, while writes of that record are out
        self._open: dict[tuple[str, int, int], _Open] = {}

    # -- outcomes decided before sending -------------------------------------------------

    def invalid(self, reject: Reject) -> None:
        """A record its stream's schema refuses: counted once for the stream, not per object."""
        self.report.stream(reject.source.stream).invalid += 1
        self.outcomes.reject(reject)

    def reject(self, stats: ObjectStats, reject: Reject) -> None:
        stats.rejected[reject.code] += 1
        self.outcomes.reject(reject)

    def ambiguous(self, stats: ObjectStats, sobject: str, policy: str,
                  result: MatchResult) -> None:
        stats.ambiguous += 1
        self.outcomes.reject(Reject(
            result.candidate.source, sobject, AMBIGUOUS_MATCH,
            f"{result.reason}; ambiguity policy '{policy}' writes none of them",
            STAGE_MATCH, fields=[result.rule] if result.rule else [],
        ))

    def unmatched(self, stats: ObjectStats, result: MatchResult, tried: list[str], *,
                  handed_on: bool) -> None:
        """No CRM record; written to unmatched.jsonl by the last object that tried it."""
        stats.unmatched += 1
        if not handed_on:
            self.outcomes.unmatched(result.candidate.source, tried, result.keys)

    # -- outcomes of writes ------------------------------------------------------------

    def expect(self, sobject: str, items: Sequence[WriteItem]) -> None:
        """Register the writes of each input record before any of them can be answered."""
        for item in items:
            for source in item.sources:
                key = (sobject, source.drain, source.position)
                entry = self._open.get(key)
                if entry is None:
                    entry = self._open[key] = _Open()
                entry.remaining += 1

    def fold(self, sobject: str, outcomes: Sequence[WriteOutcome]) -> None:
        """Exactly one outcome per input record and object, counted once all its writes are.

        Rejected beats created beats updated beats unchanged: a record whose two CRM
        records (ambiguity policy `update_all`) fared differently is reported by the worse.
        """
        stats = self.report.object(sobject)
        for outcome in outcomes:
            rejected = outcome.status == "rejected"
            for source in outcome.item.sources:
                if rejected:
                    self.outcomes.reject(_salesforce_reject(source, sobject, outcome))
                key = (sobject, source.drain, source.position)
                entry = self._open[key]
                if rejected:
                    if entry.status != "rejected":
                        entry.status, entry.code = "rejected", outcome.code
                elif entry.status is None or (
                    entry.status != "rejected"
                    and _STATUS_RANK[outcome.status] > _STATUS_RANK[entry.status]
                ):
                    entry.status = outcome.status
                entry.remaining -= 1
                if entry.remaining == 0:
                    del self._open[key]
                    _count(stats, entry)

    def check_settled(self) -> None:
        """Raise when a record handed to the writer came back without an outcome."""
        if self._open:  # the writer promises an outcome per item: never drop a record
            raise RuntimeError(
                f"{len(self._open)} records came back without an outcome; this is a bug, "
                "please report it with the run's log"
            )


def _salesforce_reject(source: SourceRef, sobject: str, outcome: WriteOutcome) -> Reject:
    return Reject(
        source, sobject, outcome.code or "UNKNOWN_ERROR", outcome.message,
        STAGE_SALESFORCE, crm_id=outcome.crm_id, fields=outcome.fields,
        values=outcome.item.payload,
    )


def _count(stats: ObjectStats, entry: _Open) -> None:
    if entry.status == "rejected":
        stats.rejected[entry.code or "UNKNOWN_ERROR"] += 1
    elif entry.status == "created":
        stats.created += 1
    elif entry.status == "unchanged":
        stats.unchanged += 1
    else:
        stats.updated += 1
