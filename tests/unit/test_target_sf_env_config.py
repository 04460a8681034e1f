"""Settings given as environment variables (`--config ENV`, how the Meltano `:test` command
passes them) arrive as text; number settings must still validate and become numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError
from target_salesforce_crm.target.target import TargetSalesforceCRM

ROOT = Path(__file__).resolve().parents[2]


def test_number_settings_from_environment_variables_become_numbers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    for name, value in {
        "CLIENT_ID": "id", "CLIENT_SECRET": "secret", "AUTH_URL": "https://login.example.com",
        "MAPPING_FILE": str(ROOT / "transforms" / "personalization-to-crm.yml"),
        "OUTPUT_DIR": str(tmp_path), "MAX_API_SHARE": "0.3", "FAIL_ON_REJECTS": "0.05",
        "POLL_TIMEOUT": "3600", "LOOKUP_BATCH_SIZE": "500",
    }.items():
        monkeypatch.setenv(f"TARGET_SALESFORCE_CRM_{name}", value)
    target = TargetSalesforceCRM(config=None, parse_env_config=True, validate_config=True)
    assert target.config["max_api_share"] == pytest.approx(0.3)
    assert target.config["fail_on_rejects"] == pytest.approx(0.05)
    assert target.config["poll_timeout"] == pytest.approx(3600)
    assert target.config["lookup_batch_size"] == 500


def test_a_number_setting_that_is_not_a_number_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("TARGET_SALESFORCE_CRM_CLIENT_ID", "id")
    monkeypatch.setenv("TARGET_SALESFORCE_CRM_CLIENT_SECRET", "secret")
    monkeypatch.setenv("TARGET_SALESFORCE_CRM_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("TARGET_SALESFORCE_CRM_MAPPING_FILE",
                       str(ROOT / "transforms" / "personalization-to-crm.yml"))
    monkeypatch.setenv("TARGET_SALESFORCE_CRM_MAX_API_SHARE", "a quarter")
    with pytest.raises(ConfigValidationError) as failure:
        TargetSalesforceCRM(config=None, parse_env_config=True, validate_config=True)
    assert any("max_api_share" in error for error in failure.value.errors)
