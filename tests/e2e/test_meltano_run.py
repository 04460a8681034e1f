"""`meltano run` end to end, in the `sandbox` environment, against both running emulators.

Meltano runs the plugins from the virtual environments it built from meltano.yml (as a user's
schedule would); only the sandbox URLs, ports and folders are pointed at this test session's
servers through the standard `<PLUGIN>_<SETTING>` environment variables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# Meltano writes its run files into the one project: never two Meltano runs at once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meltano-project")]
USERS = 300  # tests/e2e/conftest.py seeds this many demo users


def _report(directory: Path) -> dict[str, Any]:
    reports = sorted(directory.glob("**/*.json"), key=lambda path: path.stat().st_mtime)
    reports = [path for path in reports if "report" in path.name]
    assert reports, f"no run report in {directory}"
    return json.loads(reports[-1].read_text())


def test_forward_job_updates_matched_contacts_and_accounts(
    project_env: dict[str, str], salesforce_sandbox: Any, meltano: Any,
) -> None:
    salesforce_sandbox.clear_ledger()
    meltano(project_env, "run", "personalization-to-crm")

    written = salesforce_sandbox.admin(
        "GET", "records/Contact",
        params={"where": "Personalization_User_Id__c != null",
                "fields": "Id,Email,Personalization_User_Id__c,Personalization_Last_Activity__c"},
    )
    assert written, "no contact received Personalization data"
    assert all(row["Personalization_Last_Activity__c"] for row in written)
    accounts = salesforce_sandbox.admin(
        "GET", "records/Account", params={"where": "Personalization_Account_Id__c != null"},
    )
    assert accounts, "no account received Personalization data"

    report = _report(Path(project_env["E2E_WORK"]) / "output" / "target-salesforce-crm")
    contact = report["objects"]["Contact"]
    assert contact["updated"] == len(written)
    assert contact["updated"] + contact["unmatched"] + contact["rejected"] == contact["candidates"]
    ledger = salesforce_sandbox.ledger()["by_kind"]
    # One look-up per 1,000 candidates and object: 300 users and their accounts → 1 each.
    assert ledger["soap_query"] <= 3
    assert ledger["bulk_batch"] == 2  # one batch of contacts, one of accounts


def test_reverse_job_delivers_crm_fields_to_personalization(
    project_env: dict[str, str], personalization_sandbox: Any, meltano: Any,
) -> None:
    meltano(project_env, "run", "crm-to-personalization")
    personalization_sandbox.admin("POST", "process-inbound")
    users = personalization_sandbox.admin("GET", "users")
    users = users["users"] if isinstance(users, dict) else users
    with_crm = [user for user in users if any(
        name.startswith("crm") for name in (user.get("attributes") or {}))]
    assert with_crm, "no Personalization user received CRM attributes"


def test_sync_both_runs_both_directions(project_env: dict[str, str], salesforce_sandbox: Any,
                                        meltano: Any) -> None:
    salesforce_sandbox.clear_ledger()
    meltano(project_env, "run", "sync-both")
    kinds = salesforce_sandbox.ledger()["by_kind"]
    assert kinds.get("soap_query", 0) >= 1  # the forward look-ups
    assert kinds.get("rest_query", 0) >= 1  # the reverse incremental read


def test_tap_personalization_composes_with_a_standard_target(project_env: dict[str, str],
                                                            meltano: Any) -> None:
    meltano(project_env, "run", "tap-personalization", "target-csv")
    users_csv = next((Path(project_env["E2E_WORK"]) / "csv").glob("users*.csv"))
    rows = users_csv.read_text().splitlines()
    assert len(rows) == USERS + 1  # header + one row per exported user


PLUGINS = ["tap-personalization", "tap-salesforce-crm", "target-salesforce-crm",
           "target-personalization"]
# A wrong secret per plugin, and the setting its message must name.
WRONG_SECRET = {
    "tap-personalization": ("TAP_PERSONALIZATION_API_KEY_SECRET", "api_key_secret"),
    "target-personalization": ("TARGET_PERSONALIZATION_API_KEY_SECRET", "api_key_secret"),
    "tap-salesforce-crm": ("TAP_SALESFORCE_CRM_CLIENT_SECRET", "client_secret"),
    "target-salesforce-crm": ("TARGET_SALESFORCE_CRM_CLIENT_SECRET", "client_secret"),
}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_connection_test_command_succeeds_for_every_plugin(project_env: dict[str, str],
                                                           plugin: str, meltano: Any) -> None:
    result = meltano(project_env, "invoke", f"{plugin}:test")
    output = result.stdout + result.stderr
    assert "Traceback" not in output


@pytest.mark.parametrize("plugin", PLUGINS)
def test_connection_test_command_explains_a_wrong_secret(project_env: dict[str, str],
                                                         plugin: str, meltano: Any) -> None:
    variable, setting = WRONG_SECRET[plugin]
    env = dict(project_env, **{variable: "wrong-secret-value"})
    result = meltano(env, "invoke", f"{plugin}:test", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert setting in output
    assert "wrong-secret-value" not in output
    # Meltano may print its own traceback when a plugin fails; ours never do.
    assert not any(package in output for package in ("target_salesforce_crm/",
                                                     "tap_personalization/"))


@pytest.mark.parametrize("plugin", ["tap-personalization", "tap-salesforce-crm"])
def test_meltano_config_test_succeeds_for_the_taps(project_env: dict[str, str], plugin: str,
                                                   meltano: Any) -> None:
    result = meltano(project_env, "config", "test", plugin)
    assert "plugin configuration is valid" in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("plugin", ["target-salesforce-crm", "target-personalization"])
def test_meltano_config_test_of_loaders_fails_at_most_in_meltano_itself(
    project_env: dict[str, str], plugin: str, meltano: Any,
) -> None:
    """Our target passes Meltano's loader probe; Meltano 4.4 then often (a race) fails on its
    own when it terminates the loader that has already exited. Either way the only failure
    allowed is that one, which the README documents."""
    result = meltano(project_env, "--log-level=debug", "config", "test", plugin, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 or "plugin configuration is valid" in output.lower()
    assert result.returncode == 0 or "ProcessLookupError" in output
