"""Salesforce CRM connector: the client both plugins share, and the two plugins.

- This folder: the Salesforce connection, shared by both plugins: `settings.py` (the
  connection settings), `auth.py` (OAuth flows), `client.py` (REST, SOAP query, describe,
  retries), `soap.py`, `soql.py`, `errors.py`; and `metadata.py`, the
  `salesforce-crm-metadata` command that turns both mappings into custom fields and a
  least-privilege permission set.
- `target/`: target-salesforce-crm (Personalization records onto Contacts, Leads, Accounts).
- `tap/`: tap-salesforce-crm (CRM fields and campaign membership, read incrementally).
"""

import sys
from pathlib import Path

# A built distribution carries the mapping library it was tested with in `_vendor/`
# (hatch_build.py; docs/architecture.md, "Packaging"). First on the path, so that neither a
# same-named distribution from an index nor the other connector's copy is imported instead.
# Development installs have no `_vendor/` and use transforms/ itself.
_VENDORED = Path(__file__).with_name("_vendor")
if _VENDORED.is_dir() and str(_VENDORED) not in sys.path:
    sys.path.insert(0, str(_VENDORED))
