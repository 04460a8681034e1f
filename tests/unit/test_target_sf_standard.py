"""singer-sdk's standard target tests.

Their streams are not in the forward mapping, so they exercise the Singer protocol handling
(schema changes, key properties, state, odd names and values) and the ignored-stream path;
no Salesforce call is made.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from support.standard_target import standard_target_tests
from target_salesforce_crm.target.target import TargetSalesforceCRM

REPO = Path(__file__).resolve().parents[2]

TestTargetSalesforceCRMStandard = standard_target_tests(
    TargetSalesforceCRM,
    {
        "mapping_file": str(REPO / "transforms" / "personalization-to-crm.yml"),
        # A folder of this process: test runs of other checkouts (and xdist workers) share
        # /tmp, and two runs replacing one report.json race.
        "output_dir": tempfile.mkdtemp(prefix="target-salesforce-crm-standard-tests-"),
        "auth_url": "https://127.0.0.1:9",
        "client_id": "standard-tests",
        "client_secret": "never-used",
    },
)
