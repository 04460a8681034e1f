"""tap-personalization on an export with damaged text: no profile is lost, none stops it."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest
from emulators import defaults
from tap_personalization.tap.tap import TapPersonalization

pytestmark = pytest.mark.integration


def test_profiles_with_invalid_text_are_exported_repaired_and_counted(
    personalization_sandbox: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """A browser cut an emoji in half: every profile still arrives, the bad code points as
    U+FFFD, each replacement logged with the record's id (sent as an escape and as raw bytes
    that are not UTF-8: the sandbox's `invalid_text_every` fault)."""
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "users", json=[{"id": f"u-{n:06d}", "displayName": f"User {n}"}
                                     for n in range(1, 9)])
    box.admin("POST", "faults", json={"invalid_text_every": 3})
    tap = TapPersonalization(config={
        "base_url": box.url, "dataset": defaults.PZN_DATASET, "ca_bundle": box.ca_bundle,
        "api_key_id": defaults.PZN_API_KEY_ID, "api_key_secret": defaults.PZN_API_KEY_SECRET,
        "page_size": 4, "segments": [],
    })
    for name, stream in tap.streams.items():
        stream.selected = name == "users"
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]

    names = {m["record"]["id"]: m["record"]["displayName"]
             for m in messages if m["type"] == "RECORD"}
    assert len(names) == 8
    assert names["u-000003"] == "User 3 \ufffd"  # sent as the escape \ud83d
    assert names["u-000006"] == "User 6 \ufffd\ufffd\ufffd"  # sent as 3 bytes, not UTF-8
    assert names["u-000001"] == "User 1"
    assert messages[-1]["type"] == "STATE"
    warnings = [r.getMessage() for r in caplog.records if "U+FFFD" in r.getMessage()]
    assert len(warnings) == 2
    assert "1 invalid code point(s)" in warnings[0]
    assert "displayName of record u-000003" in warnings[0]
    assert "displayName of record u-000006; 4 in this stream so far" in warnings[1]
    box.reset()
