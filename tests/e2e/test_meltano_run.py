"""`meltano run` end to end, in the `sandbox` environment, against both running emulators.

Meltano runs the plugins from the virtual environments it built from meltano.yml (as a user's
schedule would); only the sandbox URLs, ports and folders are pointed at this test session's
servers through the standard `<PLUGIN>_<SETTING>` environment variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from emulators.demo_data import generate

ROOT = Path(__file__).resolve().parents[2]
MELTANO = ROOT / ".venv" / "bin" / "meltano"
USERS = 300

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project_env(salesforce_sandbox: Any, personalization_sandbox: Any,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment that points the project's plugins at this session's sandboxes."""
    work = tmp_path_factory.mktemp("meltano")
    inbound = personalization_sandbox.data_dir / "personalization" / "inbound"
    env = dict(os.environ)
    env.update({
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "MELTANO_CLI_LOG_LEVEL": "info",
        "TAP_PERSONALIZATION_BASE_URL": personalization_sandbox.url,
        "TAP_PERSONALIZATION_CA_BUNDLE": personalization_sandbox.ca_bundle,
        "TARGET_PERSONALIZATION_BASE_URL": personalization_sandbox.url,
        "TARGET_PERSONALIZATION_CA_BUNDLE": personalization_sandbox.ca_bundle,
        "TARGET_PERSONALIZATION_FEED_DIR": str(inbound),
        "TARGET_PERSONALIZATION_OUTPUT_DIR": str(work / "target-personalization"),
        "TAP_SALESFORCE_CRM_AUTH_URL": salesforce_sandbox.url,
        "TAP_SALESFORCE_CRM_CA_BUNDLE": salesforce_sandbox.ca_bundle,
        "TARGET_SALESFORCE_CRM_AUTH_URL": salesforce_sandbox.url,
        "TARGET_SALESFORCE_CRM_CA_BUNDLE": salesforce_sandbox.ca_bundle,
        "TARGET_SALESFORCE_CRM_OUTPUT_DIR": str(work / "target-salesforce-crm"),
        "TARGET_CSV_OUTPUT_PATH": str(work / "csv"),
    })
    counts = generate(salesforce_sandbox.data_dir, users=USERS, seed=11)
    env["E2E_WORK"] = str(work)
    env["E2E_COUNTS"] = json.dumps(counts)
    return env


def meltano(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(MELTANO), *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"meltano {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result


def _report(directory: Path) -> dict[str, Any]:
    reports = sorted(directory.glob("**/*.json"), key=lambda path: path.stat().st_mtime)
    reports = [path for path in reports if "report" in path.name]
    assert reports, f"no run report in {directory}"
    return json.loads(reports[-1].read_text())


def test_forward_job_updates_matched_contacts_and_accounts(
    project_env: dict[str, str], salesforce_sandbox: Any,
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

    report = _report(Path(project_env["E2E_WORK"]) / "target-salesforce-crm")
    contact = report["objects"]["Contact"]
    assert contact["updated"] == len(written)
    assert contact["updated"] + contact["unmatched"] + contact["rejected"] == contact["candidates"]
    ledger = salesforce_sandbox.ledger()["by_kind"]
    # One look-up per 1,000 candidates and object: 300 users and their accounts → 1 each.
    assert ledger["soap_query"] <= 3
    assert ledger["bulk_batch"] == 2  # one batch of contacts, one of accounts


def test_reverse_job_delivers_crm_fields_to_personalization(
    project_env: dict[str, str], personalization_sandbox: Any,
) -> None:
    meltano(project_env, "run", "crm-to-personalization")
    personalization_sandbox.admin("POST", "process-inbound")
    users = personalization_sandbox.admin("GET", "users")
    users = users["users"] if isinstance(users, dict) else users
    with_crm = [user for user in users if any(
        name.startswith("crm") for name in (user.get("attributes") or {}))]
    assert with_crm, "no Personalization user received CRM attributes"


def test_sync_both_runs_both_directions(project_env: dict[str, str],
                                        salesforce_sandbox: Any) -> None:
    salesforce_sandbox.clear_ledger()
    meltano(project_env, "run", "sync-both")
    kinds = salesforce_sandbox.ledger()["by_kind"]
    assert kinds.get("soap_query", 0) >= 1  # the forward look-ups
    assert kinds.get("rest_query", 0) >= 1  # the reverse incremental read


def test_tap_personalization_composes_with_a_standard_target(project_env: dict[str, str]) -> None:
    meltano(project_env, "run", "tap-personalization", "target-csv")
    users_csv = next((Path(project_env["E2E_WORK"]) / "csv").glob("users*.csv"))
    rows = users_csv.read_text().splitlines()
    assert len(rows) == USERS + 1  # header + one row per exported user


@pytest.mark.parametrize("plugin", ["tap-personalization", "tap-salesforce-crm",
                                    "target-salesforce-crm", "target-personalization"])
def test_config_test_succeeds_for_every_plugin(project_env: dict[str, str], plugin: str) -> None:
    result = meltano(project_env, "config", "test", plugin)
    assert "plugin configuration is valid" in (result.stdout + result.stderr).lower()
