"""The built wheels install alone into a fresh virtual environment and run.

`make dist` builds every package (each wheel from its sdist); each connector wheel then goes
into an empty virtual environment on Python 3.11 and 3.12 with nothing but the package index
behind it: no path, no other wheel of ours. The mapping library comes inside the wheel.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.dist import fresh_venv, install, interpreter, wheel

pytestmark = pytest.mark.e2e  # no xdist group: each worker builds dist/ once (seconds)
PLUGINS = {"tap-personalization": ("tap-personalization", "target-personalization"),
           "target-salesforce-crm": ("target-salesforce-crm", "tap-salesforce-crm")}
ROOT = Path(__file__).resolve().parents[2]
MAPPING_COMMAND = {"tap-personalization": "personalization-mapping",
                   "target-salesforce-crm": "salesforce-crm-mapping"}


@pytest.mark.parametrize("version", ["3.11", "3.12"])
@pytest.mark.parametrize("distribution", sorted(PLUGINS))
def test_a_wheel_installs_alone_and_its_plugins_answer(
    distribution: str, version: str, dist_dir: Path, tmp_path: Path,
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", interpreter(version))
    install(bin_dir, wheel(dist_dir, distribution))
    asked = {plugin: subprocess.Popen([str(bin_dir / plugin), "--about", "--format=json"],
                                      stdout=subprocess.PIPE, text=True)
             for plugin in PLUGINS[distribution]}  # both at once: each takes a second or two
    for plugin, process in asked.items():
        stdout, _ = process.communicate(timeout=120)
        assert process.returncode == 0, plugin
        about = json.loads(stdout)
        assert (about["name"], about["version"]) == (plugin, "0.1.0")
        assert "batch" in about["capabilities"]
    written = subprocess.run([str(bin_dir / MAPPING_COMMAND[distribution]), "init",
                              str(tmp_path / "transforms")], capture_output=True, text=True,
                             check=True, timeout=60)
    assert "wrote" in written.stdout
    assert sorted(path.name for path in (tmp_path / "transforms").iterdir()) == [
        "crm-to-personalization.yml", "mapping.schema.json", "personalization-to-crm.yml"]


def test_both_wheels_share_one_environment_without_sharing_a_file(
    dist_dir: Path, tmp_path: Path,
) -> None:
    """Each carries its copy of the mapping library under its own package: no file of one
    wheel is also a file of the other, so neither install nor uninstall breaks the other."""
    bin_dir = fresh_venv(tmp_path / "venv", interpreter("3.11"))
    installed = install(bin_dir, *(wheel(dist_dir, name) for name in sorted(PLUGINS)))
    assert "more than one package" not in installed.stderr
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    records = [set((next(site.glob(f"{name}-*.dist-info")) / "RECORD").read_text().splitlines())
               for name in ("tap_personalization", "target_salesforce_crm")]
    paths = [{line.split(",")[0] for line in record} for record in records]
    assert not {path for path in paths[0] & paths[1] if not path.startswith("../")}
    subprocess.run([str(bin_dir / "python"), "-c",
                    "import target_salesforce_crm.target.target, "
                    "tap_personalization.target.target"], check=True, timeout=120)


def test_the_package_folder_installs_alone(tmp_path: Path) -> None:
    """A path `pip_url` (and a `git+…#subdirectory=` one: the same build in a clone) builds
    the wheel straight from the folder, the library copied from ../transforms."""
    bin_dir = fresh_venv(tmp_path / "venv", interpreter("3.12"))
    # uv would reuse a cached build of the folder while its pyproject.toml is unchanged
    install(bin_dir, ROOT / "tap-personalization", "--reinstall-package", "tap-personalization")
    answer = subprocess.run([str(bin_dir / "target-personalization"), "--about", "--format=json"],
                            capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(answer.stdout)["name"] == "target-personalization"
    site = next((tmp_path / "venv" / "lib").glob("python3.12/site-packages"))
    assert (site / "tap_personalization" / "_vendor" / "crm_sync_mapping" / "examples").is_dir()
