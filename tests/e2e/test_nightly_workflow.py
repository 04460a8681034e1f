"""The example nightly CI workflow runs only documented commands, and they work.

The workflow's `run:` steps are executed here exactly as written, against the sandboxes
instead of prod (`MELTANO_ENVIRONMENT`), with a file-system state backend standing in for the
object store, so a second night proves the state survives between runs.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly-sync.yml"

# Meltano writes its run files into the one project: never two Meltano runs at once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("meltano-project")]


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _run_commands() -> list[str]:
    steps = _workflow()["jobs"]["sync"]["steps"]
    lines = [line.strip() for step in steps if "run" in step
             for line in step["run"].splitlines()]
    return [line for line in lines if line]


def _readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"## {title}")
    end = readme.find("\n## ", start + 1)
    return readme[start:end if end != -1 else None]


def test_workflow_is_scheduled_and_keeps_state_and_reports() -> None:
    workflow = _workflow()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["schedule"][0]["cron"]
    job = workflow["jobs"]["sync"]
    assert job["env"]["MELTANO_ENVIRONMENT"] == "prod"
    assert job["env"]["MELTANO_STATE_BACKEND_URI"] == "${{ secrets.MELTANO_STATE_BACKEND_URI }}"
    secrets_only = {key: value for key, value in job["env"].items() if key != "MELTANO_ENVIRONMENT"}
    assert all(value.startswith("${{ secrets.") for value in secrets_only.values())
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(use.startswith("actions/upload-artifact") for use in uses)


def test_workflow_runs_only_commands_the_readme_documents() -> None:
    section = _readme_section("Run it nightly")
    missing = [command for command in _run_commands() if command not in section]
    assert missing == []


def test_workflow_commands_run_against_the_sandboxes(
    project_env: dict[str, str], project_root: Path, tmp_path: Path,
) -> None:
    env = dict(project_env)
    env["MELTANO_STATE_BACKEND_URI"] = f"file://{tmp_path / 'state'}"
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "step-summary.md")

    def night() -> None:
        for command in _run_commands():
            result = subprocess.run(shlex.split(command), cwd=project_root, env=env,
                                    capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"{command} failed:\n{result.stderr[-4000:]}"

    night()
    assert list((tmp_path / "state").rglob("*.json")), "no state written to the state backend"
    summary = (tmp_path / "step-summary.md").read_text()
    assert "target-salesforce-crm" in summary

    first = _bookmarks(env, project_root)
    assert first, "no tap-salesforce-crm bookmarks in the state backend"
    night()
    second = _bookmarks(env, project_root)
    # The second night resumed from the stored bookmarks and moved them forward (the forward
    # sync's own writes changed SystemModstamp on the matched contacts and accounts).
    assert set(second) == set(first)
    assert all(second[stream] >= first[stream] for stream in first)
    assert second["contacts"] > first["contacts"]


def _bookmarks(env: dict[str, str], project_root: Path) -> dict[str, str]:
    """Replication-key values of tap-salesforce-crm's streams, read from the state backend."""
    meltano = str(ROOT / ".venv" / "bin" / "meltano")
    listed = subprocess.run([meltano, "state", "list"], cwd=project_root, env=env,
                            capture_output=True, text=True, check=True).stdout
    state_id = next(line.strip() for line in listed.splitlines()
                    if "tap-salesforce-crm-to-target-personalization" in line)
    raw = subprocess.run([meltano, "state", "get", state_id],
                         cwd=project_root, env=env, capture_output=True, text=True,
                         check=True).stdout
    state = json.loads(raw[raw.index("{"):])
    streams = state["singer_state"]["bookmarks"]
    return {name: bookmark["replication_key_value"] for name, bookmark in streams.items()
            if "replication_key_value" in bookmark}
