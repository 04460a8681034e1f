"""The two emulators as separate processes on free ports, as the plugins meet them.

Started with the same command line as `sandbox start` (`python -m emulators.cli serve`),
each on its own data folder copy, so a benchmark never touches `.sandbox/` or a test's
servers. The server's CPU time is read from /proc so the report can show how much of a
run's wall time the sandbox itself spent. `restore` puts a system's data back to the
pristine seed, so every repetition of a run that writes starts from the same state.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 60.0
SYSTEMS = ("salesforce", "personalization")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One running emulator and its administration endpoints (never part of the API)."""

    name: str
    url: str
    ca_bundle: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(method, f"{self.url}/__admin/{path.lstrip('/')}",
                                  verify=self.ca_bundle, timeout=600, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def ledger(self, limit: int = 100_000) -> dict[str, Any]:
        return self.admin("GET", "ledger", params={"limit": str(limit)})

    def clear_ledger(self) -> None:
        self.admin("DELETE", "ledger")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process, all threads (bulk worker included)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _wait_ready(server: Server, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"the {server.name} sandbox exited during start-up; see {log}")
        try:
            if requests.get(f"{server.url}/__admin/health", verify=server.ca_bundle,
                            timeout=2).ok:
                return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


class Sandboxes:
    """Both emulators on one data folder; `[name]` is the running server of a system."""

    def __init__(self, data_dir: Path, pristine: Path) -> None:
        self.data_dir = data_dir
        self.pristine = pristine
        self._servers: dict[str, Server] = {}

    def __getitem__(self, name: str) -> Server:
        return self._servers[name]

    def start(self, name: str) -> Server:
        port = free_port()
        log = self.data_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "emulators.cli", "--data-dir", str(self.data_dir),
                 "serve", name, "--port", str(port)],
                stdout=out, stderr=out)
        server = Server(name, f"https://127.0.0.1:{port}", str(self.data_dir / "ca.pem"),
                        process)
        self._servers[name] = server
        _wait_ready(server, log)
        return server

    def restore(self, name: str) -> Server:
        """Stop the system, put its pristine data back, start it again (on a new port)."""
        _stop(self._servers.pop(name))
        shutil.rmtree(self.data_dir / name)
        shutil.copytree(self.pristine / name, self.data_dir / name)
        return self.start(name)

    def stop_all(self) -> None:
        for server in self._servers.values():
            _stop(server)
        self._servers.clear()


@contextmanager
def running(data_dir: Path, pristine: Path) -> Iterator[Sandboxes]:
    """Start both emulators on `data_dir` (certificates already in it); stop them after."""
    sandboxes = Sandboxes(data_dir, pristine)
    try:
        for name in SYSTEMS:
            sandboxes.start(name)
        yield sandboxes
    finally:
        sandboxes.stop_all()
