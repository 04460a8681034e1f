"""singer-sdk's standard target tests, with the one expectation this project reverses.

singer-sdk expects a record without its stream's key_properties to stop the run
(`MissingKeyPropertiesError`). Both targets here run unattended at night, where one bad
record must never stop everyone else's data: a mapped stream rejects it (`INVALID_RECORD`,
see the sandbox tests) and an ignored stream counts it. So that one standard test is
replaced by one asserting what the target does instead; every other standard test runs as
singer-sdk ships it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite, target_tests
from singer_sdk.testing.target_tests import TargetRecordMissingKeyProperty
from singer_sdk.testing.templates import TargetFileTestTemplate


class TargetRecordMissingKeyPropertyIsCounted(TargetFileTestTemplate):
    """The same input as singer-sdk's test; the run succeeds and reports the record."""

    name = "record_missing_key_property"

    def test(self) -> None:
        super().test()
        report = json.loads((Path(self.runner.config["output_dir"]) / "report.json").read_text())
        assert report["status"] == "succeeded"
        stream = report["streams"]["test_record_missing_key_property"]
        assert (stream["records"], stream["ignored"]) == (1, True)


def standard_target_tests(target_class: Any, config: dict[str, Any]) -> Any:
    tests = [test if test is not TargetRecordMissingKeyProperty
             else TargetRecordMissingKeyPropertyIsCounted for test in target_tests.tests]
    return get_target_test_class(
        target_class, config=config, include_target_tests=False,
        custom_suites=[SingerTestSuite(kind="target", tests=tests)],
    )
