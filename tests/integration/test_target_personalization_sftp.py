"""target-personalization delivering feed files over SFTP into the sandbox's inbound folder.

An `asyncssh` SFTP server runs on 127.0.0.1 (free port, generated host key), chrooted at the
inbound folder's parent, so the sandbox processes what the target uploads. The host key is
checked in every test: through a known_hosts file or a pinned fingerprint.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from emulators import defaults
from tap_personalization.target.delivery import DeliveryError
from tap_personalization.target.target import TargetPersonalization

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERNAME, PASSWORD = "feeds", "sftp-test-password"
CLIENT_KEY = asyncssh.generate_private_key("ssh-ed25519")
FEED_NAME = re.compile(r"^/inbound/(?P<feed>[a-z-]+)-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.csv$")


@dataclass
class SftpServer:
    port: int
    host_key: asyncssh.SSHKey
    known_hosts: Path
    renames: list[tuple[str, str]]


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USERNAME and password == PASSWORD


@pytest.fixture(scope="module")
def sftp_server(personalization_sandbox: Any, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[SftpServer]:
    root = Path(personalization_sandbox.data_dir) / "personalization"
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    renames: list[tuple[str, str]] = []

    class Recording(asyncssh.SFTPServer):
        def rename(self, oldpath: bytes, newpath: bytes) -> None:
            renames.append((oldpath.decode(), newpath.decode()))
            super().rename(oldpath, newpath)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    authorized = asyncssh.import_authorized_keys(
        CLIENT_KEY.export_public_key().decode())

    async def start() -> Any:
        return await asyncssh.create_server(
            _Auth, "127.0.0.1", 0, server_host_keys=[host_key],
            authorized_client_keys=authorized,
            sftp_factory=lambda channel: Recording(channel, chroot=str(root)))

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    port = server.sockets[0].getsockname()[1]
    known_hosts = tmp_path_factory.mktemp("ssh") / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")
    try:
        yield SftpServer(port, host_key, known_hosts, renames)
    finally:
        server.close()
        asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


@pytest.fixture
def sandbox(personalization_sandbox: Any) -> Any:
    box = personalization_sandbox
    box.reset()
    box.admin("POST", "segments", json=[{"id": "seg-webinar", "name": "Webinar Attendees"}])
    box.admin("POST", "accounts", json=[{"id": "example-corp", "name": "Example Corp."}])
    box.admin("POST", "users", json=[
        {"id": "u-000001", "emailAddress": "ada@example.com", "attributes": {}}])
    box.clear_ledger()
    return box


def config_for(sandbox: Any, server: SftpServer, tmp_path: Path, **overrides: Any
               ) -> dict[str, Any]:
    config = {
        "base_url": sandbox.url, "dataset": defaults.PZN_DATASET,
        "api_key_id": defaults.PZN_API_KEY_ID, "api_key_secret": defaults.PZN_API_KEY_SECRET,
        "ca_bundle": sandbox.ca_bundle,
        "mapping_file": str(ROOT / "transforms" / "crm-to-personalization.yml"),
        "sftp_host": "127.0.0.1", "sftp_port": server.port, "sftp_username": USERNAME,
        "sftp_password": PASSWORD, "sftp_known_hosts": str(server.known_hosts),
        "sftp_path": "/inbound", "output_dir": str(tmp_path / "out"), "max_retries": 2,
        "fingerprint_db": str(tmp_path / "fingerprints.sqlite"),
    }
    config.update(overrides)
    return config


TEXT = {"type": ["string", "null"]}
MESSAGES = [
    {"type": "SCHEMA", "stream": "contacts", "key_properties": ["Id"], "schema": {
        "type": "object", "properties": {"Id": {"type": "string"}, "Email": TEXT, "Title": TEXT,
                                         "LeadSource": TEXT, "IsDeleted": {"type": "boolean"}}}},
    {"type": "RECORD", "stream": "contacts", "record": {
        "Id": "003000000000001AAA", "Email": "ada@example.com", "Title": "CTO",
        "LeadSource": "Web", "IsDeleted": False}},
    {"type": "SCHEMA", "stream": "accounts", "key_properties": ["Id"], "schema": {
        "type": "object", "properties": {"Id": {"type": "string"},
                                         "Personalization_Account_Id__c": TEXT, "Industry": TEXT,
                                         "IsDeleted": {"type": "boolean"}}}},
    {"type": "RECORD", "stream": "accounts", "record": {
        "Id": "001000000000001AAA", "Personalization_Account_Id__c": "example-corp",
        "Industry": "Media", "IsDeleted": False}},
    {"type": "SCHEMA", "stream": "campaign_members", "key_properties": ["Id"], "schema": {
        "type": "object", "properties": {
            "Id": {"type": "string"}, "CampaignId": {"type": "string"},
            "CampaignName": TEXT, "ContactId": TEXT, "LeadId": TEXT,
            "IsDeleted": {"type": "boolean"}}}},
    {"type": "RECORD", "stream": "campaign_members", "record": {
        "Id": "00v000000000001AAA", "CampaignId": "701000000000001AAA",
        "CampaignName": "Spring Webinar 2026", "ContactId": "003000000000001AAA",
        "LeadId": None, "IsDeleted": False}},
    {"type": "STATE", "value": {"bookmarks": {"contacts": {"replication_key_value": "1"}}}},
]


def run_target(config: dict[str, Any]) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        TargetPersonalization(config=config).listen(
            io.StringIO("".join(json.dumps(m) + "\n" for m in MESSAGES)))
    return out.getvalue()


def test_password_login_and_known_hosts(sandbox: Any, sftp_server: SftpServer,
                                        tmp_path: Path) -> None:
    sftp_server.renames.clear()
    config = config_for(sandbox, sftp_server, tmp_path)
    states = run_target(config)
    assert json.loads(states) == {"bookmarks": {"contacts": {"replication_key_value": "1"}}}
    # uploaded under a temporary name, then renamed into place, in processing order
    assert [FEED_NAME.match(new)["feed"] for _, new in sftp_server.renames] == [
        "user", "account", "segment-delta"]
    assert all(old.startswith("/inbound/.") for old, _ in sftp_server.renames)
    sandbox.admin("POST", "process-inbound")
    results = sandbox.admin("GET", "feeds")["feeds"]
    assert [(r["feed"], r["status"], r["error_count"]) for r in results] == [
        ("user", "processed", 0), ("account", "processed", 0), ("segment-delta", "processed", 0)]
    ada = sandbox.admin("GET", "users", params={"id": "u-000001"})[0]
    assert ada["attributes"] == {"sfcrmContactId": "003000000000001AAA", "crmTitle": "CTO",
                                 "crmLeadSource": "Web"}
    assert [m["id"] for m in ada["segmentMembership"]] == ["seg-webinar"]
    assert sandbox.admin("GET", "accounts")[0]["attributes"] == {"crmIndustry": "Media"}
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["sftp_uploads"] == 3
    assert [name.split("-20")[0] for name in summary["files"]] == [
        "user", "account", "segment-delta"]
    leftovers = [p.name for p in (Path(sandbox.data_dir) / "personalization" / "inbound")
                 .iterdir() if p.name.startswith(".")]
    assert leftovers == []

    # The same records again: the files were seen in /processed over SFTP, nothing is sent.
    sftp_server.renames.clear()
    again = config_for(sandbox, sftp_server, tmp_path, output_dir=str(tmp_path / "again"))
    run_target(again)
    summary = json.loads((tmp_path / "again" / "report.json").read_text())
    assert (summary["sftp_uploads"], summary["files"], sftp_server.renames) == (0, [], [])
    assert summary["earlier_feed_files"] == {"processed": 3}
    assert summary["unchanged_records"] == 3


def test_key_login_and_pinned_fingerprint_with_gzip(sandbox: Any, sftp_server: SftpServer,
                                                    tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(CLIENT_KEY.export_private_key())
    config = config_for(sandbox, sftp_server, tmp_path, sftp_password=None,
                        sftp_private_key_path=str(key_file), sftp_known_hosts=None,
                        sftp_host_key_fingerprint=sftp_server.host_key.get_fingerprint("sha256"),
                        gzip=True)
    run_target(config)
    sandbox.admin("POST", "process-inbound")
    results = sandbox.admin("GET", "feeds")["feeds"]
    assert [(r["file"].endswith(".csv.gz"), r["status"]) for r in results] == [
        (True, "processed")] * 3
    ada = sandbox.admin("GET", "users", params={"id": "u-000001"})[0]
    assert ada["attributes"]["crmTitle"] == "CTO"


def test_wrong_host_key_is_refused_and_nothing_is_uploaded(
    sandbox: Any, sftp_server: SftpServer, tmp_path: Path,
) -> None:
    sftp_server.renames.clear()
    other = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    config = config_for(sandbox, sftp_server, tmp_path, sftp_known_hosts=None,
                        sftp_host_key_fingerprint=other)
    with pytest.raises(DeliveryError, match=r"host key .* is not trusted"):
        run_target(config)
    assert sftp_server.renames == []
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["status"] == "failed"
    assert "sftp_host_key_fingerprint" in summary["failure"]


def test_wrong_password_names_the_settings(sandbox: Any, sftp_server: SftpServer,
                                           tmp_path: Path) -> None:
    config = config_for(sandbox, sftp_server, tmp_path, sftp_password="nope")
    with pytest.raises(DeliveryError, match="sftp_username and sftp_password") as caught:
        run_target(config)
    assert "nope" not in str(caught.value)


def connection_test(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`target-personalization --test` as Meltano's `target-personalization:test` runs it."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-c",
         "from tap_personalization.target.target import TargetPersonalization;"
         "TargetPersonalization.cli()", "--config", str(path), "--test"],
        input="", capture_output=True, text=True, timeout=120, check=False)


def test_connection_test_logs_in_and_uploads_nothing(sandbox: Any, sftp_server: SftpServer,
                                                     tmp_path: Path) -> None:
    sftp_server.renames.clear()
    answer = connection_test(config_for(sandbox, sftp_server, tmp_path), tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip().endswith(
        f"feed files can go to sftp://{USERNAME}@127.0.0.1:{sftp_server.port}/inbound.")
    assert sftp_server.renames == []
    assert list((Path(sandbox.data_dir) / "personalization" / "inbound").iterdir()) == []
    assert sandbox.ledger()["by_kind"] == {"users_export": 1}


def test_connection_test_refuses_a_wrong_host_key(sandbox: Any, sftp_server: SftpServer,
                                                 tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    config = config_for(sandbox, sftp_server, tmp_path, sftp_known_hosts=None,
                        sftp_host_key_fingerprint=other)
    answer = connection_test(config, tmp_path)
    assert answer.returncode == 1
    line = answer.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Connection test failed: SFTP host key of 127.0.0.1:"
                           f"{sftp_server.port} is not trusted")
    assert "sftp_host_key_fingerprint" in line
    assert PASSWORD not in answer.stdout + answer.stderr


def test_connection_test_names_a_missing_sftp_path(sandbox: Any, sftp_server: SftpServer,
                                                   tmp_path: Path) -> None:
    config = config_for(sandbox, sftp_server, tmp_path, sftp_path="/no-such-folder")
    answer = connection_test(config, tmp_path)
    assert answer.returncode == 1
    assert answer.stderr.strip().splitlines()[-1] == (
        "Connection test failed: Setting sftp_path: /no-such-folder is not a folder on "
        "127.0.0.1; point it at the dataset's inbound folder.")
