"""Nothing is written twice: lost replies, killed runs and revoked sessions, against the sandbox.

The sandbox's `drop_replies` fault carries a request out and then hangs up, so the target
cannot tell from the answer whether its batch arrived; the sandbox's own counts (batches,
rows processed, jobs by state) say what Salesforce did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.target_salesforce_crm import config_for, report_of, run_target, seed, singer

USER_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
                   "engagementScore": {"type": ["number", "null"]}},
}
BATCH_POST = r"^POST /services/async/[^/]+/job/[^/]+/batch$"


def users(count: int, score: float = 0.5) -> list[dict[str, Any]]:
    return [{"id": f"u-{n:06d}", "emailAddress": f"user{n}@example.com", "engagementScore": score}
            for n in range(count)]


def bulk(sf: Any) -> dict[str, Any]:
    return dict(sf.admin("GET", "status")["bulk"])


def seeded(sf: Any, count: int) -> None:
    seed(sf, "Contact", [{"LastName": f"C{n}", "Email": f"user{n}@example.com"}
                         for n in range(count)])
    sf.clear_ledger()


def test_a_lost_batch_reply_is_found_in_the_job_not_sent_again(
    sf: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    seeded(sf, 1000)
    sf.admin("POST", "faults", json={"drop_replies": 2, "drop_reply_match": BATCH_POST})
    cfg = config_for(sf, tmp_path, bulk_batch_size=100)

    run_target(cfg, singer("users", USER_SCHEMA, users(1000), {"done": 1}))

    contact = report_of(cfg)["objects"]["Contact"]
    assert (contact["updated"], contact["bulk_batches"], contact["rejected"]) == (1000, 10, 0)
    assert bulk(sf) == {"jobs": {"Closed": 1}, "batches": 10, "records_processed": 1000}
    lost = [r.getMessage() for r in caplog.records if "was lost" in r.getMessage()]
    assert len(lost) == 2
    assert "Salesforce has it as batch" in lost[0]
