"""Putting sealed feed files into the dataset's inbound folder: a local folder or SFTP.

Either way a file appears under its final name in one atomic step: it is written (or
uploaded) under a temporary name first and then renamed, never overwriting a file already
there (a name taken by another run gets the next second's stamp). SFTP checks the server's
host key every time, against a known_hosts file or a SHA-256 fingerprint; there is no way to
turn that off. Connection failures are retried with the client's backoff (with jitter);
refused logins and untrusted host keys end the run with what to change.

Where a delivered file went afterwards is documented ("Processing Outcome Status for ETL
Jobs"): a completed job moves its file to the `processed` folder, a failed one to the
`failed` folder; both lie next to the inbound folder (`/{dataset}/processed`). `outcomes`
looks there, so change detection counts a file's values as delivered only once it was
processed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from tap_personalization.errors import PersonalizationError
from tap_personalization.retry import wait_before_retry
from tap_personalization.target.feeds import FeedNamer, SealedFile

DEFAULT_SFTP_PORT = 22
DEFAULT_SFTP_PATH = "/{dataset}/inbound"
CONNECT_TIMEOUT_SECONDS = 30
MAX_NAME_ATTEMPTS = 120
# `--test` proves feed_dir takes a file with one of these, removed at once.
PROBE_PREFIX = ".target-personalization-probe-"
PROCESSED_FOLDER, FAILED_FOLDER = "processed", "failed"


class DeliveryError(PersonalizationError):
    """A feed file could not be delivered; the message names the setting to check."""


class Destination(Protocol):
    """Where feed files go; `staging_dir` is where they are written before delivery."""

    @property
    def staging_dir(self) -> Path:
        """A folder on the same file system as the final one where possible."""

    def deliver(self, files: list[SealedFile]) -> list[str]:
        """Deliver in order; returns the final names. Local temporary files are removed."""

    def describe(self) -> str:
        """Where files go, for logs (never a secret)."""

    def check(self) -> None:
        """Prove the destination takes files, leaving none there (DeliveryError)."""

    def outcomes(self, names: list[str]) -> dict[str, str]:
        """Where delivered files are now: processed, failed, waiting (inbound) or missing."""

    def close(self) -> None:
        """Remove anything temporary."""


class LocalFolder:
    """An inbound folder on this machine (the sandbox's, or a mounted share)."""

    def __init__(self, folder: Path, namer: FeedNamer) -> None:
        self.folder = folder
        self.staging_dir = folder  # same file system: the rename is atomic
        self.namer = namer

    def describe(self) -> str:
        return f"folder {self.folder}"

    def check(self) -> None:
        if not self.folder.is_dir():
            raise DeliveryError(f"Setting feed_dir: folder {self.folder} does not exist; create "
                                "it or point feed_dir at the dataset's inbound folder.")
        # A probe file, not os.access: access() says yes to root on a read-only share, and
        # the run would then die at its first delivery. The dot name matches no feed pattern.
        try:
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=PROBE_PREFIX):
                pass
        except OSError as exc:
            raise DeliveryError(
                f"Setting feed_dir: cannot create a file in folder {self.folder} "
                f"({exc.strerror or type(exc).__name__}); fix its permissions or point "
                "feed_dir elsewhere.") from None

    def deliver(self, files: list[SealedFile]) -> list[str]:
        return [self._place(sealed) for sealed in files]

    def _place(self, sealed: SealedFile) -> str:
        for _ in range(MAX_NAME_ATTEMPTS):
            name = self.namer.next_name(sealed)
            final = self.folder / name
            try:
                os.link(sealed.path, final)  # fails if the name exists: never overwrites
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                    raise DeliveryError(
                        f"Cannot put feed file {name} into feed_dir {self.folder}: "
                        f"{exc.strerror}; check the folder exists and is writable.") from exc
                if final.exists():  # no hard links on this file system: check, then rename
                    continue
                os.replace(sealed.path, final)
                return name
            sealed.path.unlink()
            return name
        raise DeliveryError(f"No free feed file name in feed_dir {self.folder} after "
                            f"{MAX_NAME_ATTEMPTS} tries; is another writer flooding it?")

    def outcomes(self, names: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for name in names:
            found[name] = next(
                (where for where, folder in (
                    (PROCESSED_FOLDER, self.folder.parent / PROCESSED_FOLDER),
                    (FAILED_FOLDER, self.folder.parent / FAILED_FOLDER), ("waiting", self.folder))
                 if (folder / name).is_file()), "missing")
        return found

    def close(self) -> None:
        """Nothing to clean: temporary files are renamed or removed by the run."""


class _PinnedHostKey(asyncssh.SSHClient):
    """Accepts exactly the server key whose SHA-256 fingerprint is configured."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return bool(key.get_fingerprint("sha256") == self.fingerprint)


def normalized_fingerprint(value: str) -> str:
    """`SHA256:base64` as `ssh-keygen -lf` prints it (prefix optional, padding ignored)."""
    text = value.strip()
    if text.upper().startswith("SHA256:"):
        text = text[len("SHA256:"):]
    return "SHA256:" + text.rstrip("=")


class SftpFolder:
    """The dataset's SFTP inbound folder, reached with `asyncssh`."""

    def __init__(
        self,
        config: Mapping[str, Any],
        namer: FeedNamer,
        *,
        logger: logging.Logger,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = str(config["sftp_host"])
        self.port = int(config.get("sftp_port") or DEFAULT_SFTP_PORT)
        self.username = str(config["sftp_username"])
        self.path = str(config.get("sftp_path") or DEFAULT_SFTP_PATH).format(
            dataset=config.get("dataset", ""))
        self.namer = namer
        self.logger = logger
        self.sleep = sleep
        self.max_tries = int(config.get("max_retries") or 8)
        self._config = config
        self._staging_dir: Path | None = None
        # asyncssh logs every channel and SFTP request at INFO; the run logs one line per
        # delivery instead, and asyncssh's warnings still come through.
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        self.uploads = 0

    def describe(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{self.path}"

    @property
    def staging_dir(self) -> Path:
        """Made on first use, so a connection test or a dry run leaves no folder behind."""
        if self._staging_dir is None:
            self._staging_dir = Path(tempfile.mkdtemp(prefix="target-personalization-"))
        return self._staging_dir

    def close(self) -> None:
        if self._staging_dir is not None:
            shutil.rmtree(self._staging_dir, ignore_errors=True)

    def check(self) -> None:
        """Log in (host key checked) and look at sftp_path once: no retries, no upload."""
        try:
            asyncio.run(self._look())
        except (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable,
                asyncssh.KeyImportError) as exc:
            raise DeliveryError(self._fatal_message(exc)) from exc
        except asyncssh.SFTPError as exc:
            raise DeliveryError(
                f"Setting sftp_path: {self.path} on {self.host} cannot be used ({exc.reason}); "
                "point sftp_path at the dataset's inbound folder.") from exc
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise DeliveryError(
                f"Cannot reach SFTP server {self.host}:{self.port} ({exc}): check sftp_host "
                "and sftp_port.") from exc

    async def _look(self) -> None:
        async with asyncssh.connect(self.host, **self._connect_options()) as connection, \
                connection.start_sftp_client() as sftp:
            if not await sftp.isdir(self.path):
                raise DeliveryError(f"Setting sftp_path: {self.path} is not a folder on "
                                    f"{self.host}; point it at the dataset's inbound folder.")

    def _connect_options(self) -> dict[str, Any]:
        config = self._config
        options: dict[str, Any] = {
            "port": self.port,
            "username": self.username,
            "config": None,  # never the operator's ~/.ssh/config
            "agent_path": None,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        }
        fingerprint = config.get("sftp_host_key_fingerprint")
        if config.get("sftp_known_hosts"):
            options["known_hosts"] = str(config["sftp_known_hosts"])
        else:
            # An empty list plus the pinned key: every other key is refused.
            options["known_hosts"] = asyncssh.SSHKnownHosts()
            pinned = normalized_fingerprint(str(fingerprint))
            options["client_factory"] = lambda: _PinnedHostKey(pinned)
        passphrase = config.get("sftp_private_key_passphrase") or None
        if config.get("sftp_private_key"):
            options["client_keys"] = [
                asyncssh.import_private_key(str(config["sftp_private_key"]), passphrase)]
        elif config.get("sftp_private_key_path"):
            options["client_keys"] = [
                asyncssh.read_private_key(str(config["sftp_private_key_path"]), passphrase)]
        else:
            options["client_keys"] = None
        if config.get("sftp_password"):
            options["password"] = str(config["sftp_password"])
        return options

    def outcomes(self, names: list[str]) -> dict[str, str]:
        """One login, a stat per file and folder (retried like a delivery)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return asyncio.run(self._look_for(names))
            except (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable,
                    asyncssh.KeyImportError) as exc:
                raise DeliveryError(self._fatal_message(exc)) from exc
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                self._pause(attempt, exc)

    async def _look_for(self, names: list[str]) -> dict[str, str]:
        parent = posixpath.dirname(self.path.rstrip("/")) or "/"
        places = ((PROCESSED_FOLDER, posixpath.join(parent, PROCESSED_FOLDER)),
                  (FAILED_FOLDER, posixpath.join(parent, FAILED_FOLDER)), ("waiting", self.path))
        found: dict[str, str] = {}
        async with asyncssh.connect(self.host, **self._connect_options()) as connection, \
                connection.start_sftp_client() as sftp:
            for name in names:
                found[name] = "missing"
                for where, folder in places:
                    if await sftp.isfile(posixpath.join(folder, name)):
                        found[name] = where
                        break
        return found

    def deliver(self, files: list[SealedFile]) -> list[str]:
        remaining = list(files)
        names: list[str] = []
        attempt = 0
        while remaining:
            attempt += 1
            try:
                asyncio.run(self._upload(remaining, names))
            except (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable,
                    asyncssh.KeyImportError) as exc:
                raise DeliveryError(self._fatal_message(exc)) from exc
            except asyncssh.SFTPError as exc:
                if isinstance(exc, asyncssh.SFTPConnectionLost):
                    self._pause(attempt, exc)
                    continue
                raise DeliveryError(
                    f"SFTP server {self.host} refused a feed upload into {self.path}: "
                    f"{exc.reason}; check sftp_path and the account's write access.") from exc
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                self._pause(attempt, exc)
        return names

    def _pause(self, attempt: int, exc: BaseException) -> None:
        """Wait before the next attempt (client backoff with jitter), or give up."""
        if attempt >= self.max_tries:
            raise DeliveryError(
                f"Could not deliver feed files to {self.describe()} ({exc} after {attempt} "
                "attempts): check sftp_host and sftp_port, or raise max_retries.") from exc
        wait = wait_before_retry(None, attempt)
        self.logger.warning("Retrying SFTP delivery to %s in %.1f s after attempt %d: %s",
                            self.describe(), wait, attempt, exc)
        self.sleep(wait)

    def _fatal_message(self, exc: Exception) -> str:
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            return (f"SFTP host key of {self.host}:{self.port} is not trusted ({exc.reason}): "
                    "check sftp_known_hosts or sftp_host_key_fingerprint (ssh-keyscan / "
                    "ssh-keygen -lf); host keys are always checked.")
        if isinstance(exc, asyncssh.KeyImportError):
            return (f"sftp_private_key could not be read ({exc}): give an OpenSSH or PEM "
                    "private key, and sftp_private_key_passphrase if it is encrypted.")
        return (f"SFTP login to {self.host}:{self.port} as {self.username} was refused: "
                "check sftp_username and sftp_password or the private key "
                "(sftp_private_key / sftp_private_key_path).")

    async def _upload(self, remaining: list[SealedFile], names: list[str]) -> None:
        """Upload and rename each file; delivered ones leave `remaining` as they land."""
        async with asyncssh.connect(self.host, **self._connect_options()) as connection, \
                connection.start_sftp_client() as sftp:
            while remaining:
                sealed = remaining[0]
                temporary = posixpath.join(self.path, f".{sealed.path.name}")
                await sftp.put(str(sealed.path), temporary)
                self.uploads += 1
                names.append(await self._rename(sftp, sealed, temporary))
                sealed.path.unlink()
                remaining.pop(0)

    async def _rename(self, sftp: asyncssh.SFTPClient, sealed: SealedFile, temporary: str) -> str:
        for _ in range(MAX_NAME_ATTEMPTS):
            name = self.namer.next_name(sealed)
            try:
                await sftp.rename(temporary, posixpath.join(self.path, name))
            except (asyncssh.SFTPFileAlreadyExists, asyncssh.SFTPFailure):
                # SFTP v3 servers answer a taken name with a generic failure: check it.
                if await sftp.exists(posixpath.join(self.path, name)):
                    continue
                raise
            return name
        raise DeliveryError(f"No free feed file name in {self.describe()} after "
                            f"{MAX_NAME_ATTEMPTS} tries; is another writer flooding it?")


def destination_for(config: Mapping[str, Any], *, logger: logging.Logger) -> Destination | None:
    """The configured destination, or None when neither feed_dir nor sftp_host is set."""
    namer = FeedNamer()
    if config.get("sftp_host"):
        return SftpFolder(config, namer, logger=logger)
    if config.get("feed_dir"):
        return LocalFolder(Path(str(config["feed_dir"])), namer)
    return None


def destination_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem of the delivery settings, each naming its setting."""
    problems: list[str] = []
    if config.get("feed_dir") and config.get("sftp_host"):
        problems.append("Set feed_dir or sftp_host, not both: feed files go to one place.")
    if config.get("feed_dir") and not config.get("sftp_host"):
        folder = Path(str(config["feed_dir"]))
        if not folder.is_dir():
            problems.append(f"Setting feed_dir: folder {folder} does not exist; create it or "
                            "point feed_dir at the dataset's inbound folder.")
    if config.get("sftp_host"):
        if not config.get("sftp_username"):
            problems.append("Setting sftp_username is required with sftp_host.")
        if not any(config.get(name) for name in
                   ("sftp_password", "sftp_private_key", "sftp_private_key_path")):
            problems.append("Set sftp_password, sftp_private_key or sftp_private_key_path "
                            "for the SFTP login.")
        key_path = config.get("sftp_private_key_path")
        if key_path and not Path(str(key_path)).is_file():
            problems.append(f"Setting sftp_private_key_path: file {key_path} does not exist.")
        known_hosts = config.get("sftp_known_hosts")
        if known_hosts and not Path(str(known_hosts)).is_file():
            problems.append(f"Setting sftp_known_hosts: file {known_hosts} does not exist.")
        if not known_hosts and not config.get("sftp_host_key_fingerprint"):
            problems.append(
                "Set sftp_known_hosts (a known_hosts file with the server's key) or "
                "sftp_host_key_fingerprint (SHA256:..., from ssh-keygen -lf): the SFTP host "
                "key is always checked.")
    return problems
