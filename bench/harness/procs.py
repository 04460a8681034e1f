"""Run plugins as child processes and measure each one on its own.

Every command runs under `rusage_wrapper.py`, which forks it and reads its rusage with
`os.wait4` when it ends: CPU time and peak RSS of exactly that process (see the wrapper for
why the harness cannot fork the plugins itself), no polling, nothing inside the plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WRAPPER = Path(__file__).with_name("rusage_wrapper.py")
DEFAULT_TIMEOUT_S = 4 * 3600.0
# Some machines (CI images, this one) set it; then every plugin start recompiles all its
# imports (about 0.6 s of CPU for singer-sdk), which a normal installation never pays
# after its first run. Children run with the ordinary bytecode cache.
NO_BYTECODE_CACHE = "PYTHONDONTWRITEBYTECODE"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != NO_BYTECODE_CACHE}
    return {**env, **(extra or {})}


@dataclass(frozen=True)
class Usage:
    """What one child cost: wall time, CPU time (user + system), peak RSS, run-queue wait."""

    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float
    returncode: int
    runqueue_s: float | None = None

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def net_s(self, server_s: float = 0.0) -> float:
        """Wall time without run-queue wait (others' load) and without `server_s` spent by
        the sandbox; never below the child's own CPU time."""
        return round(max(self.cpu_s, self.wall_s - (self.runqueue_s or 0.0) - server_s), 3)

    def as_json(self, server_s: float = 0.0) -> dict[str, Any]:
        return {**asdict(self), "cpu_s": round(self.cpu_s, 3),
                "net_wall_s": self.net_s(server_s)}


class ChildFailed(RuntimeError):
    """A measured child exited non-zero; the message ends with the tail of its log."""


def tail(path: Path, lines: int = 8) -> str:
    """The last lines of a child's log, for a failure message that says what went wrong."""
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 16_384))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _wrapped(cmd: Sequence[str], log: Path) -> tuple[list[str], Path]:
    usage_file = log.with_suffix(".usage.json")
    usage_file.unlink(missing_ok=True)
    return [sys.executable, "-S", "-I", str(WRAPPER), str(usage_file), *cmd], usage_file


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()  # the wrapper forwards it to the plugin


@contextmanager
def _children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The children started in the block (append them); if the block fails, all are stopped.

    A plugin left running after a failed start (say its profiler could not be started)
    would go on writing to the sandboxes while later paths are measured.
    """
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    except BaseException:
        _stop(started)
        for proc in started:
            proc.wait()
        raise


def _wait_all(procs: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> list[int]:
    """Wait for the children this run started; past the time bound, or when the harness
    itself is interrupted, stop them (and only them) instead of leaving them behind."""
    timer = threading.Timer(timeout_s, _stop, args=(procs,))
    timer.daemon = True
    timer.start()
    try:
        return [proc.wait() for proc in procs]
    except BaseException:
        _stop(procs)
        for proc in procs:
            proc.wait()
        raise
    finally:
        timer.cancel()


def _result(cmd: Sequence[str], usage_file: Path, log: Path, returncode: int) -> Usage:
    if returncode or not usage_file.exists():
        raise ChildFailed(f"{Path(cmd[0]).name} exited {returncode} (log {log}):\n{tail(log)}")
    return Usage(**json.loads(usage_file.read_text()))


def run(cmd: Sequence[str], *, log: Path, stdin: Path | None = None,
        stdout: Path | None = None, env: dict[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S) -> Usage:
    """Run one child (stdin from a file, stdout to a file or /dev/null) and measure it.

    `env` adds to the harness's environment.
    """
    wrapped, usage_file = _wrapped(cmd, log)
    with (open(stdin or os.devnull, "rb") as source,
          open(stdout or os.devnull, "wb") as sink,
          log.open("wb") as errors):
        proc = subprocess.Popen(wrapped, stdin=source, stdout=sink, stderr=errors,
                                env=child_env(env))
        [returncode] = _wait_all([proc], timeout_s)
    return _result(cmd, usage_file, log, returncode)


def pipeline(producer: Sequence[str], consumer: Sequence[str], *, logs: tuple[Path, Path],
             env: dict[str, str] | None = None,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Usage, Usage]:
    """`producer | consumer`, as Meltano runs a tap into a target; each measured alone."""
    first_cmd, first_usage = _wrapped(producer, logs[0])
    second_cmd, second_usage = _wrapped(consumer, logs[1])
    with (open(os.devnull, "rb") as nothing, open(os.devnull, "wb") as sink,
          logs[0].open("wb") as producer_log, logs[1].open("wb") as consumer_log):
        first = subprocess.Popen(first_cmd, stdin=nothing, stdout=subprocess.PIPE,
                                 stderr=producer_log, env=child_env(env))
        assert first.stdout is not None
        second = subprocess.Popen(second_cmd, stdin=first.stdout, stdout=sink,
                                  stderr=consumer_log, env=child_env(env))
        first.stdout.close()  # the consumer holds the only reading end now
        first_code, second_code = _wait_all([first, second], timeout_s)
    # The consumer first: when it dies, the producer only reports a broken pipe.
    consumed = _result(consumer, second_usage, logs[1], second_code)
    return _result(producer, first_usage, logs[0], first_code), consumed


def profiled(commands: Sequence[Sequence[str]], *, logs: Sequence[Path],
             samples: Sequence[Path], sampler: Callable[[int, Path], list[str]],
             stdin: Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Run one command, or a pipeline of two, with a sampling profiler attached to each.

    The profiler attaches by pid rather than wrapping the command: it prints to its own
    stdout, which must not end up in a Singer stream. Not measured.
    """
    procs: list[subprocess.Popen[bytes]] = []
    samplers: list[subprocess.Popen[bytes]] = []
    with (open(stdin or os.devnull, "rb") as source, open(os.devnull, "wb") as sink,
          ExitStack() as files, _children() as started):
        upstream: Any = source
        for index, (cmd, log) in enumerate(zip(commands, logs, strict=True)):
            last = index == len(commands) - 1
            errors = files.enter_context(log.open("wb"))
            proc = subprocess.Popen(list(cmd), stdin=upstream,
                                    stdout=sink if last else subprocess.PIPE, stderr=errors,
                                    env=child_env())
            started.append(proc)
            if upstream is not source:
                upstream.close()  # the next process holds the only reading end now
            upstream = proc.stdout
            procs.append(proc)
        for proc, raw, log in zip(procs, samples, logs, strict=True):
            sampler_log = files.enter_context(log.with_suffix(".sampler.log").open("wb"))
            samplers.append(subprocess.Popen(sampler(proc.pid, raw), stdin=subprocess.DEVNULL,
                                             stdout=sampler_log, stderr=sampler_log))
            started.append(samplers[-1])
        codes = _wait_all(procs, timeout_s)
        _wait_all(samplers, 60.0)
    for cmd, log, code in zip(commands, logs, codes, strict=True):
        if code:
            raise ChildFailed(f"{Path(cmd[0]).name} exited {code} (log {log}):\n{tail(log)}")
