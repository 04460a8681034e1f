"""One call started now in its own thread, its outcome collected later where it is needed.

The export streams ask for page n+1 this way while page n's records are written, so the
server's time overlaps the tap's instead of adding to it. The thread only runs the call: an
exception it raises is kept and raised again in the consuming thread by `result`, so the
caller's error handling (retries, one-line messages) sees it exactly where it looks for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Prefetch(Generic[_T]):
    """`call()` running in a daemon thread named `name`, started on construction."""

    def __init__(self, call: Callable[[], _T], *, name: str) -> None:
        self._call = call
        self._outcome: Future[_T] = Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome.set_result(self._call())
        except BaseException as exc:  # handed over to the consumer, raised by `result`
            self._outcome.set_exception(exc)

    def result(self) -> _T:
        """The call's return value, or its exception raised here; waits for it if need be."""
        self.wait()
        return self._outcome.result()

    def wait(self) -> None:
        """Block until the thread has ended (a consumer that stops leaves no thread behind)."""
        self._thread.join()
