"""Serve a WSGI app over TLS with werkzeug's threaded server until interrupted."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

from flask import Flask
from werkzeug.serving import make_server

from emulators.tls import server_ssl_context


def serve(app: Flask, host: str, port: int, data_dir: Path) -> None:
    server = make_server(host, port, app, threaded=True, ssl_context=server_ssl_context(data_dir))

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
