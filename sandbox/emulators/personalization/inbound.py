"""The ETL inbound folder: which files to process, in what order, and where they go after.

A file is picked up only when its whole name is `{feed}-YYYY-MM-DD_HH-MM-SS.csv` (or
`.csv.gz`, `.csv.zip`, `.zip`); anything else (a `.tmp` suffix, a leading dot: uploads
still in flight) is left alone, so writers must upload under another name and rename.
Files are processed in timestamp order (then by name), one at a time under a lock shared
by the background thread (every second) and `POST /__admin/process-inbound`.

Choices where the docs are silent: a zip must hold exactly one `.csv` member; a name with
an impossible date or a feed type other than user, account and segment-delta fails with
that reason. As documented ("Processing Outcome Status for ETL Jobs"), a file that completes
moves to the `processed` folder and one that errors to the `failed` folder (both next to
`inbound`), so a writer can tell over SFTP which of its files were taken. Next to each
file lies `<name>.result.json` (a sandbox addition: the real product shows it in the Feeds
Dashboard); the result is also kept for `GET /__admin/feeds` and counted in the ledger as
`feed_file`.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from emulators.personalization.feeds import FEEDS, FeedFileError, apply_feed
from emulators.personalization.ledger import Ledger
from emulators.personalization.store import PersonalizationStore

FILE_NAME = re.compile(
    r"^(?P<feed>[a-z][a-z0-9]*(?:-[a-z0-9]+)*?)-"
    r"(?P<stamp>\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})\.(?P<ext>csv|csv\.gz|csv\.zip|zip)$"
)
STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
INTERVAL_SECONDS = 1.0

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def open_feed(path: Path, ext: str) -> Iterator[TextIO]:
    """The file's CSV text, decompressed; strict UTF-8, newlines left to the CSV parser."""
    if ext == "csv":
        with path.open(encoding="utf-8", newline="") as text:
            yield text
    elif ext == "csv.gz":
        with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
            yield text
    else:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
                names = ", ".join(info.filename for info in members) or "nothing"
                raise FeedFileError(f"a zip feed must hold exactly one .csv file; it holds "
                                    f"{names}")
            with archive.open(members[0]) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8", newline="")


class Inbound:
    def __init__(self, folder: Path, store: PersonalizationStore, ledger: Ledger) -> None:
        self.inbound = folder / "inbound"
        self.processed = folder / "processed"
        self.failed = folder / "failed"
        self.store = store
        self.ledger = ledger
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ensure_folders()

    def _ensure_folders(self) -> None:
        for folder in (self.inbound, self.processed, self.failed):
            folder.mkdir(parents=True, exist_ok=True)

    def pending(self) -> list[str]:
        """Names ready to process, oldest timestamp first."""
        self._ensure_folders()
        ready = []
        for entry in os.scandir(self.inbound):
            match = FILE_NAME.match(entry.name)
            if match and entry.is_file():
                ready.append((match["stamp"], entry.name))
        return [name for _, name in sorted(ready)]

    def process_pending(self) -> list[dict[str, Any]]:
        """Process every ready file; the results of the files this call processed."""
        with self.lock:
            return [result for name in self.pending()
                    if (result := self._process(name)) is not None]

    def _process(self, name: str) -> dict[str, Any] | None:
        path = self.inbound / name
        match = FILE_NAME.match(name)
        if match is None or not path.is_file():
            return None
        result: dict[str, Any] = {"file": name, "feed": match["feed"]}
        try:
            result.update(self._apply(path, match["feed"], match["stamp"], match["ext"]))
        except FeedFileError as error:
            result.update(status="failed", rows=0, applied=0, error_count=0, errors=[],
                          message=str(error))
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            result.update(status="failed", rows=0, applied=0, error_count=0, errors=[],
                          message=f"cannot read the file: {error}")
        result["processed_at"] = _now()
        self._file_away(path, result)
        return result

    def _apply(self, path: Path, feed: str, stamp: str, ext: str) -> dict[str, Any]:
        try:
            datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError as error:
            raise FeedFileError(f"the timestamp {stamp!r} in the file name is not a real "
                                "date and time (YYYY-MM-DD_HH-MM-SS)") from error
        if feed not in FEEDS:
            raise FeedFileError(f"feed type {feed!r} is not supported by the sandbox; "
                                f"name the file {' | '.join(FEEDS)}-YYYY-MM-DD_HH-MM-SS.csv")
        with open_feed(path, ext) as text:
            outcome = apply_feed(self.store, feed, text)
        failed = outcome.too_many_errors
        message = (f"{outcome.error_count} of {outcome.rows} rows failed (more than 10 %): "
                   "nothing applied") if failed else None
        return {"status": "failed" if failed else "processed", "rows": outcome.rows,
                "applied": outcome.applied, "error_count": outcome.error_count,
                "errors": outcome.errors, "message": message}

    def _file_away(self, source: Path, result: dict[str, Any]) -> None:
        name = result["file"]
        folder = self.processed if result["status"] == "processed" else self.failed
        body = json.dumps(result, ensure_ascii=False, indent=2)
        temporary = folder / f".{name}.result.json.tmp"
        temporary.write_text(body, encoding="utf-8")
        os.replace(temporary, folder / f"{name}.result.json")
        os.replace(source, folder / name)  # last: the file's place is its outcome
        with self.store.write() as conn:
            conn.execute("INSERT INTO feed_results(file, result) VALUES (?, ?)",
                         (name, json.dumps(result, ensure_ascii=False)))
        self.ledger.record("feed_file", "FEED", name, 200 if result["status"] == "processed"
                           else 422)

    def results(self, file: str | None = None) -> list[dict[str, Any]]:
        """Results of processed files, oldest first (only those of `file` when given)."""
        with self.store.read() as conn:
            if file is None:
                rows = conn.execute("SELECT result FROM feed_results ORDER BY seq").fetchall()
            else:
                rows = conn.execute("SELECT result FROM feed_results WHERE file = ? "
                                    "ORDER BY seq", (file,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def clear_folders(self) -> None:
        """Delete every file in inbound/, processed/ and failed/ (the caller holds the lock)."""
        self._ensure_folders()
        for folder in (self.inbound, self.processed, self.failed):
            for entry in os.scandir(folder):
                if entry.is_file():
                    os.unlink(entry.path)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="personalization-inbound", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_SECONDS):
            try:
                self.process_pending()
            except Exception:
                log.exception("processing the inbound feed folder %s failed", self.inbound)
