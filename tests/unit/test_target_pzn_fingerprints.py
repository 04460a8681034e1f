"""The fingerprint store of target-personalization: what counts as delivered, and when."""

from __future__ import annotations

import logging
from pathlib import Path

from tap_personalization.target.fingerprints import USER, FingerprintStore, value_hash
from tap_personalization.target.unchanged import UnchangedFilter

SCOPE = "https://acme.us-5.evergage.com|engage"


def make_filter(path: Path, outcomes: dict[str, str], *, full_refresh: bool = False,
                readonly: bool = False) -> UnchangedFilter:
    return UnchangedFilter(FingerprintStore(path, readonly=readonly), scope=lambda: SCOPE,
                           outcomes=lambda names: {n: outcomes.get(n, "missing") for n in names},
                           full_refresh=full_refresh, logger=logging.getLogger("test"))


def deliver(path: Path, name: str, values: dict[str, object]) -> None:
    """One run that writes `values` for u-1 into one feed file delivered as `name`."""
    run = make_filter(path, {})
    run.staged("/tmp/.user-1.csv.tmp", USER, "u-1", values)
    run.delivered([("/tmp/.user-1.csv.tmp", name)])
    run.commit()
    run.close()


def test_feed_values_count_once_their_file_was_processed(tmp_path: Path) -> None:
    db = tmp_path / "fp.sqlite"
    deliver(db, "user-1.csv", {"crmTitle": "CTO", "crmLeadSource": "Web"})
    waiting = make_filter(db, {"user-1.csv": "waiting"})
    assert waiting.changed(USER, "u-1", {"crmTitle": "CTO"}) == {"crmTitle": "CTO"}
    assert waiting.settled == {"waiting": 1}
    waiting.close()

    processed = make_filter(db, {"user-1.csv": "processed"})
    assert processed.changed(USER, "u-1", {"crmTitle": "CTO", "crmLeadSource": "Phone"}) == {
        "crmLeadSource": "Phone"}
    processed.close()
    # settled once: a later run no longer asks where the file went
    later = make_filter(db, {})
    assert later.changed(USER, "u-1", {"crmTitle": "CTO"}) == {}
    assert later.settled == {}


def test_a_failed_or_vanished_file_is_forgotten(tmp_path: Path) -> None:
    db = tmp_path / "fp.sqlite"
    deliver(db, "user-1.csv", {"crmTitle": "CTO"})
    run = make_filter(db, {"user-1.csv": "processed"})
    assert run.changed(USER, "u-1", {"crmTitle": "CTO"}) == {}
    run.close()
    deliver(db, "user-2.csv", {"crmTitle": "CEO"})  # then it fails
    failed = make_filter(db, {"user-2.csv": "failed"})
    # Personalization holds CTO still: CEO is sent again, CTO would be unchanged
    assert failed.changed(USER, "u-1", {"crmTitle": "CEO"}) == {"crmTitle": "CEO"}
    assert failed.changed(USER, "u-1", {"crmTitle": "CTO"}) == {}
    failed.close()


def test_a_value_waiting_in_a_file_counts_as_changed(tmp_path: Path) -> None:
    """CTO is confirmed, CEO waits in an unprocessed file: going back to CTO must be sent,
    or the waiting file would leave CEO in Personalization."""
    db = tmp_path / "fp.sqlite"
    deliver(db, "user-1.csv", {"crmTitle": "CTO"})
    settle = make_filter(db, {"user-1.csv": "processed"})
    assert settle.changed(USER, "u-1", {"crmTitle": "CTO"}) == {}
    settle.close()
    deliver(db, "user-2.csv", {"crmTitle": "CEO"})
    run = make_filter(db, {"user-2.csv": "waiting"})
    assert run.changed(USER, "u-1", {"crmTitle": "CTO"}) == {"crmTitle": "CTO"}
    assert run.settled == {"waiting": 1}
    run.close()


def test_files_settle_in_delivery_order(tmp_path: Path) -> None:
    db = tmp_path / "fp.sqlite"
    deliver(db, "user-1.csv", {"crmTitle": "CTO"})
    deliver(db, "user-2.csv", {"crmTitle": "CEO"})
    run = make_filter(db, {"user-1.csv": "processed", "user-2.csv": "processed"})
    assert run.changed(USER, "u-1", {"crmTitle": "CEO"}) == {}
    run.close()


def test_uncommitted_confirmations_are_lost_with_the_run(tmp_path: Path) -> None:
    db = tmp_path / "fp.sqlite"
    killed = make_filter(db, {})
    killed.confirmed(USER, "u-1", {"crmTitle": "CTO"})
    killed.close()  # no checkpoint: nothing was committed
    run = make_filter(db, {})
    assert run.changed(USER, "u-1", {"crmTitle": "CTO"}) == {"crmTitle": "CTO"}
    run.confirmed(USER, "u-1", {"crmTitle": "CTO", "crmDepartment": None})
    run.commit()
    run.close()
    again = make_filter(db, {})
    assert again.changed(USER, "u-1", {"crmTitle": "CTO", "crmDepartment": None}) == {}


def test_full_refresh_and_dry_run(tmp_path: Path) -> None:
    db = tmp_path / "fp.sqlite"
    dry = make_filter(db, {}, readonly=True)
    dry.confirmed(USER, "u-1", {"crmTitle": "CTO"})
    dry.commit()
    dry.close()
    assert not db.exists()  # a dry run creates no file and records nothing
    run = make_filter(db, {})
    run.confirmed(USER, "u-1", {"crmTitle": "CTO"})
    run.commit()
    run.close()
    refresh = make_filter(db, {}, full_refresh=True)
    assert refresh.changed(USER, "u-1", {"crmTitle": "CTO"}) == {"crmTitle": "CTO"}
    dry = make_filter(db, {}, readonly=True)
    assert dry.changed(USER, "u-1", {"crmTitle": "CTO"}) == {}


def test_value_hash_tells_types_apart() -> None:
    assert value_hash(1) != value_hash("1")
    assert value_hash(True) != value_hash("true")
    assert value_hash(None) != value_hash("")
