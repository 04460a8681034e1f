"""Shared fixtures: the two sandboxes, each started once per test session on a free port.

Integration tests talk to them over TLS exactly as the plugins do, trusting the
throw-away CA through `ca_bundle` (never by disabling verification).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from emulators import defaults
from emulators.tls import ensure_certificates


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxServer:
    """A running emulator and its administration endpoints."""

    name: str
    url: str
    ca_bundle: str
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(
            method, f"{self.url}/__admin/{path.lstrip('/')}", verify=self.ca_bundle,
            timeout=60, **kwargs,
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def reset(self) -> None:
        self.admin("POST", "reset")

    def ledger(self) -> dict[str, Any]:
        return self.admin("GET", "ledger")

    def clear_ledger(self) -> None:
        self.admin("DELETE", "ledger")

    def faults(self, **settings: Any) -> None:
        self.admin("POST", "faults", json=settings)

    def salesforce_token(self) -> dict[str, Any]:
        """A client-credentials token of the default connected app (Salesforce sandbox only)."""
        answer = requests.post(
            f"{self.url}/services/oauth2/token", data={"grant_type": "client_credentials"},
            auth=(defaults.SF_CLIENT_ID, defaults.SF_CLIENT_SECRET), verify=self.ca_bundle,
            timeout=30,
        )
        answer.raise_for_status()
        return dict(answer.json())


def _start(name: str, data_dir: Path) -> Iterator[SandboxServer]:
    ca = ensure_certificates(data_dir)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log = data_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "emulators.cli", "--data-dir", str(data_dir), "serve", name,
             "--port", str(port)],
            stdout=out, stderr=out,
        )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} sandbox exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/__admin/health", verify=str(ca), timeout=2).ok:
                break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)
    try:
        yield SandboxServer(name, url, str(ca), data_dir, process)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="session")
def salesforce_sandbox(sandbox_dir: Path) -> Iterator[SandboxServer]:
    yield from _start("salesforce", sandbox_dir)


@pytest.fixture(scope="session")
def personalization_sandbox(sandbox_dir: Path) -> Iterator[SandboxServer]:
    yield from _start("personalization", sandbox_dir)
