"""Parent-record locks between Bulk batches processed at once, and Serial jobs.

A batch holds the Account of every Contact it writes (the Campaign of every CampaignMember)
until it ends; another running batch's rows under that parent wait `lock_wait_seconds` and
then fail UNABLE_TO_LOCK_ROW. `record_processing_ms` stretches a batch so the overlap is
certain: the second batch is only added once the first has recorded its rows and still
holds their parents.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sandbox.test_salesforce_bulk import Bulk

LOCKED = "UNABLE_TO_LOCK_ROW"


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


def seed_contacts(sandbox: Any, account_names: list[str], per_account: int) -> tuple[
        list[str], dict[str, list[str]]]:
    """Accounts and `per_account` contacts under each: account ids, contact ids by name."""
    accounts = sandbox.admin("POST", "records/Account",
                             json=[{"Name": name} for name in account_names])
    contacts: dict[str, list[str]] = {}
    for name, account_id in zip(account_names, accounts, strict=True):
        contacts[name] = sandbox.admin("POST", "records/Contact", json=[
            {"LastName": f"{name}{n}", "AccountId": account_id} for n in range(per_account)])
    return accounts, contacts


def wait_processed(bulk: Bulk, job_id: str, batch_id: str, count: int) -> None:
    """Until the batch has recorded `count` rows (it still holds their parents)."""
    deadline = time.monotonic() + 30
    while bulk.ok("GET", f"job/{job_id}/batch/{batch_id}")["numberRecordsProcessed"] < count:
        assert time.monotonic() < deadline, f"batch {batch_id} processed nothing"
        time.sleep(0.01)


def codes(bulk: Bulk, job_id: str, batch_id: str) -> list[str | None]:
    bulk.wait(job_id, batch_id)
    rows = bulk.ok("GET", f"job/{job_id}/batch/{batch_id}/result")
    return [None if row["success"] else row["errors"][0]["statusCode"] for row in rows]


def test_contacts_of_an_account_held_by_a_running_batch_fail_unable_to_lock_row(
        salesforce_sandbox: Any) -> None:
    _accounts, contacts = seed_contacts(salesforce_sandbox, ["A", "B"], 3)
    salesforce_sandbox.faults(record_processing_ms=300, lock_wait_seconds=0.05)
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("update")
    first = bulk.batch(job_id, [{"Id": i, "Title": "First"} for i in contacts["A"][:2]])
    wait_processed(bulk, job_id, first, 2)

    second = bulk.batch(job_id, [{"Id": contacts["A"][2], "Title": "Second"},
                                 *({"Id": i, "Title": "Second"} for i in contacts["B"])])

    assert codes(bulk, job_id, second) == [LOCKED, None, None, None]
    assert codes(bulk, job_id, first) == [None, None]
    titles = {row["Id"]: row["Title"] for row in salesforce_sandbox.admin(
        "GET", "records/Contact", params={"fields": "Id,Title"})}
    assert titles[contacts["A"][2]] is None
    assert [titles[i] for i in contacts["B"]] == ["Second"] * 3
    info = bulk.ok("GET", f"job/{job_id}")
    assert (info["concurrencyMode"], info["numberRecordsFailed"]) == ("Parallel", 1)


def test_a_batch_waits_for_a_parent_and_succeeds_when_it_is_released_in_time(
        salesforce_sandbox: Any) -> None:
    _accounts, contacts = seed_contacts(salesforce_sandbox, ["A"], 2)
    salesforce_sandbox.faults(record_processing_ms=150, lock_wait_seconds=5)
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("update")
    first = bulk.batch(job_id, [{"Id": contacts["A"][0], "Title": "First"}])
    wait_processed(bulk, job_id, first, 1)

    second = bulk.batch(job_id, [{"Id": contacts["A"][1], "Title": "Second"}])

    assert codes(bulk, job_id, second) == [None]


def test_batches_of_a_parallel_job_are_processed_at_the_same_time(
        salesforce_sandbox: Any) -> None:
    _accounts, contacts = seed_contacts(salesforce_sandbox, ["A", "B"], 1)
    salesforce_sandbox.faults(record_processing_ms=300)
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("update")
    batches = [bulk.batch(job_id, [{"Id": contacts[name][0], "Title": name}])
               for name in ("A", "B")]

    most = 0
    deadline = time.monotonic() + 30
    while most < 2 and time.monotonic() < deadline:
        most = max(most, bulk.ok("GET", f"job/{job_id}")["numberBatchesInProgress"])
        time.sleep(0.01)

    assert most == 2
    assert [codes(bulk, job_id, b) for b in batches] == [[None], [None]]


def test_a_serial_job_processes_one_batch_at_a_time_without_lock_failures(
        salesforce_sandbox: Any) -> None:
    _accounts, contacts = seed_contacts(salesforce_sandbox, ["A"], 4)
    salesforce_sandbox.faults(record_processing_ms=150, lock_wait_seconds=0)
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("update", concurrencyMode="Serial")
    batches = [bulk.batch(job_id, [{"Id": i, "Title": "Serial"}]) for i in contacts["A"]]

    most, completed = 0, 0
    deadline = time.monotonic() + 30
    while completed < 4 and time.monotonic() < deadline:
        info = bulk.ok("GET", f"job/{job_id}")
        most = max(most, info["numberBatchesInProgress"])
        completed = info["numberBatchesCompleted"]
        time.sleep(0.01)

    assert (most, completed) == (1, 4)
    assert [codes(bulk, job_id, b) for b in batches] == [[None]] * 4
    assert bulk.ok("GET", f"job/{job_id}")["concurrencyMode"] == "Serial"


def test_serial_jobs_wait_for_each_other_but_not_for_parallel_ones(
        salesforce_sandbox: Any) -> None:
    _accounts, contacts = seed_contacts(salesforce_sandbox, ["A", "B", "C"], 1)
    salesforce_sandbox.faults(record_processing_ms=600)
    bulk = Bulk(salesforce_sandbox)
    serial_one = bulk.job("update", concurrencyMode="Serial")
    serial_two = bulk.job("update", concurrencyMode="Serial")
    parallel = bulk.job("update")
    first = bulk.batch(serial_one, [{"Id": contacts["A"][0], "Title": "1"}])
    bulk.wait_until(serial_one, first, "InProgress")

    second = bulk.batch(serial_two, [{"Id": contacts["B"][0], "Title": "2"}])
    beside = bulk.batch(parallel, [{"Id": contacts["C"][0], "Title": "3"}])

    bulk.wait_until(parallel, beside, "InProgress")
    assert bulk.ok("GET", f"job/{serial_two}/batch/{second}")["state"] == "Queued"
    assert codes(bulk, serial_two, second) == [None]


def test_campaign_members_lock_their_campaign(salesforce_sandbox: Any) -> None:
    [campaign] = salesforce_sandbox.admin("POST", "records/Campaign", json=[{"Name": "Spring"}])
    leads = salesforce_sandbox.admin("POST", "records/Lead", json=[
        {"LastName": f"L{n}", "Company": "Acme"} for n in range(2)])
    salesforce_sandbox.faults(record_processing_ms=600, lock_wait_seconds=0.05)
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("insert", "CampaignMember")
    first = bulk.batch(job_id, [{"CampaignId": campaign, "LeadId": leads[0]}])
    wait_processed(bulk, job_id, first, 1)

    second = bulk.batch(job_id, [{"CampaignId": campaign, "LeadId": leads[1]}])

    assert codes(bulk, job_id, second) == [LOCKED]
    assert codes(bulk, job_id, first) == [None]


def test_records_without_a_parent_never_wait(salesforce_sandbox: Any) -> None:
    ids = salesforce_sandbox.admin("POST", "records/Contact",
                                   json=[{"LastName": "Solo"}, {"LastName": "Alone"}])
    salesforce_sandbox.faults(record_processing_ms=300, lock_wait_seconds=0)
    bulk = Bulk(salesforce_sandbox)
    job_id = bulk.job("update")
    first = bulk.batch(job_id, [{"Id": ids[0], "Title": "x"}])
    wait_processed(bulk, job_id, first, 1)

    second = bulk.batch(job_id, [{"Id": ids[1], "Title": "y"}])

    assert codes(bulk, job_id, second) == [None]
