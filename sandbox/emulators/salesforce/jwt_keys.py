"""The demo client's key pair for the JWT bearer flow.

A real connected app trusts a certificate uploaded by the admin; the sandbox creates one
on first start and leaves the matching private key beside it for the demo client, so the
JWT flow can be exercised end to end without anything secret leaving the data folder.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PRIVATE_KEY_FILE = "jwt-private-key.pem"
CERT_FILE = "jwt-cert.pem"


def ensure_jwt_keys(folder: Path) -> Path:
    """Create `jwt-private-key.pem` and `jwt-cert.pem` in `folder` unless both exist."""
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / PRIVATE_KEY_FILE, folder / CERT_FILE
    if key_path.exists() and cert_path.exists():
        return cert_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crm-sync sandbox JWT client")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    tmp = cert_path.with_suffix(".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.replace(cert_path)
    return cert_path


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


def load_trusted_key(cert_path: Path) -> rsa.RSAPublicKey:
    """Public key of the certificate the emulated connected app trusts (RS256 only)."""
    key = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{cert_path}: the JWT certificate must hold an RSA key; delete it "
                         "and its private key to have a new pair generated")
    return key
