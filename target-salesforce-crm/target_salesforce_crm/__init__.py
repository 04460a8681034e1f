"""Salesforce CRM connector: the client both plugins share, and the two plugins.

- This folder: the Salesforce connection, shared by both plugins: `settings.py` (the
  connection settings), `auth.py` (OAuth flows), `client.py` (REST, SOAP query, describe,
  retries), `soap.py`, `soql.py`, `errors.py`; and `metadata.py`, the
  `salesforce-crm-metadata` command that turns both mappings into custom fields and a
  least-privilege permission set.
- `target/`: target-salesforce-crm (Personalization records onto Contacts, Leads, Accounts).
- `tap/`: tap-salesforce-crm (CRM fields and campaign membership, read incrementally).
"""
