"""The peer, singer-io `tap-salesforce` 2.8.1, in a virtual environment of its own.

Installed from PyPI with pip into `<work-dir>/peer-tap-salesforce-2.8.1/` once (a marker
file says it is complete), never into the project's `.venv`: its pins (singer-python 6,
requests, jsonschema 2.6) would clash with singer-sdk's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness import procs

PACKAGE, VERSION = "tap-salesforce", "2.8.1"
MARKER = "installed.txt"


def peer_tap(work_dir: Path) -> Path:
    """The peer's console script, installing it first if needed."""
    venv = work_dir / f"peer-{PACKAGE}-{VERSION}"
    executable = venv / "bin" / PACKAGE
    if (venv / MARKER).exists() and executable.exists():
        return executable
    shutil.rmtree(venv, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / f"peer-{PACKAGE}-install.log"
    with log.open("wb") as out:
        steps = ([sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install",
                  "--disable-pip-version-check", f"{PACKAGE}=={VERSION}"])
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT,
                              env=procs.child_env(), check=False).returncode:
                raise RuntimeError(f"{PACKAGE}=={VERSION} did not install on Python "
                                   f"{sys.version.split()[0]} (log {log}):\n{procs.tail(log)}")
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"],
                            capture_output=True, text=True, check=True).stdout
    (venv / MARKER).write_text(freeze)
    return executable


def installed_versions(executable: Path) -> dict[str, str]:
    """The peer environment's `pip freeze`, for the results file."""
    marker = executable.parents[1] / MARKER
    pairs = (line.split("==", 1) for line in marker.read_text().splitlines() if "==" in line)
    return dict(sorted(pairs))
