"""Marketing Cloud Personalization connector: tap-personalization and target-personalization.

This one distribution ships two Singer plugins:

- `tap_personalization.tap`: tap-personalization (users, accounts and segment membership
  out of the export API);
- `tap_personalization.target`: target-personalization (CRM records in as user and account
  attributes and segment changes).

The modules at this level are the Personalization client both plugins share: `settings`
(checks, base URL, TLS), `auth` (the API token), `errors`, `retry` (the retry policy) and
`api` (response checks, JSON decoding, `PersonalizationClient`). The shared modules import
neither plugin, and neither plugin imports the other.
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
