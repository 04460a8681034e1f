"""Cutting Bulk batches so that one parent record's children share a batch.

Salesforce locks a Contact's Account (a CampaignMember's Campaign) while it writes the
child. Batches of a Parallel job run at the same time, so children of one parent spread
over several batches fail `UNABLE_TO_LOCK_ROW`; Salesforce's guidance is to order the
records by parent so that each parent's children land in one batch. The writer hands the
ready items of its queue to `cut_batches`; the parent ids come from the match look-up,
which reads the parent field along (`parent_field`), at no extra call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

# Child object -> the reference field whose record Salesforce locks with it.
PARENT_FIELDS = {"Contact": "AccountId", "CampaignMember": "CampaignId"}


class Sized(Protocol):
    """What cutting needs of a write: its parent and the bytes it takes in a batch."""

    parent_id: str | None
    size: int


_Item = TypeVar("_Item", bound=Sized)


def parent_field(sobject: str, describe: Mapping[str, Any]) -> str | None:
    """The locking parent's field of `sobject` as describe spells it, if the user sees it."""
    wanted = PARENT_FIELDS.get(sobject)
    if wanted is None:
        return None
    for item in describe.get("fields", []):
        if str(item.get("name", "")).lower() == wanted.lower():
            return str(item["name"])
    return None


def parent_key(value: Any) -> str | None:
    """Ids compare on their first 15 characters (the 18-character form adds a checksum)."""
    return None if value is None or value == "" else str(value)[:15]


def _by_parent(items: Iterable[_Item]) -> list[list[_Item]]:
    """Items grouped by parent, groups in the order their first item came."""
    groups: dict[str | None, list[_Item]] = {}
    loose: list[list[_Item]] = []
    for item in items:
        if item.parent_id is None:
            loose.append([item])
        else:
            groups.setdefault(item.parent_id, []).append(item)
    return [*groups.values(), *loose]


def cut_batches(items: Sequence[_Item], *, batch_size: int, max_bytes: int,
                grouped: bool, overhead: int = 2) -> list[list[_Item]]:
    """`items` cut into batches of at most `batch_size` items and `max_bytes` bytes.

    `grouped`: a parent's items go into one batch, started afresh when the group does not
    fit into the current one; only a group larger than a whole batch is split. Otherwise
    the input order is kept. The last batch may be partly filled: the caller decides
    whether it leaves now or waits for more items.
    """
    groups = _by_parent(items) if grouped else [[item] for item in items]
    batches: list[list[_Item]] = []
    batch: list[_Item] = []
    size = overhead

    def fits(count: int, extra: int) -> bool:
        return len(batch) + count <= batch_size and size + extra <= max_bytes

    for group in groups:
        group_bytes = sum(item.size for item in group)
        if batch and not fits(len(group), group_bytes):
            batches.append(batch)
            batch, size = [], overhead
        for item in group:  # only a group larger than a batch fills more than one
            if batch and not fits(1, item.size):
                batches.append(batch)
                batch, size = [], overhead
            batch.append(item)
            size += item.size
    if batch:
        batches.append(batch)
    return batches

