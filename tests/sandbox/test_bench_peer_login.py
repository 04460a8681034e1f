"""The benchmark's route for the peer's hard-coded login host: only the token call reaches
the sandbox through it, TLS verified with the bundle it writes, and the ledger counts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from emulators import defaults
from harness.peer_login import routed_login


def test_the_login_host_reaches_the_sandbox_token_endpoint(salesforce_sandbox: Any,
                                                           tmp_path: Path) -> None:
    salesforce_sandbox.reset()
    with routed_login(salesforce_sandbox.url, salesforce_sandbox.ca_bundle, tmp_path) as net:
        proxies = {"https": net.env["HTTPS_PROXY"]}
        answer = requests.post("https://test.salesforce.com/services/oauth2/token", data={
            "grant_type": "refresh_token", "client_id": defaults.SF_CLIENT_ID,
            "client_secret": defaults.SF_CLIENT_SECRET,
            "refresh_token": defaults.SF_REFRESH_TOKEN,
        }, proxies=proxies, verify=str(net.ca_bundle), timeout=30)
        with pytest.raises(requests.exceptions.ProxyError):
            requests.get("https://example.com/", proxies=proxies, verify=str(net.ca_bundle),
                          timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.json()["instance_url"] == salesforce_sandbox.url
    assert salesforce_sandbox.ledger()["by_kind"] == {"oauth": 1}
