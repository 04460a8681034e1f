"""Personalization sandbox, inbound folder in-process (no background thread): file order."""

from __future__ import annotations

import json
from pathlib import Path

from emulators.personalization.inbound import Inbound
from emulators.personalization.ledger import Ledger
from emulators.personalization.store import PersonalizationStore, encode_attributes


def _inbound(tmp_path: Path) -> Inbound:
    store = PersonalizationStore(tmp_path / "personalization.db")
    store.load(users=[{"id": "u-000001", "attributes": encode_attributes({"plan": "gold"}, 1)}])
    return Inbound(tmp_path, store, Ledger(tmp_path / "ledger.db"))


def test_files_are_processed_in_timestamp_order_whatever_the_name(tmp_path: Path) -> None:
    inbound = _inbound(tmp_path)
    files = {
        "user-2026-03-02_00-00-00.csv": "bronze",
        "user-2026-03-01_23-59-59.csv.gz": None,  # not gzip: fails, but keeps its place
        "segment-delta-2026-03-01_00-00-00.csv": None,
        "account-2026-03-01_12-00-00.csv": None,
        "user-2026-03-01_23-59-58.csv": "silver",
    }
    for name, plan in files.items():
        body = f"userId,attribute:plan\r\nu-000001,{plan}\r\n" if plan else "x\r\n"
        (inbound.inbound / name).write_text(body)
    expected = ["segment-delta-2026-03-01_00-00-00.csv", "account-2026-03-01_12-00-00.csv",
                "user-2026-03-01_23-59-58.csv", "user-2026-03-01_23-59-59.csv.gz",
                "user-2026-03-02_00-00-00.csv"]
    assert inbound.pending() == expected
    results = inbound.process_pending()
    assert [r["file"] for r in results] == expected
    assert [r["status"] for r in results] == ["failed", "failed", "processed", "failed",
                                              "processed"]
    assert json.loads(inbound.store.user("u-000001")["attributes"])["plan"][0] == "bronze"
    assert inbound.pending() == []
    outcomes = dict(zip(expected, (r["status"] for r in results), strict=True))
    for folder, status in ((inbound.processed, "processed"), (inbound.failed, "failed")):
        names = [name for name, outcome in outcomes.items() if outcome == status]
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [*names, *(f"{name}.result.json" for name in names)])
    assert inbound.ledger.summary() == {"total": 5, "by_kind": {"feed_file": 5}}
