"""Serve a WSGI app over TLS with werkzeug's threaded server until interrupted."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from emulators.tls import server_ssl_context


class PathOnlyRequestHandler(WSGIRequestHandler):
    """Logs method, path and status only: query strings carry SOQL with e-mail addresses."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s', self.command, path[:200], code)


def serve(app: Flask, host: str, port: int, data_dir: Path) -> None:
    server = make_server(host, port, app, threaded=True, ssl_context=server_ssl_context(data_dir),
                         request_handler=PathOnlyRequestHandler)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"serving {app.name} on https://{host}:{server.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
