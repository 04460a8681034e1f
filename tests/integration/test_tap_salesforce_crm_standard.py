"""singer-sdk's standard tap tests for tap-salesforce-crm, run against the Salesforce sandbox.

The SDK enumerates streams when pytest collects the class, before any fixture can start a
server. Those streams come from a catalog built from the sandbox's own object catalog
in-process (the same describe JSON its REST API serves); everything that runs as a test —
discovery, the sync, the connection test — talks to the live sandbox over TLS.
"""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from emulators.salesforce.store import SalesforceStore
from singer_sdk.testing import TapTestRunner, get_tap_test_class
from target_salesforce_crm.tap.tap import TapSalesforceCRM

from .test_tap_salesforce_crm import EXTRA_FIELDS, MAPPING, seed_crm, tap_config

pytestmark = pytest.mark.integration

OFFLINE_CONFIG = {"session_id": "offline", "instance_url": "https://offline.invalid",
                  "mapping_file": str(MAPPING), "extra_fields": EXTRA_FIELDS}


class _StoreDescribes:
    """Describe answers straight from a sandbox store (no server, no other call)."""

    def __init__(self, store: SalesforceStore) -> None:
        self.store = store

    def describe(self, sobject: str) -> dict[str, Any]:
        return self.store.describe(sobject)


def offline_catalog() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        store = SalesforceStore(Path(folder) / "salesforce.db")

        class StoreBackedTap(TapSalesforceCRM):
            @cached_property
            def client(self) -> Any:
                return _StoreDescribes(store)

        return StoreBackedTap(config=OFFLINE_CONFIG).catalog_dict


StandardTests = get_tap_test_class(
    TapSalesforceCRM, config=OFFLINE_CONFIG, catalog=offline_catalog(),
)


class TestTapSalesforceCRMStandard(StandardTests):
    """The SDK's tap, stream and attribute tests over records synced from the sandbox."""

    @pytest.fixture(scope="class")
    @classmethod
    def runner(cls, salesforce_sandbox: Any) -> TapTestRunner:
        salesforce_sandbox.reset()
        seed_crm(salesforce_sandbox)
        live = TapTestRunner(TapSalesforceCRM, config=tap_config(salesforce_sandbox))
        live.sync_all()
        return live
