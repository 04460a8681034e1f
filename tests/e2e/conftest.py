"""The Meltano project pointed at this test session's sandboxes.

Meltano runs the plugins from the virtual environments it built from meltano.yml (as a
user's schedule would); only the sandbox URLs, ports and folders are pointed at this
session's servers through the standard `<PLUGIN>_<SETTING>` environment variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from emulators.demo_data import generate

ROOT = Path(__file__).resolve().parents[2]
MELTANO = ROOT / ".venv" / "bin" / "meltano"
DEMO_USERS = 300
# What a Meltano project run needs from the checkout; the plugins' installed virtual
# environments are shared, Meltano's own run files (.meltano/run) are not.
PROJECT_LINKS = ("Makefile", "requirements-dev.txt", "transforms",
                 "tap-personalization", "target-salesforce-crm", "sandbox", ".venv",
                 ".meltano/extractors", ".meltano/loaders", ".meltano/.installed")

Meltano = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as seen by Meltano, in its own folder, so that a demo or benchmark
    running Meltano in the checkout at the same time cannot touch this run's files."""
    root = tmp_path_factory.mktemp("project")
    (root / ".meltano").mkdir()
    for name in PROJECT_LINKS:
        (root / name).symlink_to(ROOT / name)
    # Meltano wants the file itself inside the project; its time is kept so that `make
    # install` (a workflow step) sees nothing to reinstall.
    shutil.copy2(ROOT / "meltano.yml", root / "meltano.yml")
    return root


@pytest.fixture(scope="module")
def project_env(salesforce_sandbox: Any, personalization_sandbox: Any,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for `meltano` in the sandbox environment, with fresh demo data."""
    work = tmp_path_factory.mktemp("meltano")
    inbound = personalization_sandbox.data_dir / "personalization" / "inbound"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MELTANO_", "TAP_", "TARGET_", "GITHUB_"))}
    env.update({
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "TAP_PERSONALIZATION_BASE_URL": personalization_sandbox.url,
        "TAP_PERSONALIZATION_CA_BUNDLE": personalization_sandbox.ca_bundle,
        "TARGET_PERSONALIZATION_BASE_URL": personalization_sandbox.url,
        "TARGET_PERSONALIZATION_CA_BUNDLE": personalization_sandbox.ca_bundle,
        "TARGET_PERSONALIZATION_FEED_DIR": str(inbound),
        "TARGET_PERSONALIZATION_OUTPUT_DIR": str(work / "output" / "target-personalization"),
        "TARGET_PERSONALIZATION_FINGERPRINT_DB": str(work / "pzn-fingerprints.sqlite"),
        "TAP_SALESFORCE_CRM_AUTH_URL": salesforce_sandbox.url,
        "TAP_SALESFORCE_CRM_CA_BUNDLE": salesforce_sandbox.ca_bundle,
        "TARGET_SALESFORCE_CRM_AUTH_URL": salesforce_sandbox.url,
        "TARGET_SALESFORCE_CRM_CA_BUNDLE": salesforce_sandbox.ca_bundle,
        "TARGET_SALESFORCE_CRM_OUTPUT_DIR": str(work / "output" / "target-salesforce-crm"),
        "TARGET_SALESFORCE_CRM_FINGERPRINT_DB": str(work / "fingerprints.sqlite"),
        "TARGET_CSV_OUTPUT_PATH": str(work / "csv"),
        "E2E_WORK": str(work),
    })
    for sandbox in (salesforce_sandbox, personalization_sandbox):
        sandbox.reset()  # limits, faults, revocations and ledgers left by earlier tests
    generate(salesforce_sandbox.data_dir, users=DEMO_USERS, seed=11)
    return env


@pytest.fixture
def meltano(project_root: Path) -> Meltano:
    def run(env: dict[str, str], *args: str, check: bool = True,
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(MELTANO), *args], cwd=project_root, env=env,
                                capture_output=True, text=True, timeout=600)
        if check:
            assert result.returncode == 0, (
                f"meltano {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result

    return run



@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make dist` once per test session (each wheel from its sdist), into its own folder."""
    folder = tmp_path_factory.mktemp("dist")
    subprocess.run(["make", "--no-print-directory", "dist", f"DIST_DIR={folder}"], cwd=ROOT,
                   check=True, capture_output=True, text=True, timeout=600)
    return folder
