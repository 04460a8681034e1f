"""`bench/locks.py`: lock failures and wall time, input order vs grouped vs serial.

Seeds a Salesforce sandbox where Accounts have many Contacts, feeds target-salesforce-crm
the Contacts round-robin over their Accounts in three modes (see `harness/locks.py`) and
writes `results/locks/<date>-<contacts>.json` and the README's lock section.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from harness import locks, locks_readme, machine
from harness.cli import parse_size, size_label

BENCH = Path(__file__).resolve().parent


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/locks.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=parse_size, default=100_000,
                        help="Contacts in the seed and records in the input (default 100k)")
    parser.add_argument("--accounts", type=parse_size, default=2_000,
                        help="Accounts the Contacts belong to (default 2k)")
    parser.add_argument("--record-ms", type=float, default=0.2,
                        help="sandbox server time per record while a batch holds its "
                             "Accounts, in ms (default 0.2: 2 s per 10,000-record batch)")
    parser.add_argument("--lock-wait", type=float, default=0.5,
                        help="seconds a contending batch waits for an Account (default 0.5; "
                             "a real org waits about 10 s for batches that take minutes)")
    parser.add_argument("--batch-size", type=int, default=10_000,
                        help="bulk_batch_size of the target (default 10,000, its default)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per mode, interleaved; medians reported (default 1)")
    parser.add_argument("--work-dir", type=Path, default=BENCH / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results" / "locks")
    parser.add_argument("--readme", type=Path, default=BENCH / "README.md")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if not 1 <= args.batch_size <= 10_000:
        parser.error(f"--batch-size must be between 1 and 10,000, got {args.batch_size}")
    if not 0 < args.accounts <= args.contacts:
        parser.error("--accounts must be between 1 and --contacts")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    load = locks.LockLoad(args.contacts, args.accounts, args.record_ms, args.lock_wait,
                          args.batch_size, args.repeat)
    print(f"[bench] locks: {load.contacts:,} contacts under {load.accounts:,} accounts",
          file=sys.stderr, flush=True)
    started = machine.now()
    result = {"measured_at": started, "machine": machine.describe(),
              **locks.run(args.work_dir, load)}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / (f"{datetime.now(UTC).date().isoformat()}-"
                               f"{size_label(load.contacts)}.json")
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    locks_readme.write(args.readme, args.results_dir)
    print(f"[bench] locks: results in {path}", file=sys.stderr, flush=True)
    failed = [mode for mode, summary in result["modes"].items()
              if summary["status"] != "succeeded"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
