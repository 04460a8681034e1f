"""Run a command and write its wall time, CPU time and peak RSS as JSON when it ends.

Why a separate small process: on Linux a child's `ru_maxrss` starts at its parent's RSS at
fork time (exec keeps the old memory's high-water mark), so every child of the harness
(about 90 MB with the emulators' modules loaded) would report at least that. Forked from
this process (Python without site, a few MB), a plugin's peak RSS is its own.

    python -S -I rusage_wrapper.py USAGE.json COMMAND [ARGS...]

It also reads the command's run-queue wait from /proc/PID/schedstat (main thread) before
reaping it: the time it was ready to run but another process had the CPU, which is how a
busy shared machine inflates wall time. stdin, stdout and stderr pass straight through;
SIGTERM is forwarded to the command; the exit status is the command's. Only the standard
library, nothing imported from the bench.
"""

import json
import os
import signal
import sys
import time


def _runqueue_seconds(pid: int) -> float | None:
    """Nanoseconds spent waiting on a run queue, as seconds; None without schedstats."""
    try:
        with open(f"/proc/{pid}/schedstat") as stats:
            return round(int(stats.read().split()[1]) / 1e9, 3)
    except (OSError, IndexError, ValueError):
        return None


def main() -> int:
    usage_file, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    try:
        pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(pid, signum))
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: /proc still there
    runqueue = _runqueue_seconds(pid)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(usage_file, "w") as out:
        json.dump({"wall_s": round(wall, 3), "user_s": round(usage.ru_utime, 3),
                   "sys_s": round(usage.ru_stime, 3),
                   "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
                   "runqueue_s": runqueue, "returncode": code}, out)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
