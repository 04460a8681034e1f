"""target-personalization's command line: the --test flag and settings from environment variables.

`--config ENV` is how the `target-personalization:test` Meltano command passes settings;
singer-sdk leaves number settings from the environment as text, which the target converts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError
from tap_personalization.target.target import TargetPersonalization

ROOT = Path(__file__).resolve().parents[2]
ENV = {"DATASET": "engage", "ACCOUNT": "acme", "INSTANCE": "us-5", "API_KEY_ID": "key-id",
       "API_KEY_SECRET": "s3cret", "MAPPING_FILE": str(ROOT / "transforms" /
                                                       "crm-to-personalization.yml")}


def set_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    for name, value in {**ENV, "FEED_DIR": str(tmp_path), **extra}.items():
        monkeypatch.setenv(f"TARGET_PERSONALIZATION_{name}", value)


def test_number_settings_from_the_environment_become_numbers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    set_env(monkeypatch, tmp_path, FAIL_ON_REJECTS="0.25", DRY_RUN="true",
            DRY_RUN_SAMPLE_SIZE="2")
    target = TargetPersonalization(config={}, parse_env_config=True)
    assert target.config["fail_on_rejects"] == 0.25
    assert (target.run.dry_run, target.run.sample_size) == (True, 2)


def test_a_number_setting_that_is_not_a_number_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    set_env(monkeypatch, tmp_path, FAIL_ON_REJECTS="lots")
    with pytest.raises(ConfigValidationError) as caught:
        TargetPersonalization(config={}, parse_env_config=True)
    assert any("fail_on_rejects" in error for error in caught.value.errors)


def test_the_command_keeps_the_sdk_options_and_adds_test() -> None:
    names = {name for param in TargetPersonalization.get_singer_command().params
             for name in param.opts}
    assert {"--about", "--config", "--input", "--format", "--version", "--test"} <= names
