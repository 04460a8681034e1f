"""Run a command and write its wall time, CPU time and peak RSS as JSON when it ends.

Why a separate small process: on Linux a child's `ru_maxrss` starts at its parent's RSS at
fork time (exec keeps the old memory's high-water mark), so every child of the harness
(about 90 MB with the emulators' modules loaded) would report at least that. Forked from
this process (Python without site, a few MB), a plugin's peak RSS is its own.

    python -S -I rusage_wrapper.py USAGE.json COMMAND [ARGS...]

stdin, stdout and stderr pass straight through; SIGTERM is forwarded to the command; the
exit status is the command's. Only the standard library, nothing imported from the bench.
"""

import json
import os
import signal
import sys
import time


def main() -> int:
    usage_file, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    try:
        pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(pid, signum))
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(usage_file, "w") as out:
        json.dump({"wall_s": round(wall, 3), "user_s": round(usage.ru_utime, 3),
                   "sys_s": round(usage.ru_stime, 3),
                   "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
                   "returncode": code}, out)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
