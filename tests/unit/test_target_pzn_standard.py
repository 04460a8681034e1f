"""singer-sdk's standard target tests for target-personalization.

Their streams are not in the mapping, so every record is counted as ignored: what they prove
here is the Singer protocol side (schemas, records before schemas, missing keys, invalid
schemas, STATE relayed after each drain, --about/--version). The tests feed messages
straight into the target (no connection check, no network), so they run offline.
"""

from __future__ import annotations

import importlib.resources
import io
import json
import tempfile
from pathlib import Path

from singer_sdk.testing import target_test_streams
from singer_sdk.testing.runners import TargetTestRunner
from support.standard_target import standard_target_tests
from tap_personalization.target.target import TargetPersonalization

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = Path(tempfile.mkdtemp(prefix="target-personalization-standard-"))  # per process
CONFIG = {
    "base_url": "https://sandbox.us-1.evergage.com",
    "dataset": "engage",
    "api_key_id": "key-id",
    "api_key_secret": "key-secret",
    "mapping_file": str(ROOT / "transforms" / "crm-to-personalization.yml"),
    "feed_dir": tempfile.gettempdir(),
    "output_dir": str(SCRATCH),
}

_StandardTests = standard_target_tests(TargetPersonalization, CONFIG)


class TestTargetPersonalizationStandard(_StandardTests):
    """The SDK's suite, with its missing-key-property test reversed (see `support`)."""


def test_standard_streams_are_reported_as_ignored(tmp_path: Path) -> None:
    """A standard stream file leaves a report naming its stream as ignored, nothing delivered."""
    runner = TargetTestRunner(
        TargetPersonalization, config={**CONFIG, "output_dir": str(tmp_path)},
        input_io=io.StringIO(
            (importlib.resources.files(target_test_streams) / "camelcase.singer").read_text()))
    runner.sync_all()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "succeeded"
    assert report["files"] == []
    assert report["input_records"] == 0
    assert report["ignored_records"] > 0
    assert all(stream["ignored"] for stream in report["streams"].values())
