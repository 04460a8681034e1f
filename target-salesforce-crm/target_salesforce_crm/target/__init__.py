"""target-salesforce-crm: Personalization records onto Salesforce Contacts, Leads, Accounts.

One module per step of the flow: `target.py` (the plugin and its settings) and `sinks.py`
(drained batches) hand each drain to `run.py`, which goes validate (`validation.py`) →
match (`matching.py`) → map and diff (`verdicts.py`, `changes.py`, `fingerprints.py`,
with `preflight.py`'s checks) → write (`writer.py` over `bulk.py`) → settle and account
(`ledger.py`) → report (`report.py`, `outcomes.py`).
"""
