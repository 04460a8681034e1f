"""What each look-up result becomes: a write for the Bulk writer, or an outcome at once.

The map half of the map-and-diff step, per CRM object. A matched record is mapped and
checked against describe before anything is sent (what Salesforce would refuse becomes a
reject here, at no API cost); an unmatched record is created when the object upserts on
an external id, handed to the next object (Contact → Lead) or reported unmatched; an
ambiguous one is reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from target_salesforce_crm.target.batching import parent_key
from target_salesforce_crm.target.changes import ChangeCheck
from target_salesforce_crm.target.ledger import OutcomeLedger
from target_salesforce_crm.target.matching import Candidate, MatchResult
from target_salesforce_crm.target.outcomes import (
    INVALID_VALUE,
    MISSING_EXTERNAL_ID,
    MISSING_KEY,
    STAGE_INPUT,
    STAGE_MAPPING,
    STAGE_PRECHECK,
    Reject,
    SourceRef,
)
from target_salesforce_crm.target.preflight import ValueChecker
from target_salesforce_crm.target.report import ObjectStats
from target_salesforce_crm.target.validation import Pending
from target_salesforce_crm.target.writer import WriteItem


@dataclass
class ObjectWrites:
    """What one object step of a drain hands on: writes, and who found no CRM record."""

    updates: list[WriteItem] = field(default_factory=list)
    creates: list[WriteItem] = field(default_factory=list)
    unmatched: set[int] = field(default_factory=set)


class Verdicts:
    """Turns candidates and their look-up results into writes or decided outcomes."""

    def __init__(self, ledger: OutcomeLedger, changes: ChangeCheck,
                 checkers: Mapping[str, ValueChecker],
                 parents: Mapping[str, str] | None = None) -> None:
        self.ledger = ledger
        self.changes = changes
        self.checkers = checkers
        # object -> its locking parent's field (Contact: AccountId), read by the look-up
        self.parents = parents if parents is not None else {}

    def candidates(
        self, stats: ObjectStats, stream: str, om: Any, records: Sequence[Pending], drain: int,
    ) -> list[Candidate]:
        """Records that carry the mapping's key; the others are rejected as MISSING_KEY."""
        candidates: list[Candidate] = []
        for pending in records:
            key = om.record_key(pending.record)
            if key is None:
                source = SourceRef(stream, f"#{pending.position + 1}", pending.position, drain)
                self.ledger.reject(stats, Reject(
                    source, om.sobject, MISSING_KEY,
                    f"record #{pending.position + 1} of stream '{stream}' has no '{om.key}' "
                    "(the mapping's key property)", STAGE_INPUT,
                ))
                continue
            candidates.append(Candidate(SourceRef(stream, key, pending.position, drain),
                                        pending.record))
        return candidates

    def decide(
        self, stats: ObjectStats, om: Any, result: MatchResult, writes: ObjectWrites,
        tried: list[str], *, handed_on: bool,
    ) -> None:
        source = result.candidate.source
        if result.status == "ambiguous":
            self.ledger.ambiguous(stats, om.sobject, om.ambiguity, result)
            return
        upsert = om.write.mode == "upsert"
        if result.status == "unmatched" and not upsert:
            writes.unmatched.add(source.position)
            self.ledger.unmatched(stats, result, tried, handed_on=handed_on)
            return
        if result.status == "matched":
            stats.matched += 1
        values = self._map(stats, om, result)
        if values is None:
            return
        if result.status == "matched":
            if upsert:
                values = {**external_id_value(om, result.candidate.record), **values}
            if self._prechecked(stats, om, source, values, result.ids[0]):
                self.changes.keep_current(result.rows)
                parent = self.parents.get(om.sobject)
                writes.updates.extend(
                    WriteItem([source], {"Id": crm_id, **values}, crm_id,
                              created_date=_text(result.rows.get(crm_id, {}).get("CreatedDate")),
                              parent_id=parent_key(result.rows.get(crm_id, {}).get(parent)
                                                   or values.get(parent)) if parent else None)
                    for crm_id in result.ids
                )
            return
        defaults = self._create_values(stats, om, result)
        if defaults is None:
            return
        payload = {**defaults, **values}
        external_id = om.write.external_id
        payload = {**external_id_value(om, result.candidate.record), **payload}
        if payload.get(external_id) in (None, ""):
            self.ledger.reject(stats, Reject(
                source, om.sobject, MISSING_EXTERNAL_ID,
                f"cannot create a {om.sobject} for {source.key}: no value for the external id "
                f"{external_id}", STAGE_MAPPING, fields=[external_id],
            ))
            return
        if self._prechecked(stats, om, source, payload, None, create=True):
            parent = self.parents.get(om.sobject)
            writes.creates.append(WriteItem(
                [source], payload, None,
                parent_id=parent_key(payload.get(parent)) if parent else None))

    def _map(self, stats: ObjectStats, om: Any, result: MatchResult) -> dict[str, Any] | None:
        values, problems = om.map_record(result.candidate.record)
        if not problems:
            return dict(values)
        self._mapping_reject(stats, om, result, problems)
        return None

    def _mapping_reject(
        self, stats: ObjectStats, om: Any, result: MatchResult, problems: list[str]
    ) -> None:
        source = result.candidate.source
        self.ledger.reject(stats, Reject(
            source, om.sobject, INVALID_VALUE,
            f"record {source.key}: " + "; ".join(problems), STAGE_MAPPING,
            crm_id=result.ids[0] if result.ids else None,
            fields=[p.split(":", 1)[0] for p in problems],
        ))

    def _create_values(
        self, stats: ObjectStats, om: Any, result: MatchResult
    ) -> dict[str, Any] | None:
        values, problems = om.create_values(result.candidate.record)
        if problems:
            self._mapping_reject(stats, om, result, problems)
            return None
        return {name: value for name, value in values.items() if value is not None}

    def _prechecked(
        self, stats: ObjectStats, om: Any, source: SourceRef, payload: dict[str, Any],
        crm_id: str | None, *, create: bool = False,
    ) -> bool:
        checker = self.checkers[om.sobject]
        problems = checker.check(payload)
        if create:
            problems = checker.check_create(payload) + problems
        if not problems:
            return True
        self.ledger.reject(stats, Reject(
            source, om.sobject, problems[0].code,
            "; ".join(p.message for p in problems), STAGE_PRECHECK, crm_id=crm_id,
            fields=[p.field for p in problems], values=payload,
        ))
        return False


def external_id_value(om: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """The upsert key's value, from the match rule on that field (e.g. the user id)."""
    for rule in om.match:
        if rule.field == om.write.external_id:
            key = rule.key(record)
            return {} if key is None else {rule.field: key}
    return {}


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
