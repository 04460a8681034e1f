"""What changed: which matched records to send, and field by field for a dry run.

The diff half of the map-and-diff step. `ChangeCheck` compares each update with the
fingerprint of what was last confirmed written to that CRM record and holds back the ones
whose mapped values are the same (reported as unchanged); fingerprints are recorded only
for writes that batch results confirmed.

`field_changes` is what a dry run shows a reviewer. Values come back from SOQL typed by
describe (numbers as numbers, datetimes as Salesforce text) while the mapping produces JSON
values, so equal values in different spellings (`12.0` and `12`, `...Z` and `...+0000`)
must not be shown as changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from target_salesforce_crm.target.fingerprints import FingerprintStore, fields_hash, values_hash
from target_salesforce_crm.target.report import ObjectStats
from target_salesforce_crm.target.writer import WriteItem, WriteOutcome, json_ready, merge_items

# Dry run: records per object whose field-level changes the report shows.
SAMPLE_SIZE = 5


def _as_datetime(value: str) -> dt.datetime | None:
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit():
        return None
    text = text.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # Salesforce writes +0000
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def same_value(old: Any, new: Any) -> bool:
    """Equal as Salesforce stores them (numbers by value, datetimes by instant)."""
    new = json_ready(new)
    if old is None or new is None:
        return old in (None, "") and new in (None, "")
    if isinstance(old, bool) or isinstance(new, bool):
        return old == new
    if isinstance(old, int | float) and isinstance(new, int | float):
        return float(old) == float(new)
    if isinstance(old, str) and isinstance(new, str):
        if old == new:
            return True
        old_time, new_time = _as_datetime(old), _as_datetime(new)
        return old_time is not None and old_time == new_time
    return bool(old == new)


def field_changes(current: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """`{field: {"old", "new"}}` for every sent field whose value differs (Id excluded)."""
    by_lower = {name.lower(): value for name, value in current.items()}
    changes: dict[str, Any] = {}
    for name, new in payload.items():
        if name.lower() == "id":
            continue
        old = by_lower.get(name.lower())
        if not same_value(old, new):
            changes[name] = {"old": old, "new": json_ready(new)}
    return changes


class ChangeCheck:
    """Splits a drain's updates into the changed and the unchanged, and remembers writes.

    `org` names the org fingerprints belong to (a refreshed sandbox shares production's
    Ids); `is_pending(sobject, crm_id)` is true while an earlier write of that record is
    unanswered, whose fingerprint is then stale.
    """

    def __init__(
        self, fingerprints: FingerprintStore, *, org: Callable[[], str],
        is_pending: Callable[[str, str], bool], full_refresh: bool, dry_run: bool,
    ) -> None:
        self.fingerprints = fingerprints
        self._org = org
        self._is_pending = is_pending
        self.full_refresh = full_refresh
        self.dry_run = dry_run
        # Dry run only: current CRM values of the records matched in this object step.
        self._current: dict[str, dict[str, Any]] = {}

    def read_fields(self, om: Any) -> list[str]:
        """Fields the look-up reads besides what matching needs (same call, no extra one).

        `CreatedDate` ties a fingerprint to one record's life: an Id issued again (an org
        reset, a sandbox refreshed from production) is not mistaken for the record written
        before. A dry run also reads the mapped fields to show old → new.
        """
        names = ["CreatedDate"]  # also under full_refresh, which rewrites the fingerprints
        if self.dry_run:
            names += [f.target for f in om.fields]
        return names

    def split(
        self, om: Any, updates: list[WriteItem]
    ) -> tuple[list[WriteItem], list[WriteItem]]:
        """Split updates into the ones to send and the ones whose values were last written.

        Items are merged per CRM Id first (as the writer would), so the fingerprint is that
        of the payload actually sent; `full_refresh` sends everything.
        """
        merged, _count = merge_items(updates, lambda item: item.crm_id)
        if self.full_refresh:
            return merged, []
        fields = fingerprint_fields(om)
        # A record whose earlier write is still out is sent again: its fingerprint is stale.
        stored = self.fingerprints.lookup(
            self._org(), om.sobject, fields_hash(fields),
            [item.crm_id for item in merged
             if item.crm_id and not self._is_pending(om.sobject, item.crm_id)],
        )
        if not stored:
            return merged, []
        changed: list[WriteItem] = []
        unchanged: list[WriteItem] = []
        for item in merged:
            known = stored.get(item.crm_id or "")
            same = known is not None and item.created_date is not None and known == values_hash(
                item.payload, fields, item.created_date)
            (unchanged if same else changed).append(item)
        return changed, unchanged

    def remember(self, om: Any, outcomes: Sequence[WriteOutcome],
                 created_dates: Mapping[str, str] | None = None) -> None:
        """Fingerprint only what batch results confirmed written (never in a dry run).

        A created record's CreatedDate is unknown until something reads it: its fingerprint
        is taken the first time a run updates it, unless `created_dates` has it (a recovery
        reads them, so records an ended run created are not written again).
        """
        if self.dry_run:
            return
        fields = fingerprint_fields(om)
        dates = created_dates or {}
        entries: list[tuple[str, str]] = []
        for outcome in outcomes:
            if not outcome.crm_id:
                continue
            created = (outcome.item.created_date if outcome.status == "updated"
                       else dates.get(outcome.crm_id) if outcome.status == "created" else None)
            if created:
                entries.append((outcome.crm_id,
                                values_hash(outcome.item.payload, fields, created)))
        self.fingerprints.record(self._org(), om.sobject, fields_hash(fields), entries)

    # -- dry run: old → new --------------------------------------------------------------

    def keep_current(self, rows: Mapping[str, dict[str, Any]]) -> None:
        """Dry run: the CRM values a look-up read, until the object step is sampled."""
        if self.dry_run:
            self._current.update(rows)

    def sample(self, stats: ObjectStats, items: list[WriteItem]) -> None:
        """Dry run: old → new of a few records, from the values read in the look-up."""
        for item in items:
            if len(stats.changes_sample) >= SAMPLE_SIZE:
                return
            current = self._current.get(item.crm_id or "")
            if current is None:
                continue
            changes = field_changes(current, item.payload)
            if changes:
                stats.changes_sample.append({
                    "key": item.sources[0].key, "crm_id": item.crm_id, "changes": changes,
                })

    def forget_current(self) -> None:
        self._current.clear()


def fingerprint_fields(om: Any) -> list[str]:
    """The mapped field set: what an update of a matched record sends besides the Id."""
    names = [f.target for f in om.fields]
    if om.write.mode == "upsert":
        names.append(om.write.external_id)
    return names
