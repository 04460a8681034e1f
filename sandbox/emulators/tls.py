"""A throw-away certificate authority for the sandboxes.

Clients trust `ca.pem` through their `ca_bundle` setting; nothing ever disables TLS
verification. The CA is created once per data directory and reused, so a bundle path
handed to Meltano stays valid across sandbox restarts.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

CA_FILE = "ca.pem"
SERVER_CERT_FILE = "server.pem"


def ensure_certificates(data_dir: Path) -> Path:
    """Create the CA and a server certificate for 127.0.0.1/localhost if missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ca_path = data_dir / CA_FILE
    server_path = data_dir / SERVER_CERT_FILE
    if ca_path.exists() and server_path.exists():
        return ca_path
    ca = trustme.CA(organization_name="crm-sync sandbox CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca.cert_pem.write_to_path(str(ca_path))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_path))
    return ca_path


def server_ssl_context(data_dir: Path) -> ssl.SSLContext:
    ensure_certificates(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(data_dir / SERVER_CERT_FILE))
    return context
