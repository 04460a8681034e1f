"""The peer benchmark's catalog handling: which streams and fields the peer is asked for,
and how its output is read back (no tap runs here; bench/peer.py runs them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import peer_path


def _stream(name: str, fields: list[str], automatic: tuple[str, ...] = ("Id",)) -> dict[str, Any]:
    metadata: list[dict[str, Any]] = [{"breadcrumb": [], "metadata": {
        "valid-replication-keys": ["SystemModstamp"], "table-key-properties": ["Id"]}}]
    for field in fields:
        inclusion = "automatic" if field in automatic else "available"
        metadata.append({"breadcrumb": ["properties", field],
                         "metadata": {"inclusion": inclusion, "selected-by-default": True}})
    return {"tap_stream_id": name, "stream": name, "metadata": metadata,
            "schema": {"properties": {field: {} for field in fields}}}


def _root(stream: dict[str, Any]) -> dict[str, Any]:
    return next(entry["metadata"] for entry in stream["metadata"] if entry["breadcrumb"] == [])


def test_peer_catalog_selects_the_four_objects_incrementally() -> None:
    catalog = peer_path.peer_catalog({"streams": [
        _stream("Contact", ["Id", "Email", "SystemModstamp"]),
        _stream("Campaign", ["Id", "Name", "SystemModstamp"])]})

    contact, campaign = catalog["streams"]
    assert _root(contact) == {
        "valid-replication-keys": ["SystemModstamp"], "table-key-properties": ["Id"],
        "selected": True, "replication-method": "INCREMENTAL",
        "replication-key": "SystemModstamp"}
    assert _root(campaign)["selected"] is False


def test_narrowed_catalog_reads_only_our_fields_and_keeps_the_automatic_ones() -> None:
    full = {"streams": [_stream("Contact", ["Id", "Email", "Phone", "SystemModstamp"],
                                automatic=("Id", "SystemModstamp"))]}

    narrow = peer_path.narrowed(full, {"Contact": {"Id", "Email", "SystemModstamp"}})

    assert peer_path.fields_read(narrow, {"Contact": "Contact"}) == {
        "Contact": {"Id", "Email", "SystemModstamp"}}
    assert peer_path.fields_read(full, {"Contact": "Contact"}) == {
        "Contact": {"Id", "Email", "Phone", "SystemModstamp"}}


def test_read_output_collects_ids_per_object_from_either_json_style(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("\n".join([
        json.dumps({"type": "SCHEMA", "stream": "contacts"}),
        json.dumps({"type": "RECORD", "stream": "contacts", "record": {"Id": "003A"}}),
        json.dumps({"type": "RECORD", "stream": "leads", "record": {"Id": "00QA"}},
                   separators=(",", ":")),
        json.dumps({"type": "STATE", "value": {"RECORD": 1}}),
    ]) + "\n")

    ids = peer_path.read_output(out, peer_path.OBJECTS)

    assert ids == {"Account": [], "Contact": ["003A"], "Lead": ["00QA"], "CampaignMember": []}
