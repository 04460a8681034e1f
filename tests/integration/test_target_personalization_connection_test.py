"""`target-personalization --test` (the `target-personalization:test` Meltano command).

The check runs the real CLI in a subprocess: one harmless read proves URL, CA and token, the
feed folder is checked, and the answer is one line and the exit code; stdin is never read
and nothing is written (no report, no feed file). `--about`, `--config` and `--input` keep
working beside the new flag.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from emulators import defaults
from support.target_personalization import config_for, inbound_of

pytestmark = pytest.mark.integration

NOT_SINGER = "this is not a Singer message\n"


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "users", json=[{"id": "u-000001", "emailAddress": "ada@example.com"}])
    box.clear_ledger()
    return box


def cli(config: dict[str, Any], tmp_path: Path, *args: str,
        stdin: str = NOT_SINGER) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-c",
         "from tap_personalization.target.target import TargetPersonalization;"
         "TargetPersonalization.cli()", "--config", str(path), *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_good_configuration_passes_with_one_read_and_writes_nothing(
    sandbox: Any, tmp_path: Path,
) -> None:
    answer = cli(config_for(sandbox, tmp_path / "out"), tmp_path, "--test")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip().splitlines() == [
        f"Connection test passed: {sandbox.url} dataset '{defaults.PZN_DATASET}' answered the "
        f"users export; feed files can go to folder {inbound_of(sandbox)}."]
    assert sandbox.ledger()["by_kind"] == {"users_export": 1}
    assert not (tmp_path / "out").exists()  # no report, no rejects file
    assert list(inbound_of(sandbox).iterdir()) == []


def test_wrong_secret_fails_naming_the_settings(sandbox: Any, tmp_path: Path) -> None:
    config = config_for(sandbox, tmp_path / "out", api_key_secret="not-the-secret")
    answer = cli(config, tmp_path, "--test")
    assert answer.returncode == 1
    line = last_line(answer.stderr)
    assert line.startswith("Connection test failed: ")
    assert "check api_key_id and api_key_secret" in line
    assert "not-the-secret" not in answer.stdout + answer.stderr
    assert "Traceback" not in answer.stderr
    assert answer.stdout == ""


def test_missing_feed_dir_fails_naming_the_setting(sandbox: Any, tmp_path: Path) -> None:
    config = config_for(sandbox, tmp_path / "out", feed_dir=str(tmp_path / "no-such-folder"))
    answer = cli(config, tmp_path, "--test")
    assert answer.returncode == 1
    line = last_line(answer.stderr)
    assert line.startswith("Connection test failed: Setting feed_dir: folder ")
    assert "no-such-folder does not exist" in line
    assert sandbox.ledger()["total"] == 0  # refused before any call


def test_about_and_input_still_work(sandbox: Any, tmp_path: Path) -> None:
    about = cli({}, tmp_path, "--about", "--format", "json", stdin="")
    assert about.returncode == 0, about.stderr
    settings = json.loads(about.stdout)["settings"]["properties"]
    assert settings["dry_run"]["default"] is False
    assert settings["dry_run_sample_size"]["default"] == 5

    messages = tmp_path / "messages.jsonl"
    messages.write_text(
        json.dumps({"type": "STATE", "value": {"bookmarks": {"contacts": {"n": 1}}}}) + "\n")
    real = cli(config_for(sandbox, tmp_path / "out"), tmp_path, "--input", str(messages))
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout) == {"bookmarks": {"contacts": {"n": 1}}}
    dry = cli(config_for(sandbox, tmp_path / "out", dry_run=True), tmp_path,
              "--input", str(messages))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == ""  # a dry run emits no STATE


def test_a_feed_dir_that_takes_no_file_fails_although_access_says_writable(
    sandbox: Any, tmp_path: Path,
) -> None:
    """sysfs: `os.access` answers writable to root, yet no file can be created there."""
    folder = Path("/sys/kernel")
    config = config_for(sandbox, tmp_path / "out", feed_dir=str(folder))
    answer = cli(config, tmp_path, "--test")
    assert answer.returncode == 1
    assert last_line(answer.stderr) == (
        f"Connection test failed: Setting feed_dir: cannot create a file in folder {folder} "
        "(Permission denied); fix its permissions or point feed_dir elsewhere.")
    assert "Traceback" not in answer.stderr
