"""tap-salesforce-crm: CRM fields and campaign membership, read incrementally.

`tap.py` (the plugin, its settings, the streams the reverse mapping asks for),
`streams.py` (REST and Bulk 2.0 query streams, the read ceiling), `schema.py` (describe
into JSON Schema, field access checks).
"""
