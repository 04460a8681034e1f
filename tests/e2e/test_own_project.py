"""A user's own Meltano project: the plugins from their wheels, composed with others.

As the README's "Use it in your own Meltano project" says: `meltano init`, `meltano add
--from-ref` with this repository's Hub definitions (pip_url pointed at the built wheels),
two plugins this project did not write (meltanolabs-target-csv from the package index, and
tests/fixtures/tap-jsonl, a singer-sdk tap), `meltano install`, the mapping examples through
the `init-mapping` command, settings as environment variables, then `meltano run` against the
sandboxes: a Personalization export into CSV files, and a JSONL file of users, sent as BATCH
messages, into target-salesforce-crm through the stream the mapping names (`users`).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulators import defaults
from emulators.demo_data import generate
from support.dist import wheel

pytestmark = pytest.mark.e2e  # no xdist group: each worker builds dist/ once (seconds)
ROOT = Path(__file__).resolve().parents[2]
MELTANO = ROOT / ".venv" / "bin" / "meltano"
USERS = 40
THIRD_PARTY = {
    "loaders": [{
        "name": "target-csv", "variant": "meltanolabs", "namespace": "target_csv",
        "pip_url": "meltanolabs-target-csv>=0.5,<0.6", "executable": "target-csv",
        "settings": [{"name": "output_path"}],
    }],
    "extractors": [{
        "name": "tap-jsonl", "namespace": "tap_jsonl", "executable": "tap-jsonl",
        "pip_url": str(ROOT / "tests" / "fixtures" / "tap-jsonl"),
        "capabilities": ["discover", "catalog", "state", "about", "batch"],
        "settings": [{"name": "path"}, {"name": "stream"},
                     {"name": "key_properties", "kind": "array"},
                     {"name": "schema", "kind": "object"},
                     {"name": "batch_config", "kind": "object"}],
    }],
}
USER_SCHEMA = {"type": "object", "properties": {
    "id": {"type": "string"}, "emailAddress": {"type": ["string", "null"]},
    "engagementScore": {"type": ["number", "null"]}}}


def meltano(project: Path, env: dict[str, str], *args: str) -> str:
    answer = subprocess.run([str(MELTANO), *args], cwd=project, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert answer.returncode == 0, f"meltano {' '.join(args)}:\n{answer.stderr[-3000:]}"
    return answer.stdout + answer.stderr


def hub_file(tmp_path: Path, plugin_type: str, name: str, pip_url: Path) -> Path:
    """The committed Hub definition with pip_url at a wheel, as the README shows."""
    definition = yaml.safe_load((ROOT / "hub" / plugin_type / f"{name}.yml").read_text())
    definition["pip_url"] = str(pip_url)
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


@pytest.fixture
def user_env(tmp_path: Path, salesforce_sandbox: Any,
             personalization_sandbox: Any) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MELTANO_", "TAP_", "TARGET_", "VIRTUAL_ENV"))}
    env.update({
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "MELTANO_VENV_BACKEND": "uv", "UV_CACHE_DIR": str(ROOT / ".cache" / "uv"),
        "TAP_PERSONALIZATION_BASE_URL": personalization_sandbox.url,
        "TAP_PERSONALIZATION_CA_BUNDLE": personalization_sandbox.ca_bundle,
        "TAP_PERSONALIZATION_API_KEY_ID": defaults.PZN_API_KEY_ID,
        "TAP_PERSONALIZATION_API_KEY_SECRET": defaults.PZN_API_KEY_SECRET,
        "TARGET_CSV_OUTPUT_PATH": str(tmp_path / "csv"),
        "TARGET_SALESFORCE_CRM_AUTH_URL": salesforce_sandbox.url,
        "TARGET_SALESFORCE_CRM_CA_BUNDLE": salesforce_sandbox.ca_bundle,
        "TARGET_SALESFORCE_CRM_CLIENT_ID": defaults.SF_CLIENT_ID,
        "TARGET_SALESFORCE_CRM_CLIENT_SECRET": defaults.SF_CLIENT_SECRET,
    })
    for sandbox in (salesforce_sandbox, personalization_sandbox):
        sandbox.reset()
    generate(salesforce_sandbox.data_dir, users=USERS, seed=13)
    return env


def test_a_new_project_runs_the_wheels_with_third_party_plugins(
    tmp_path: Path, dist_dir: Path, user_env: dict[str, str], salesforce_sandbox: Any,
) -> None:
    meltano(tmp_path, user_env, "init", "project", "--no_usage_stats")
    project = tmp_path / "project"
    for plugin_type, name in (("loaders", "target-salesforce-crm"),
                              ("extractors", "tap-personalization")):
        ref = hub_file(tmp_path, plugin_type, name, wheel(dist_dir, name))
        meltano(project, user_env, "add", name, "--from-ref", str(ref), "--no-install")
    config = yaml.safe_load((project / "meltano.yml").read_text())
    for plugin_type, plugins in THIRD_PARTY.items():
        config["plugins"][plugin_type] += plugins
    (project / "meltano.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    meltano(project, user_env, "install")
    assert "wrote transforms/personalization-to-crm.yml" in meltano(
        project, user_env, "invoke", "target-salesforce-crm:init-mapping")

    # Personalization → a target this project did not write
    meltano(project, user_env, "run", "tap-personalization", "target-csv")
    with (tmp_path / "csv" / "users.csv").open(newline="") as rows:
        exported = list(csv.DictReader(rows))
    assert len(exported) == USERS
    assert all(row["id"].startswith("u-") for row in exported)

    # a tap this project did not write → target-salesforce-crm, as BATCH messages
    contacts = salesforce_sandbox.admin("GET", "records/Contact",
                                        params={"fields": "Id,Email"})
    counts = Counter(row["Email"].lower() for row in contacts if row["Email"])
    emails = sorted(email for email, n in counts.items() if n == 1)[:10]
    users = [{"id": f"ext-{n:03d}", "emailAddress": email, "engagementScore": n / 10}
             for n, email in enumerate(emails)]
    users += [{"id": "ext-900", "emailAddress": "nobody@example.invalid"}]
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    (tmp_path / "batches").mkdir()
    meltano(project, {
        **user_env, "TAP_JSONL_PATH": str(tmp_path / "users.jsonl"),
        "TAP_JSONL_SCHEMA": json.dumps(USER_SCHEMA),
        "TAP_JSONL_BATCH_CONFIG": json.dumps({
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": (tmp_path / "batches").as_uri()}, "batch_size": 4}),
    }, "run", "tap-jsonl", "target-salesforce-crm")
    assert len(list((tmp_path / "batches").iterdir())) == 3  # eleven records, four per file
    report = json.loads(
        (project / "output" / "target-salesforce-crm" / "report.json").read_text())
    contact = report["objects"]["Contact"]
    assert (contact["updated"], contact["unmatched"]) == (len(emails), 1)
    written = salesforce_sandbox.admin("GET", "records/Contact", params={
        "fields": "Email,Personalization_User_Id__c",
        "where": "Personalization_User_Id__c != null"})
    assert sorted(row["Email"].lower() for row in written
                  if row["Personalization_User_Id__c"].startswith("ext-")) == emails
