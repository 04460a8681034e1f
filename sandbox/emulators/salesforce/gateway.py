"""What Salesforce's edge does before a request reaches the API, as WSGI middleware.

It enforces the 16,384-byte request-line-plus-headers limit (the reason the connector
looks records up by SOAP), injects 503s and dropped connections, and writes every API call
to the ledger with its final status, including calls the API never saw.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from emulators.salesforce.faults import Faults
from emulators.salesforce.ledger import Ledger, classify

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_REQUEST_HEAD_BYTES = 16_384
DROPPED = 0  # ledger status of a connection closed without an answer


def request_head_sizes(environ: dict[str, Any]) -> tuple[int, int]:
    """Bytes of the request line and of the whole head (request line plus headers)."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    line = (f"{environ.get('REQUEST_METHOD', 'GET')} {uri} "
            f"{environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}\r\n")
    line_bytes = len(line.encode("latin-1", "replace"))
    headers = 0
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        headers += len(name) + 2 + len(str(value).encode("latin-1", "replace")) + 2
    return line_bytes, line_bytes + headers + 2


class Gateway:
    """Wraps the Flask app; admin paths pass straight through."""

    def __init__(self, app: WsgiApp, ledger: Ledger, faults: Faults) -> None:
        self._app = app
        self._ledger = ledger
        self._faults = faults

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        kind = None if path.startswith("/__admin/") else classify(method, path)
        if kind is None:
            return self._app(environ, start_response)

        line_bytes, head_bytes = request_head_sizes(environ)
        if line_bytes > MAX_REQUEST_HEAD_BYTES:
            self._ledger.record(kind, method, path, 414)
            return _plain(start_response, "414 Request-URI Too Large",
                          "Request-URI Too Large: request line exceeds 16384 bytes")
        if head_bytes > MAX_REQUEST_HEAD_BYTES:
            self._ledger.record(kind, method, path, 431)
            return _plain(start_response, "431 Request Header Fields Too Large",
                          "Request Header Fields Too Large: request line and headers exceed "
                          "16384 bytes")
        if kind != "oauth":
            if self._faults.should_drop():
                self._ledger.record(kind, method, path, DROPPED)
                _drop(environ)
            if self._faults.should_503():
                self._ledger.record(kind, method, path, 503)
                return _plain(start_response, "503 Service Unavailable",
                              "Service Unavailable: the server is temporarily unable to "
                              "handle the request")

        if kind != "oauth" and self._faults.take_dropped_reply(method, path):
            return self._apply_then_drop(environ, kind, method, path)

        def recording_start_response(status: str, headers: list[tuple[str, str]],
                                     exc_info: Any = None) -> Any:
            self._ledger.record(kind, method, path, int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        return self._app(environ, recording_start_response)

    def _apply_then_drop(self, environ: dict[str, Any], kind: str, method: str,
                         path: str) -> Iterable[bytes]:
        """Carry the request out in full, then hang up before answering (`drop_replies`)."""
        statuses: list[int] = []

        def silent_start_response(status: str, headers: list[tuple[str, str]],
                                  exc_info: Any = None) -> Any:
            statuses.append(int(status.split(" ", 1)[0]))
            return lambda _data: None

        body = self._app(environ, silent_start_response)
        try:
            for _chunk in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        self._ledger.record(kind, method, path, DROPPED)
        _drop(environ)
        return []


def _plain(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _drop(environ: dict[str, Any]) -> None:
    """Close the TCP connection without a reply; werkzeug treats the raise as a hang-up."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with suppress(OSError):  # the client may already be gone
            connection.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("sandbox fault: connection dropped")
