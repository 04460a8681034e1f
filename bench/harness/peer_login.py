"""Route the peer tap's hard-coded login host to the sandbox's token endpoint.

singer-io `tap-salesforce` has no setting for where it logs in: `login()` always posts to
`https://test.salesforce.com/services/oauth2/token` (`is_sandbox`) or
`https://login.salesforce.com/...`, and only then uses the `instance_url` the token reply
names. So that the peer runs unmodified, the harness gives that one call a way to the
sandbox, as a corporate proxy would:

- a CONNECT proxy (`HTTPS_PROXY` in the peer's environment; `NO_PROXY` keeps every call to
  the instance URL direct) that tunnels only those two login hosts, and only to
- a small HTTPS "login host" with a certificate for them from a throw-away CA made here,
  which passes the token request through to the sandbox's `/services/oauth2/token` and
  its answer back unchanged (TLS verified against the sandbox CA).

The peer trusts both CAs through `REQUESTS_CA_BUNDLE`; TLS verification stays on end to end.
The token call still reaches the sandbox, so its ledger counts it as `oauth`.
"""

from __future__ import annotations

import http.server
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import trustme

LOGIN_HOSTS = ("test.salesforce.com", "login.salesforce.com")
TOKEN_PATH = "/services/oauth2/token"
TUNNEL_IDLE_S = 60.0
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "content-encoding"}


@dataclass(frozen=True)
class PeerNetwork:
    """What the peer's environment needs: a proxy for the login host, one CA bundle."""

    env: dict[str, str]
    ca_bundle: Path


class _LoginHandler(http.server.BaseHTTPRequestHandler):
    sandbox_url = ""
    sandbox_ca = ""

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TOKEN_PATH:
            self.send_error(404, "only the OAuth token endpoint is routed to the sandbox")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = requests.post(self.sandbox_url + TOKEN_PATH, data=body,
                               headers={"Content-Type": self.headers.get("Content-Type", "")},
                               verify=self.sandbox_ca, timeout=60)
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the harness's stderr is the benchmark's progress log."""


class _ThreadingHTTPSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    sockets = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], TUNNEL_IDLE_S)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (upstream if source is client else client).sendall(data)


class _ConnectHandler(socketserver.StreamRequestHandler):
    login_port = 0

    def handle(self) -> None:
        request_line = self.rfile.readline(8192).decode("latin-1").split()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # the CONNECT request's headers
        target = request_line[1] if len(request_line) >= 2 else ""
        host, _, port = target.rpartition(":")
        if request_line[:1] != ["CONNECT"] or host not in LOGIN_HOSTS or port != "443":
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(("127.0.0.1", self.login_port)) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            _pipe(self.connection, upstream)


class _ThreadingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def routed_login(sandbox_url: str, sandbox_ca: str, folder: Path) -> Iterator[PeerNetwork]:
    """Run the login host and its proxy while the block runs; stop both after."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="bench login-host CA (throw-away)")
    leaf = authority.issue_cert(*LOGIN_HOSTS)
    bundle = folder / "peer-ca-bundle.pem"
    bundle.write_bytes(Path(sandbox_ca).read_bytes() + authority.cert_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)

    handler = type("LoginHandler", (_LoginHandler,),
                   {"sandbox_url": sandbox_url.rstrip("/"), "sandbox_ca": sandbox_ca})
    login = _ThreadingHTTPSServer(("127.0.0.1", 0), handler)
    login.socket = context.wrap_socket(login.socket, server_side=True)
    tunnel_handler = type("ConnectHandler", (_ConnectHandler,),
                          {"login_port": login.server_address[1]})
    proxy = _ThreadingTCPServer(("127.0.0.1", 0), tunnel_handler)
    threads = [threading.Thread(target=server.serve_forever, daemon=True,
                                name=f"peer-login-{index}")
               for index, server in enumerate((login, proxy))]
    for thread in threads:
        thread.start()
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {"HTTPS_PROXY": proxy_url, "https_proxy": proxy_url,
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "REQUESTS_CA_BUNDLE": str(bundle)}
    try:
        yield PeerNetwork(env, bundle)
    finally:
        for server in (proxy, login):
            server.shutdown()
            server.server_close()
