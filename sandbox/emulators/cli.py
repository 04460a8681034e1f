"""`sandbox`: start, stop, seed and inspect the local API emulators.

    sandbox start            both servers in the background (TLS, data in .sandbox/)
    sandbox seed --users N   deterministic demo data in both systems
    sandbox status           URLs, record counts and API-call ledgers
    sandbox summary          what the syncs changed in each system, and the latest run reports
    sandbox stop             stop both servers
    sandbox serve NAME       one server in the foreground (what `start` runs)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from emulators import defaults
from emulators.tls import ensure_certificates

RUNTIME_FILE = "sandbox.json"
SYSTEMS = ("salesforce", "personalization")


def _create_app(name: str, data_dir: Path) -> Any:
    if name == "salesforce":
        from emulators.salesforce.app import create_app
    else:
        from emulators.personalization.app import create_app
    return create_app(data_dir)


def _runtime(data_dir: Path) -> dict[str, Any]:
    path = data_dir / RUNTIME_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _wait_ready(url: str, ca: Path, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise SystemExit(f"sandbox server behind {url} exited during start-up; see its log")
        try:
            if requests.get(f"{url}/__admin/health", verify=str(ca), timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"sandbox server behind {url} did not answer within {timeout:.0f}s")


def start(data_dir: Path, ports: dict[str, int]) -> dict[str, Any]:
    """Start both servers detached; reuse ones that are already running."""
    ca = ensure_certificates(data_dir)
    runtime = _runtime(data_dir)
    for name in SYSTEMS:
        entry = runtime.get(name)
        if entry and _alive(entry["pid"]):
            continue
        url = f"https://{defaults.HOST}:{ports[name]}"
        with (data_dir / f"{name}.log").open("ab") as log:  # the child keeps its own handle
            proc = subprocess.Popen(
                [sys.executable, "-m", "emulators.cli", "--data-dir", str(data_dir), "serve",
                 name, "--port", str(ports[name])],
                stdout=log, stderr=log, start_new_session=True,
            )
        _wait_ready(url, ca, proc.pid)
        runtime[name] = {"url": url, "pid": proc.pid}
    runtime["ca_bundle"] = str(ca.resolve())
    (data_dir / RUNTIME_FILE).write_text(json.dumps(runtime, indent=2))
    return runtime


def stop(data_dir: Path) -> None:
    runtime = _runtime(data_dir)
    for name in SYSTEMS:
        entry = runtime.pop(name, None)
        if not entry or not _alive(entry["pid"]):
            continue
        os.kill(entry["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(entry["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(entry["pid"]):
            os.kill(entry["pid"], signal.SIGKILL)
    (data_dir / RUNTIME_FILE).write_text(json.dumps(runtime, indent=2))


def status(data_dir: Path) -> dict[str, Any]:
    runtime = _runtime(data_dir)
    report: dict[str, Any] = {}
    for name in SYSTEMS:
        entry = runtime.get(name)
        if not entry or not _alive(entry["pid"]):
            report[name] = {"running": False}
            continue
        answer = requests.get(
            f"{entry['url']}/__admin/status", verify=runtime["ca_bundle"], timeout=10
        )
        answer.raise_for_status()
        report[name] = {"running": True, "url": entry["url"], **answer.json()}
    return report


def _admin(runtime: dict[str, Any], name: str, path: str, **params: str) -> Any:
    answer = requests.get(f"{runtime[name]['url']}/__admin/{path}", params=params,
                          verify=runtime["ca_bundle"], timeout=60)
    answer.raise_for_status()
    return answer.json()


def _calls(ledger: dict[str, Any]) -> str:
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(ledger["by_kind"].items()))
    return f"{ledger['total']} ({kinds})" if kinds else "0"


def summary(data_dir: Path, reports: Path) -> str:
    """What the forward and reverse syncs left in each system, for people watching a demo."""
    runtime = _runtime(data_dir)
    lines = [f"Salesforce CRM ({runtime['salesforce']['url']})"]
    counts = _admin(runtime, "salesforce", "status")["counts"]
    for sobject in ("Contact", "Lead", "Account"):
        carried = _admin(runtime, "salesforce", f"records/{sobject}", fields="Id",
                         where="Personalization_Last_Activity__c != null")
        lines.append(f"  {sobject:<8} {counts.get(sobject, 0):>7} records, {len(carried)} "
                     "carry Personalization engagement data")
    lines.append(f"  API calls: {_calls(_admin(runtime, 'salesforce', 'ledger', limit='0'))}")

    lines.append(f"Personalization ({runtime['personalization']['url']})")
    for entity in ("users", "accounts"):
        rows = _admin(runtime, "personalization", entity)
        carried = [row for row in rows
                   if any(name.startswith("crm") for name in row.get("attributes") or {})]
        lines.append(f"  {entity:<8} {len(rows):>7}, {len(carried)} carry CRM attributes")
    for segment in _admin(runtime, "personalization", "segments"):
        lines.append(f"  segment {segment['name']} ({segment['id']}): "
                     f"{segment['members']} members")
    feeds = _admin(runtime, "personalization", "feeds")["feeds"]
    lines.append(f"  feed files processed: {len(feeds)}")
    lines.append(f"  API calls: {_calls(_admin(runtime, 'personalization', 'ledger', limit='0'))}")

    latest = {}
    for report in sorted(reports.glob("**/*.md"), key=lambda path: path.stat().st_mtime):
        latest[report.parent] = report
    for report in latest.values():
        lines += ["", report.read_text().rstrip()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=defaults.DATA_DIR)
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start both servers in the background")
    start_cmd.add_argument("--salesforce-port", type=int, default=defaults.SALESFORCE_PORT)
    start_cmd.add_argument("--personalization-port", type=int,
                           default=defaults.PERSONALIZATION_PORT)
    commands.add_parser("stop", help="stop both servers")
    commands.add_parser("status", help="URLs, record counts and API-call ledgers as JSON")
    summary_cmd = commands.add_parser("summary", help="what the syncs changed, and run reports")
    summary_cmd.add_argument("--reports", type=Path, default=Path("output"),
                             help="folder holding the plugins' Markdown run reports")
    seed_cmd = commands.add_parser("seed", help="replace all data with deterministic demo data")
    seed_cmd.add_argument("--users", type=int, default=200)
    seed_cmd.add_argument("--seed", type=int, default=42)
    serve_cmd = commands.add_parser("serve", help="run one server in the foreground")
    serve_cmd.add_argument("name", choices=SYSTEMS)
    serve_cmd.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir

    if args.command == "start":
        runtime = start(data_dir, {"salesforce": args.salesforce_port,
                                   "personalization": args.personalization_port})
        print(json.dumps(runtime, indent=2))
    elif args.command == "stop":
        stop(data_dir)
    elif args.command == "status":
        print(json.dumps(status(data_dir), indent=2))
    elif args.command == "summary":
        print(summary(data_dir, args.reports))
    elif args.command == "seed":
        from emulators.demo_data import generate

        counts = generate(data_dir, users=args.users, seed=args.seed)
        print(json.dumps(counts, indent=2))
    elif args.command == "serve":
        from emulators.server import serve

        port = args.port or (defaults.SALESFORCE_PORT if args.name == "salesforce"
                             else defaults.PERSONALIZATION_PORT)
        serve(_create_app(args.name, data_dir), defaults.HOST, port, data_dir)


if __name__ == "__main__":
    main()
