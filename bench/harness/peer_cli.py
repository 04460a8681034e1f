"""`bench/peer.py`: seed, start the sandboxes, run the peer path, write JSON and the README.

Its results are files of their own (`results/peer-<date>-<size>.json`, schema `peer-1`) and
its README block has its own markers, so a peer run never replaces the main benchmark's
newest results for a size, nor they its.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from harness import dataset, machine, peer_path, peer_readme
from harness.cli import BENCH, parse_size, size_label
from harness.context import Context
from harness.sandbox import running

SCHEMA = "peer-1"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/peer.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10k", help="comma-separated user counts (10k)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tap; median reported")
    parser.add_argument("--seed", type=int, default=42, help="demo-data seed (default 42)")
    parser.add_argument("--work-dir", type=Path, default=BENCH / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--readme", type=Path, default=BENCH / "README.md")
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(part) for part in args.size.split(",") if part.strip()]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    return args


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    seeded = dataset.pristine(args.work_dir, size, args.seed)
    data_dir = dataset.working_copy(seeded, args.work_dir)
    scratch = data_dir / "scratch"
    scratch.mkdir()
    started, load_before = machine.now(), machine.load()
    print(f"[bench] {size:,} users: peer path ...", file=sys.stderr, flush=True)
    try:
        with running(data_dir, seeded.folder) as servers:
            section = peer_path.run(Context(seeded, data_dir, scratch, servers, None,
                                            args.repeat))
    except Exception as exc:  # recorded in the results and the exit status, never dropped
        traceback.print_exc(file=sys.stderr)
        section = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    section.update(measured_at=started, load_before=load_before, load_after=machine.load(),
                   repeat=args.repeat)
    for system in ("salesforce", "personalization"):
        shutil.rmtree(data_dir / system, ignore_errors=True)
    return {"schema": SCHEMA, "size": size, "seed": seeded.seed, "updated_at": machine.now(),
            "machine": machine.describe(), "dataset": {"counts": seeded.counts},
            "peer": section}


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C: the taps and sandboxes this run started are stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = _arguments(argv)
    failed = []
    for size in args.sizes:
        result = run_size(size, args)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        name = f"peer-{datetime.now(UTC).date().isoformat()}-{size_label(size)}.json"
        path = args.results_dir / name
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        peer_readme.write(args.readme, args.results_dir)
        print(f"[bench] {size:,} users: peer path {result['peer']['status']}, results in "
              f"{path}", file=sys.stderr, flush=True)
        if result["peer"]["status"] != "ok":
            failed.append(f"{size_label(size)}: {result['peer'].get('error')}")
    if failed:
        print("[bench] failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0
