"""Fixtures of the tests that drive the Salesforce plugins against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from target_salesforce_crm import client as client_module


@pytest.fixture
def sf(salesforce_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Salesforce sandbox, empty before and after the test; retries do not wait."""
    salesforce_sandbox.reset()
    monkeypatch.setattr(client_module, "sleep", lambda seconds: None)
    yield salesforce_sandbox
    salesforce_sandbox.reset()
