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
