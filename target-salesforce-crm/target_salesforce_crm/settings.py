"""Connection settings shared by target-salesforce-crm and tap-salesforce-crm.

Declared once so both plugins accept the same names, and so `auth.py` and `client.py` never
read a setting the schema does not declare. Secrets are flagged for Meltano to mask.
"""

from __future__ import annotations

from singer_sdk import typing as th

DEFAULT_AUTH_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "59.0"
DEFAULT_REQUEST_TIMEOUT = 120
DEFAULT_MAX_RETRIES = 5
# The complete authentication groups (`auth.py` picks the flow); meltano.yml and the Hub
# definitions in hub/ repeat them as settings_group_validation, checked by a test. The
# refresh token flow sends client_secret only when it is set.
SETTINGS_GROUPS = (
    ("client_id", "client_secret"),
    ("client_id", "username", "private_key"),
    ("client_id", "username", "private_key_path"),
    ("client_id", "refresh_token"),
    ("client_id", "client_secret", "username", "password"),
    ("session_id", "instance_url"),
)

CONNECTION_SETTINGS = th.PropertiesList(
    th.Property(
        "auth_url", th.StringType, default=DEFAULT_AUTH_URL,
        description="Base URL of the OAuth token endpoint: https://login.salesforce.com, "
                    "https://test.salesforce.com for sandboxes, or the org's My Domain URL "
                    "(required for the client credentials flow).",
    ),
    th.Property(
        "api_version", th.StringType, default=DEFAULT_API_VERSION,
        description="Salesforce API version without the 'v', e.g. 59.0.",
    ),
    th.Property(
        "ca_bundle", th.StringType,
        description="Path of a PEM file of CA certificates to trust (e.g. a sandbox's CA or a "
                    "corporate proxy). Certificate verification is never disabled.",
    ),
    th.Property(
        "client_id", th.StringType,
        description="Consumer key of the connected app (all OAuth flows).",
    ),
    th.Property(
        "client_secret", th.StringType, secret=True,
        description="Consumer secret of the connected app (client credentials, password and "
                    "optionally refresh token flows).",
    ),
    th.Property(
        "username", th.StringType,
        description="Integration user's username (JWT bearer and username-password flows).",
    ),
    th.Property(
        "password", th.StringType, secret=True,
        description="Integration user's password (username-password flow, last resort).",
    ),
    th.Property(
        "security_token", th.StringType, secret=True,
        description="Security token appended to the password when the org requires it.",
    ),
    th.Property(
        "private_key", th.StringType, secret=True,
        description="PEM text of the RSA private key for the JWT bearer flow.",
    ),
    th.Property(
        "private_key_path", th.StringType,
        description="Path of the PEM RSA private key for the JWT bearer flow (instead of "
                    "private_key).",
    ),
    th.Property(
        "refresh_token", th.StringType, secret=True,
        description="OAuth refresh token issued to the connected app (refresh token flow).",
    ),
    th.Property(
        "session_id", th.StringType, secret=True,
        description="An existing access token; used first when given, together with "
                    "instance_url. It cannot be renewed unless another flow is configured.",
    ),
    th.Property(
        "instance_url", th.StringType,
        description="The org's instance URL for session_id (OAuth flows take it from the "
                    "token response).",
    ),
    th.Property(
        "request_timeout", th.IntegerType, default=DEFAULT_REQUEST_TIMEOUT,
        description="Seconds to wait for a Salesforce response before retrying.",
    ),
    th.Property(
        "max_retries", th.IntegerType, default=DEFAULT_MAX_RETRIES,
        description="Retries of a call after a 5xx answer or a dropped connection, with "
                    "exponential backoff and jitter.",
    ),
)
