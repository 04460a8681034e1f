"""API-token authentication for Personalization, and what to say when a token is refused.

Personalization authenticates REST calls with HTTP Basic: the API Key ID is the user name and
the API Secret Key the password. A refused token (401/403) is never retried: nothing the
client can do changes the answer, so the run ends with a message that names the settings and
the token flags an administrator has to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from singer_sdk.authenticators import BasicAuthenticator

#: Token flag needed to read exports and look users up.
CAN_ACCESS_API = "Can access API"
#: Token flag needed to post server-side events.
CAN_SEND_EVENTS = "Can send events"


def token_authenticator(config: Mapping[str, Any]) -> BasicAuthenticator:
    """Build the one authenticator that streams and `PersonalizationClient` share.

    The SDK authenticator is also a `requests` auth callable, so a plain `requests.Session`
    can use it too; the secret lives only inside its header value and is never formatted
    into a log line.
    """
    return BasicAuthenticator(
        username=str(config["api_key_id"]),
        password=str(config["api_key_secret"]),
    )


def auth_failure_message(
    status: int,
    method: str,
    path: str,
    *,
    dataset: str,
    capability: str = CAN_ACCESS_API,
) -> str:
    """One line that tells an operator which settings and token flags to check.

    401 means the token itself was not accepted (wrong id/secret, deleted token); 403 means it
    was accepted but may not do this (missing flag, dataset not granted, caller's IP not on
    the allow-list). Both are listed because servers do not always tell them apart.
    """
    where = f"(HTTP {status} on {method} {path})"
    flags = (
        f"that the token has \"{capability}\" and access to dataset '{dataset}', "
        "and that this host's IP address is on the token's IP allow-list"
    )
    if status == 401:
        return (
            f"Personalization did not accept the API token {where}: check api_key_id and "
            f"api_key_secret (Settings > Security > API Tokens), {flags}."
        )
    return (
        f"Personalization refused this API token {where}: check {flags}; "
        "then check api_key_id and api_key_secret."
    )
