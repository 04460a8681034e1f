"""ETL feed files: RFC 4180 CSV in UTF-8, streamed row by row to a temporary file.

Shapes as documented: a user feed is keyed by `userId`, an account feed by `accountId`, a
segment-delta feed has `userId`, `segmentId`, `updateType`; values go in `attribute:<name>`
columns, at most 50 per file (a feed whose mapping has more is split into several files with
the same key column, each row written only to the parts where it has a value). A blank cell
leaves the stored value unchanged, which is also why a feed cannot clear a value.

Files are written under a temporary name (leading dot, `.tmp` suffix: Personalization picks
up only `{feed}-YYYY-MM-DD_HH-MM-SS.csv[.gz]`) and get their final name when delivered, so the
processor never sees half a file. Rows go straight to disk: memory does not grow with rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from tap_personalization.target.changes import value_text

USER_FEED = "user"
ACCOUNT_FEED = "account"
SEGMENT_FEED = "segment-delta"
MAX_ATTRIBUTE_COLUMNS = 50
ATTRIBUTE_PREFIX = "attribute:"
STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"

_sequence = itertools.count(1)


@dataclass(frozen=True)
class SealedFile:
    """A complete feed file waiting for its final name and delivery."""

    feed: str
    path: Path
    rows: int
    compressed: bool

    @property
    def suffix(self) -> str:
        return ".csv.gz" if self.compressed else ".csv"


@dataclass(frozen=True)
class WrittenRow:
    """Where one row went: the part file (its temporary path) and the attributes it got."""

    part: str
    attributes: tuple[str, ...]


class FeedNamer:
    """Final names in strictly increasing seconds, so files are processed in delivery order.

    Personalization processes files in the order of the timestamp in their name; two files of
    one second would be ordered by name only, and two of the same feed would collide.
    """

    def __init__(self, now: Any = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self._last: datetime | None = None

    def next_name(self, sealed: SealedFile) -> str:
        stamp = self._now().replace(microsecond=0)
        if self._last is not None and stamp <= self._last:
            stamp = self._last + timedelta(seconds=1)
        self._last = stamp
        return f"{sealed.feed}-{stamp.strftime(STAMP_FORMAT)}{sealed.suffix}"


def split_columns(columns: Sequence[str], limit: int = MAX_ATTRIBUTE_COLUMNS) -> list[list[str]]:
    """Attribute columns in groups of at most `limit`, in mapping order."""
    if not columns:
        return [[]]
    return [list(columns[start:start + limit]) for start in range(0, len(columns), limit)]


class _Part:
    """One output file of a feed: a fixed header, rows appended as they come."""

    def __init__(self, directory: Path, feed: str, header: list[str], compressed: bool) -> None:
        self.directory = directory
        self.feed = feed
        self.header = header
        self.compressed = compressed
        self.path: Path | None = None
        self.rows = 0
        self._file: IO[bytes] | None = None
        self._gzip: gzip.GzipFile | None = None
        self._text: io.TextIOWrapper | None = None
        self._writer: Any = None

    def _open(self) -> None:
        self.path = self.directory / f".{self.feed}-{os.getpid()}-{next(_sequence)}.csv.tmp"
        self._file = self.path.open("wb")
        buffer: IO[bytes] = self._file
        if self.compressed:
            self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb")
            buffer = self._gzip
        self._text = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
        self._writer = csv.writer(self._text, lineterminator="\r\n")
        self._writer.writerow(self.header)

    def write(self, cells: list[str]) -> None:
        if self._writer is None:
            self._open()
        self._writer.writerow(cells)
        self.rows += 1

    def seal(self) -> SealedFile | None:
        """Close the file, synced to disk; None when no row was written."""
        if self._text is None or self._file is None or self.path is None:
            return None
        self._text.flush()
        self._text.detach()
        if self._gzip is not None:
            self._gzip.close()  # writes the gzip trailer, leaves the file open
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sealed = SealedFile(self.feed, self.path, self.rows, self.compressed)
        self._reset()
        return sealed

    def discard(self) -> None:
        if self._text is not None:
            self._text.detach()
        if self._gzip is not None:
            self._gzip.close()
        if self._file is not None:
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self._reset()

    def _reset(self) -> None:
        self.path, self.rows, self._file, self._gzip, self._text, self._writer = (
            None, 0, None, None, None, None)


class FeedWriter:
    """All files of one feed (one per group of 50 attribute columns) until they are sealed."""

    def __init__(
        self,
        feed: str,
        key_columns: Sequence[str],
        attributes: Sequence[str],
        directory: Path,
        *,
        compressed: bool = False,
    ) -> None:
        self.feed = feed
        self.key_columns = list(key_columns)
        self.groups = split_columns(attributes)
        self._parts = [
            _Part(directory, feed,
                  [*self.key_columns, *(ATTRIBUTE_PREFIX + name for name in group)], compressed)
            for group in self.groups
        ]

    def write(self, keys: Sequence[str], values: Mapping[str, Any]) -> list[WrittenRow]:
        """Write one row to every part where it has a value; empty if it had none at all.

        A value of None (clear) is left blank: feeds cannot clear (see the module docstring).
        A feed without attribute columns (segment delta) always gets the row. The answer
        names each file the row went to, so its values can be confirmed with that file.
        """
        written: list[WrittenRow] = []
        for part, group in zip(self._parts, self.groups, strict=True):
            cells = [value_text(values[name]) if values.get(name) is not None else ""
                     for name in group]
            if group and not any(cells):
                continue
            part.write([*keys, *cells])
            assert part.path is not None  # opened by its first row
            written.append(WrittenRow(str(part.path),
                                      tuple(name for name, cell in zip(group, cells,
                                                                       strict=True) if cell)))
        return written

    @property
    def pending_rows(self) -> int:
        return sum(part.rows for part in self._parts)

    def seal(self) -> list[SealedFile]:
        """Close every part that has rows, in column-group order; the writer starts afresh."""
        return [sealed for part in self._parts if (sealed := part.seal()) is not None]

    def discard(self) -> None:
        """Delete unsealed temporary files (the run failed before delivering them)."""
        for part in self._parts:
            part.discard()
