"""`bench/run.py`: seed, start the sandboxes, run each path, write JSON and the README.

One size at a time: a pristine seeded copy (generated once), fresh working data, both
emulators on free ports, then the selected paths in a fixed order (target, bulk_api, tap,
reverse: the reverse path writes Personalization attributes the tap would otherwise read).
`bulk_api` (Bulk API 1.0 against 2.0) runs only when `--only` names it. A path that
fails is recorded with its error and the others still run; the exit status says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from harness import (
    bulk_api_path,
    dataset,
    goals,
    machine,
    profiling,
    readme,
    reverse_path,
    tap_path,
    target_path,
)
from harness.context import Context
from harness.sandbox import running

BENCH = Path(__file__).resolve().parents[1]
PATHS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "target": target_path.run, "bulk_api": bulk_api_path.run, "tap": tap_path.run,
    "reverse": reverse_path.run,
}
DEFAULT_PATHS = ("target", "tap", "reverse")
PROFILES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "target": target_path.profile, "tap": tap_path.profile, "reverse": reverse_path.profile,
}
SMALL_SIZE = 100_000  # up to here three repetitions by default, above one
SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = SUFFIXES.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in SUFFIXES else text
    if not digits.isdigit() or int(digits) * factor < 1:
        raise argparse.ArgumentTypeError(
            f"--size takes record counts such as 200, 10k, 100k or 1m; got {text!r}")
    return int(digits) * factor


def size_label(size: int) -> str:
    for suffix, factor in (("m", 1_000_000), ("k", 1_000)):
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10k",
                        help="comma-separated record counts, e.g. 10k,100k,1m (default 10k)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per measurement; the median is reported "
                             f"(default 3 up to {SMALL_SIZE:,} records, 1 above)")
    parser.add_argument("--only", default=",".join(DEFAULT_PATHS),
                        help=f"comma-separated paths to run: {', '.join(PATHS)} (default "
                             f"{', '.join(DEFAULT_PATHS)})")
    parser.add_argument("--seed", type=int, default=42, help="demo-data seed (default 42)")
    parser.add_argument("--work-dir", type=Path, default=BENCH / "work",
                        help="seeded data, captured streams and scratch files (git-ignored)")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--readme", type=Path, default=BENCH / "README.md",
                        help="Markdown file whose results block is regenerated")
    parser.add_argument("--profile", action="store_true",
                        help="after measuring, run each plugin once more under py-spy and "
                             "report where its time goes")
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(part) for part in args.size.split(",") if part.strip()]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.paths = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = [path for path in args.paths if path not in PATHS]
    if unknown or not args.paths:
        parser.error(f"--only takes {', '.join(PATHS)}; got {args.only!r}")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.profile:
        try:  # before anything is measured, not half-way through a long run
            profiling.py_spy()
        except FileNotFoundError as exc:
            parser.error(str(exc))
    return args


def _profile_path(name: str, ctx: Context) -> dict[str, Any]:
    print(f"[bench] {ctx.seeded.users:,} records: profiling the {name} path ...",
          file=sys.stderr, flush=True)
    try:
        return PROFILES[name](ctx)
    except Exception as exc:  # a failed profile is reported; the measurements still count
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _run_path(name: str, ctx: Context) -> dict[str, Any]:
    started, load_before = machine.now(), machine.load()
    print(f"[bench] {ctx.seeded.users:,} records: {name} path ...", file=sys.stderr, flush=True)
    try:
        result = PATHS[name](ctx)
    except Exception as exc:  # recorded in the results and the exit status, never dropped
        traceback.print_exc(file=sys.stderr)
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    result.update(measured_at=started, load_before=load_before, load_after=machine.load(),
                  repeat=ctx.repeat)
    print(f"[bench] {ctx.seeded.users:,} records: {name} path {result['status']}",
          file=sys.stderr, flush=True)
    return result


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    repeat = args.repeat or (3 if size <= SMALL_SIZE else 1)
    print(f"[bench] {size:,} records: seeding (cached in {args.work_dir})", file=sys.stderr,
          flush=True)
    seeded = dataset.pristine(args.work_dir, size, args.seed)
    data_dir = dataset.working_copy(seeded, args.work_dir)
    scratch = data_dir / "scratch"
    scratch.mkdir()
    paths: dict[str, Any] = {}
    stream = None
    with running(data_dir, seeded.folder) as servers:
        # reverse: the forward sync of its echo check reads the users stream too
        if {"target", "bulk_api", "reverse"} & set(args.paths):
            stream = dataset.users_stream(args.work_dir, seeded, servers["personalization"],
                                          scratch)
        ctx = Context(seeded, data_dir, scratch, servers, stream, repeat)
        for name in PATHS:  # fixed order, whatever order --only gave
            if name in args.paths:
                paths[name] = _run_path(name, ctx)
                if args.profile and name in PROFILES and paths[name]["status"] == "ok":
                    paths[name]["profile"] = _profile_path(name, ctx)
    for system in ("salesforce", "personalization"):  # the bulk of the disk; logs stay
        shutil.rmtree(data_dir / system)
    return {"seed": seeded.seed, "counts": seeded.counts,
            "users_stream": stream.as_json() if stream else None, "paths": paths}


def _save(size: int, measured: dict[str, Any], results_dir: Path) -> Path:
    """Merge into today's file for this size, so `--only reverse` adds to an earlier run."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{datetime.now(UTC).date().isoformat()}-{size_label(size)}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    if previous.get("schema") != goals.SCHEMA:
        previous = {}  # an older layout: its sections would not read like the new ones
    merged = {**previous.get("paths", {}), **measured["paths"]}
    paths = {name: merged[name] for name in PATHS if name in merged}
    result = {
        "schema": goals.SCHEMA, "size": size, "seed": measured["seed"],
        "updated_at": machine.now(), "machine": machine.describe(),
        "dataset": {"counts": measured["counts"],
                    "users_stream": measured["users_stream"]
                    or previous.get("dataset", {}).get("users_stream")},
        "paths": paths, "goals": goals.per_size(size, paths),
    }
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C: children and sandboxes this run started are stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = _arguments(argv)
    failed = []
    for size in args.sizes:
        measured = run_size(size, args)
        path = _save(size, measured, args.results_dir)
        readme.write(args.readme, args.results_dir)
        print(f"[bench] {size:,} records: results in {path}", file=sys.stderr, flush=True)
        failed += [f"{size_label(size)}:{name}" for name, section in measured["paths"].items()
                   if section["status"] != "ok"]
    if failed:
        print(f"[bench] failed paths: {', '.join(failed)} (errors in the results JSON)",
              file=sys.stderr)
        return 1
    return 0
