"""The benchmark's inputs: seeded sandbox data and the Singer `users` stream, built once.

Seeding a million users takes minutes, so each (size, seed) is generated once into a
pristine folder and every run works on a fresh copy of it (a run writes into both systems).
The `users` stream is what tap-personalization emits for that data, captured once per
(size, seed, tap source) and stripped of STATE messages (their timestamps would make the
file differ from run to run); its SHA-256 goes into the results.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emulators.demo_data import generate
from emulators.tls import ensure_certificates

from harness import plugins, procs
from harness.sandbox import Server

RECORD_PREFIX = b'{"type":"RECORD"'
STATE_PREFIX = b'{"type":"STATE"'


@dataclass(frozen=True)
class Seeded:
    users: int
    seed: int
    counts: dict[str, int]
    folder: Path


@dataclass(frozen=True)
class StreamFile:
    path: Path
    records: int
    with_email: int
    bytes: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def pristine(work_dir: Path, users: int, seed: int) -> Seeded:
    """Demo data for `users` users (about 60 % of them CRM contacts), generated once."""
    folder = work_dir / "seed" / f"{users}-s{seed}"
    marker = folder / "seed.json"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        counts = generate(folder, users=users, seed=seed)
        ensure_certificates(folder)
        marker.write_text(json.dumps(counts, indent=2))  # last: marks the folder complete
    return Seeded(users, seed, json.loads(marker.read_text()), folder)


def working_copy(seeded: Seeded, work_dir: Path) -> Path:
    """A fresh copy of the pristine data for one harness run (logs and markers left out)."""
    target = work_dir / "run" / f"{seeded.users}-s{seeded.seed}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(seeded.folder, target, ignore=shutil.ignore_patterns("*.log", "seed.json"))
    return target


def tap_fingerprint() -> str:
    """Hash of tap-personalization's source: a changed tap means a re-captured stream."""
    spec = importlib.util.find_spec("tap_personalization")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("tap_personalization is not installed in this environment")
    digest = hashlib.sha256()
    for folder in spec.submodule_search_locations:
        for source in sorted(Path(folder).rglob("*.py")):
            digest.update(source.relative_to(folder).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def _strip_and_count(raw: Path, path: Path) -> StreamFile:
    digest = hashlib.sha256()
    records = with_email = size = 0
    with raw.open("rb") as source, path.open("wb") as sink:
        for line in source:
            if line.startswith(STATE_PREFIX):
                continue
            if line.startswith(RECORD_PREFIX):
                records += 1
                message = json.loads(line)
                with_email += bool(message["record"].get("emailAddress"))
            sink.write(line)
            digest.update(line)
            size += len(line)
    return StreamFile(path, records, with_email, size, digest.hexdigest())


def users_stream(work_dir: Path, seeded: Seeded, pzn: Server, scratch: Path) -> StreamFile:
    """SCHEMA + RECORD messages of stream `users` as the tap emits them for this data."""
    folder = work_dir / "streams"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"users-{seeded.users}-s{seeded.seed}-{tap_fingerprint()}.jsonl"
    meta = path.with_suffix(".json")
    if meta.exists() and path.exists():
        saved = json.loads(meta.read_text())
        return StreamFile(**{**saved, "path": path})
    tap = str(plugins.executable("tap-personalization"))
    config = plugins.write_config(scratch / "stream-tap.json",
                                  plugins.tap_personalization_config(pzn.url, pzn.ca_bundle))
    discovered = scratch / "stream-discovered.json"
    procs.run([tap, "--config", str(config), "--discover"], log=scratch / "stream-discover.log",
              stdout=discovered)
    catalog = scratch / "stream-catalog.json"
    catalog.write_text(json.dumps(plugins.users_only_catalog(json.loads(discovered.read_text()))))
    raw = scratch / "stream-raw.jsonl"
    procs.run([tap, "--config", str(config), "--catalog", str(catalog)],
              log=scratch / "stream-tap.log", stdout=raw)
    for stale in folder.glob(f"users-{seeded.users}-s{seeded.seed}-*"):
        stale.unlink()  # captured by an older tap; a million users take 600 MB
    partial = path.with_suffix(".partial")
    stream = _strip_and_count(raw, partial)
    raw.unlink()
    partial.rename(path)
    stream = StreamFile(path, stream.records, stream.with_email, stream.bytes, stream.sha256)
    meta.write_text(json.dumps(stream.as_json(), indent=2))
    return stream
