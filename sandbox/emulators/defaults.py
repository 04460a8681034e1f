"""Fixed, throw-away values of the local sandboxes.

They are public on purpose: the sandbox is a demo and test fixture, never a real system.
The `sandbox` Meltano environment and the tests use the same values.
"""

from __future__ import annotations

from pathlib import Path

HOST = "127.0.0.1"
SALESFORCE_PORT = 18443
PERSONALIZATION_PORT = 18444
DATA_DIR = Path(".sandbox")

# Salesforce connected app and integration user.
SF_CLIENT_ID = "sandbox-client-id"
SF_CLIENT_SECRET = "sandbox-client-secret"
SF_USERNAME = "integration@example.com"
SF_PASSWORD = "sandbox-password"
SF_SECURITY_TOKEN = "sandboxSecurityToken"  # accepted appended to the password, as Salesforce does
SF_ORG_ID = "00D000000000001AAA"
SF_USER_ID = "005000000000001AAA"
SF_DAILY_API_REQUESTS = 100_000
SF_SESSION_SECONDS = 7200

# Personalization account, dataset and API token.
PZN_ACCOUNT = "sandbox"
PZN_DATASET = "engage"
PZN_API_KEY_ID = "sandbox-key-id"
PZN_API_KEY_SECRET = "sandbox-key-secret"


def salesforce_url(port: int = SALESFORCE_PORT) -> str:
    return f"https://{HOST}:{port}"


def personalization_url(port: int = PERSONALIZATION_PORT) -> str:
    return f"https://{HOST}:{port}"

# A refresh token the emulated connected app accepts (as if issued by a web-server flow).
SF_REFRESH_TOKEN = "5Aep861sandboxRefreshToken0000000000000000000000"
