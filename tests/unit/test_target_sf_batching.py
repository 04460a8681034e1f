"""Batches cut by parent record, children held back while their parent is being written,
lock failures sent again in a Serial job (the Bulk writer against an in-memory Bulk API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.target.batching import cut_batches, parent_field, parent_key
from target_salesforce_crm.target.outcomes import SourceRef
from target_salesforce_crm.target.writer import WriteItem
from unit.test_target_sf_writer import Answers, FakeBulk, lock, writer


@dataclass
class Item:
    name: str
    parent_id: str | None
    size: int = 10


def names(batches: list[list[Item]]) -> list[str]:
    return [" ".join(item.name for item in batch) for batch in batches]


def spread(*parents: str, each: int) -> list[Item]:
    """Children round-robin over `parents`: a1 b1 a2 b2 …"""
    return [Item(f"{p}{n}", p) for n in range(1, each + 1) for p in parents]


def test_a_parents_children_share_a_batch_in_the_order_parents_first_came() -> None:
    batches = cut_batches(spread("a", "b", "c", each=2), batch_size=4, max_bytes=10_000,
                          grouped=True)

    assert names(batches) == ["a1 a2 b1 b2", "c1 c2"]


def test_a_group_that_does_not_fit_starts_the_next_batch() -> None:
    batches = cut_batches(spread("a", "b", "c", each=3), batch_size=4, max_bytes=10_000,
                          grouped=True)

    assert names(batches) == ["a1 a2 a3", "b1 b2 b3", "c1 c2 c3"]


def test_only_a_group_larger_than_a_batch_is_split() -> None:
    items = [Item(f"a{n}", "a") for n in range(5)] + [Item("x", None), Item("y", None)]

    batches = cut_batches(items, batch_size=2, max_bytes=10_000, grouped=True)

    assert names(batches) == ["a0 a1", "a2 a3", "a4 x", "y"]


def test_ungrouped_batches_follow_input_order_within_both_limits() -> None:
    items = spread("a", "b", each=3)

    assert names(cut_batches(items, batch_size=4, max_bytes=10_000, grouped=False)) == [
        "a1 b1 a2 b2", "a3 b3"]
    # 2 bytes of brackets + 10 per item: three items fit in 35 bytes
    assert names(cut_batches(items, batch_size=10, max_bytes=35, grouped=False)) == [
        "a1 b1 a2", "b2 a3 b3"]


def test_the_parent_field_comes_from_describe_when_the_user_can_read_it() -> None:
    contact = {"fields": [{"name": "Id"}, {"name": "AccountId"}]}

    assert parent_field("Contact", contact) == "AccountId"
    assert parent_field("Contact", {"fields": [{"name": "Id"}]}) is None  # hidden
    assert parent_field("Lead", {"fields": [{"name": "AccountId"}]}) is None
    assert parent_key("001000000000001AAA") == parent_key("001000000000001") == "001000000000001"
    assert parent_key("") is None


# -- the writer --------------------------------------------------------------------------


def children(parents: list[str], start: int = 0) -> list[WriteItem]:
    """One Contact per entry of `parents`, whose AccountId is that entry."""
    return [WriteItem([SourceRef("users", f"u-{n}", n)], {"Id": f"003{n:015d}", "Score__c": n},
                      f"003{n:015d}", parent_id=parent)
            for n, parent in enumerate(parents, start=start)]


def parents_of_batches(bulk: FakeBulk) -> list[str]:
    """The parents each batch sent holds children of."""
    return ["".join(sorted({record["Parent"] for record in batch}))
            for batch in bulk.batches.values()]


def tagged(parents: list[str], start: int = 0) -> list[WriteItem]:
    """Like `children`, with the parent also in the payload so the test can see it."""
    items = children(parents, start)
    for item in items:
        item.payload["Parent"] = item.parent_id
    return items


def test_the_writer_sends_each_accounts_contacts_in_one_batch() -> None:
    bulk, answers = FakeBulk(), Answers()
    write = writer(bulk, answers, batch_size=4)

    write.submit("Contact", "update", tagged(list("abcdabcd")))
    write.close()

    assert parents_of_batches(bulk) == ["ab", "cd"]
    assert list(answers.statuses().values()) == ["updated"] * 8


def test_a_child_waits_while_its_parent_is_in_an_unanswered_batch() -> None:
    bulk, answers = FakeBulk(lag=1), Answers()
    write = writer(bulk, answers, batch_size=2)

    write.submit("Contact", "update", tagged(list("aa")))
    write.submit("Contact", "update", tagged(list("ab"), start=2))

    assert parents_of_batches(bulk) == ["a"]  # "b" alone is not a full batch; "a" waits
    write.settle()  # "b" leaves at once, the second "a" once the first batch is answered
    assert parents_of_batches(bulk) == ["a", "b", "a"]
    adds = [n for n, call in enumerate(bulk.calls) if call == "add"]
    assert bulk.calls.index("check") < adds[2]


def test_without_grouping_or_in_serial_mode_nothing_is_held_back() -> None:
    for settings in ({"group_by_parent": False}, {"concurrency_mode": "Serial"}):
        bulk, answers = FakeBulk(lag=1), Answers()
        write = writer(bulk, answers, batch_size=2, **settings)

        write.submit("Contact", "update", tagged(list("aa")))
        write.submit("Contact", "update", tagged(list("aa"), start=2))

        assert parents_of_batches(bulk) == ["a", "a"]
        write.close()
        assert bulk.modes == ["Serial" if settings.get("concurrency_mode") else "Parallel"]


def test_lock_failures_go_again_in_a_serial_job_after_their_parents_batches() -> None:
    def outcome(record: dict[str, Any], attempt: int) -> dict[str, Any] | None:
        return lock(record) if attempt == 0 and record["Parent"] == "a" else None

    bulk, answers = FakeBulk(row_outcome=outcome), Answers()
    write = writer(bulk, answers, batch_size=4, group_by_parent=False, retry_backoff=0)

    write.submit("Contact", "update", tagged(list("abab")))
    write.close()

    assert list(answers.statuses().values()) == ["updated"] * 4
    assert bulk.modes == ["Parallel", "Serial"]
    assert [len(batch) for batch in bulk.batches.values()] == [4, 2]
    assert (write.counts["Contact"].lock_retried, write.counts["Contact"].jobs) == (2, 2)
    assert len(bulk.closed) == 2


def test_lock_failures_in_serial_mode_stay_in_the_one_serial_job() -> None:
    bulk, answers = FakeBulk(row_outcome=lambda r, attempt: lock(r) if attempt == 0 else None), \
        Answers()
    write = writer(bulk, answers, batch_size=4, concurrency_mode="Serial", retry_backoff=0)

    write.submit("Contact", "update", tagged(list("abab")))
    write.close()

    assert list(answers.statuses().values()) == ["updated"] * 4
    assert bulk.modes == ["Serial"]
    assert write.counts["Contact"].lock_retried == 4
