"""Installing this project's built distributions as a user would: uv, fresh environments.

Only the project's uv cache is shared (so nothing is downloaded twice); interpreters are
never downloaded, only found (pyenv's versions included).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".venv" / "bin" / "uv"
MODULES = {"tap-personalization": "tap_personalization",
           "target-salesforce-crm": "target_salesforce_crm"}


def uv_env() -> dict[str, str]:
    """The project's uv cache, no interpreter downloads, nothing else of this session."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MELTANO_", "TAP_", "TARGET_", "VIRTUAL_ENV", "PYTHON"))}
    env.update({"UV_CACHE_DIR": str(ROOT / ".cache" / "uv"), "UV_PYTHON_DOWNLOADS": "never"})
    return env


def wheel(dist: Path, distribution: str) -> Path:
    [found] = dist.glob(f"{MODULES[distribution]}-*-py3-none-any.whl")
    return found


def interpreter(version: str) -> str:
    """A Python `version` on this machine, as uv finds it."""
    env = uv_env()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    extra = [str(path) for path in sorted(pyenv.glob(f"{version}*/bin"))]
    env["PATH"] = os.pathsep.join([*extra, env.get("PATH", "")])
    found = subprocess.run([str(UV), "python", "find", version], env=env, capture_output=True,
                           text=True, check=False)
    assert found.returncode == 0, (
        f"no Python {version} here: `uv python install {version}` or put python{version} on "
        f"PATH ({found.stderr.strip()})")
    return found.stdout.strip()


def fresh_venv(folder: Path, python: str) -> Path:
    """An empty virtual environment; its bin folder."""
    subprocess.run([str(UV), "venv", "--quiet", "--python", python, str(folder)], env=uv_env(),
                   check=True, capture_output=True, text=True, timeout=120)
    return folder / "bin"


def install(bin_dir: Path, *requirements: Path | str) -> subprocess.CompletedProcess[str]:
    """`uv pip install` into that environment, from the package index only (plus options)."""
    return subprocess.run(
        [str(UV), "pip", "install", "--python", str(bin_dir / "python"),
         *map(str, requirements)],
        env=uv_env(), check=True, capture_output=True, text=True, timeout=600)
