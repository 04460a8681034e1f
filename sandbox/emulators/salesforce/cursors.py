"""Server-side query cursors behind REST `nextRecordsUrl` and SOAP `queryLocator`.

A locator is `<18-char id>-<offset of the next row>`, as Salesforce writes it. Only the
next page of a cursor can be asked for, plus a repeat of the page just served (a client
retrying after a dropped connection must not lose rows). Cursors are bounded in number and
expire when idle, so abandoned queries cannot grow the server.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_SOQL_LENGTH = 100_000
MIN_BATCH, MAX_BATCH = 200, 2000
MAX_OPEN_CURSORS = 20
IDLE_SECONDS = 15 * 60
_ALPHANUMERIC = string.ascii_letters + string.digits


class Cursor(Protocol):
    """What the data store's `query()` returns."""

    @property
    def sobject(self) -> str: ...

    @property
    def total_size(self) -> int: ...

    @property
    def done(self) -> bool: ...

    def fetch(self, n: int) -> list[dict[str, Any]]: ...


class QueryRefused(Exception):
    """A query or queryMore refused with a Salesforce error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Page:
    sobject: str
    total_size: int
    records: list[dict[str, Any]]
    next_locator: str | None  # None when this page is the last

    @property
    def done(self) -> bool:
        return self.next_locator is None


@dataclass
class _OpenCursor:
    cursor: Cursor
    batch_size: int
    position: int = 0
    last_offset: int = -1
    last_page: list[dict[str, Any]] = field(default_factory=list)
    last_done: bool = False
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


def clamp_batch_size(requested: int | None, default: int) -> int:
    """Salesforce honours 200-2,000 and silently clamps anything else."""
    if requested is None:
        return default
    return max(MIN_BATCH, min(MAX_BATCH, requested))


def check_length(soql: str) -> None:
    if len(soql) > MAX_SOQL_LENGTH:
        raise QueryRefused("MALFORMED_QUERY",
                           "SOQL statements cannot be longer than 100,000 characters.")


class QueryCursors:
    """Registry of open cursors, least recently used evicted first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _OpenCursor] = OrderedDict()

    def first_page(self, cursor: Cursor, batch_size: int) -> Page:
        """Serve the first page; register the cursor only if more pages remain."""
        records = cursor.fetch(batch_size)
        if cursor.done:
            return Page(cursor.sobject, cursor.total_size, records, None)
        locator_id = "01g" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(15))
        entry = _OpenCursor(cursor, batch_size, position=len(records))
        with self._lock:
            self._expire_idle()
            self._open[locator_id] = entry
            while len(self._open) > MAX_OPEN_CURSORS:
                self._open.popitem(last=False)
        return Page(cursor.sobject, cursor.total_size, records, f"{locator_id}-{len(records)}")

    def next_page(self, locator: str, batch_size: int | None = None) -> Page:
        locator_id, _, offset_text = locator.rpartition("-")
        with self._lock:
            self._expire_idle()
            entry = self._open.get(locator_id)
            if entry is not None:
                self._open.move_to_end(locator_id)
        if entry is None or not offset_text.isdigit():
            raise QueryRefused("INVALID_QUERY_LOCATOR", "invalid query locator")
        offset = int(offset_text)
        with entry.lock:
            entry.touched = time.monotonic()
            if offset == entry.last_offset:  # a retry of the page just served
                records, done = entry.last_page, entry.last_done
            elif offset == entry.position and not entry.last_done:
                size = batch_size or entry.batch_size
                records = entry.cursor.fetch(size)
                done = entry.cursor.done
                entry.last_offset, entry.last_page, entry.last_done = offset, records, done
                entry.position += len(records)
            else:
                raise QueryRefused("INVALID_QUERY_LOCATOR", "invalid query locator")
            end = offset + len(records)
        next_locator = None if done else f"{locator_id}-{end}"
        return Page(entry.cursor.sobject, entry.cursor.total_size, records, next_locator)

    def _expire_idle(self) -> None:
        cutoff = time.monotonic() - IDLE_SECONDS
        for locator_id in [k for k, v in self._open.items() if v.touched < cutoff]:
            del self._open[locator_id]

    def clear(self) -> None:
        with self._lock:
            self._open.clear()
