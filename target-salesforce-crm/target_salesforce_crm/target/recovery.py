"""Finish what an ended run left in the journal, before this run writes anything.

For every job an earlier run opened and never settled (see `journal.py`): find the batches
whose answer it never read (a batch sent without a known id is looked up in the job's batch
list), wait for their results, count what they wrote and fingerprint it, then close the job
if it is still Open. The tap sends those records again, since its STATE never moved past
them; their fingerprints now say they are unchanged, so none is written a second time.

Costs nothing when the journal is empty (the usual run): no call is made.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from target_salesforce_crm.errors import ApiError
from target_salesforce_crm.soql import in_clauses
from target_salesforce_crm.target.changes import ChangeCheck
from target_salesforce_crm.target.journal import BulkJournal, EndedRun, JournaledJob
from target_salesforce_crm.target.report import RunReport
from target_salesforce_crm.target.writer import WriteItem, WriteOutcome, batch_outcomes

# Record Ids per CreatedDate look-up (one SOQL query each).
_IDS_PER_QUERY = 500


def recover(runs: Sequence[EndedRun], journal: BulkJournal, bulk: Any, client: Any,
            mapping: Any, changes: ChangeCheck, report: RunReport,
            logger: logging.Logger) -> None:
    """Settle the ended runs' journaled Bulk work (see the module docstring)."""
    for run in runs:
        for job in run.jobs:
            counts = report.recovered.setdefault(job.sobject, Counter())
            _recover_job(job, bulk, client, _object_mapping(mapping, job.sobject), changes,
                         counts, logger)
        journal.forget_run(run.run_id)


def _recover_job(job: JournaledJob, bulk: Any, client: Any, om: Any, changes: ChangeCheck,
                 counts: Counter[str], logger: logging.Logger) -> None:
    label = f"{job.sobject} {job.operation} (job {job.job_id} of an ended run)"
    known = {batch.batch_id for batch in job.batches if batch.batch_id}
    unsent = [batch for batch in job.batches if batch.batch_id is None]
    found: list[str] = []
    try:
        if unsent:
            # Batches whose answer never came: the job's batch list says which arrived.
            found = [bid for bid in bulk.batch_ids(job.job_id) if bid not in known]
        ids = {batch.token: batch.batch_id for batch in job.batches if batch.batch_id}
        ids.update({batch.token: bid for batch, bid in zip(unsent, found, strict=False)})
        items = {ids[batch.token]: [
            WriteItem(sources=[], payload=row.payload, crm_id=row.crm_id,
                      created_date=row.created_date) for row in batch.rows]
            for batch in job.batches if batch.token in ids}
        for result in bulk.wait(job.job_id, list(items)):
            outcomes, not_written = batch_outcomes(result, items[str(result.batch_id)], label,
                                                   logger)
            counts["batches"] += 1
            counts.update(outcome.status for outcome in outcomes)
            counts["not_written"] += len(not_written)
            if om is not None:
                changes.remember(om, outcomes, created_dates(client, job.sobject, outcomes))
        if job.state == "Open":
            bulk.close_job(job.job_id)
            counts["jobs_closed"] += 1
    except ApiError as exc:  # e.g. the job is gone (Salesforce deletes jobs after 7 days)
        logger.warning("%s: could not be recovered (%s); its records are sent again", label,
                       exc)
        return
    logger.info("%s: recovered %d batches (%s)", label, counts["batches"], ", ".join(
        f"{counts[name]} {name}" for name in ("updated", "created", "rejected") if counts[name]))


def created_dates(client: Any, sobject: str,
                  outcomes: Sequence[WriteOutcome]) -> dict[str, str]:
    """CreatedDate of the records a batch created, so their fingerprints can be taken."""
    ids = [outcome.crm_id for outcome in outcomes if outcome.status == "created"
           and outcome.crm_id]
    dates: dict[str, str] = {}
    for condition in in_clauses("Id", ids, max_values=_IDS_PER_QUERY):  # values quoted
        soql = " ".join(("SELECT Id, CreatedDate FROM", sobject, "WHERE", condition))
        for row in client.query(soql):
            dates[str(row["Id"])] = str(row["CreatedDate"])
    return dates


def _object_mapping(mapping: Any, sobject: str) -> Any:
    """The object's mapping today, or None when it no longer maps it (nothing to remember)."""
    for om in getattr(mapping, "objects", ()):
        if om.sobject == sobject:
            return om
    return None
