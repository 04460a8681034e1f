"""The settings every Personalization call depends on: checked first, all problems at once.

One source of truth for where the API lives (base URL from settings) and what to trust (the
system CAs or `ca_bundle`, never nothing); how to authenticate is in `auth`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tap_personalization.errors import PersonalizationConfigError

DEFAULT_PAGE_SIZE = 1000
DEFAULT_REQUEST_TIMEOUT = 120
DEFAULT_MAX_RETRIES = 8


# What `config_problems` requires: a host (base_url, or account [+ instance]) and the token.
# meltano.yml and the Hub definitions in hub/ repeat them as settings_group_validation.
SETTINGS_GROUPS = (
    ("base_url", "dataset", "api_key_id", "api_key_secret"),
    ("account", "dataset", "api_key_id", "api_key_secret"),
)

def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every setting problem at once, each naming its setting, so one fix-up round suffices."""
    problems: list[str] = []
    try:
        base_url_from_config(config)
    except PersonalizationConfigError as exc:
        problems.append(str(exc))
    for name in ("dataset", "api_key_id", "api_key_secret"):
        if not config.get(name):
            problems.append(f"Setting {name} is required.")
    ca_bundle = config.get("ca_bundle")
    if ca_bundle and not Path(ca_bundle).is_file():
        problems.append(f"Setting ca_bundle: file {ca_bundle} does not exist.")
    seen: set[str] = set()
    for index, segment in enumerate(config.get("segments") or []):
        segment_id = str(segment.get("id") or "").strip()
        if not segment_id:
            problems.append(f"Setting segments[{index}] has no id.")
        elif segment_id in seen:
            problems.append(f"Setting segments lists segment id {segment_id} twice.")
        seen.add(segment_id)
    return problems


def base_url_from_config(config: Mapping[str, Any]) -> str:
    """`base_url`, or `https://{account}.{instance}.evergage.com` (no instance on old us-1)."""
    if base_url := config.get("base_url"):
        url = str(base_url).rstrip("/")
    elif account := config.get("account"):
        instance = config.get("instance")
        host = f"{account}.{instance}.evergage.com" if instance else f"{account}.evergage.com"
        url = f"https://{host}"
    else:
        msg = (
            "Set base_url (https://{account}.{instance}.evergage.com) or account "
            "(plus instance, unless it is an older us-1 account without one)."
        )
        raise PersonalizationConfigError(msg)
    if not url.startswith("https://"):
        msg = f"Setting base_url must start with https:// (got {url}): the API token is sent."
        raise PersonalizationConfigError(msg)
    return url


def tls_verify(config: Mapping[str, Any]) -> str | bool:
    """The `requests` `verify` value: the configured CA bundle, else the system CAs."""
    return str(config["ca_bundle"]) if config.get("ca_bundle") else True
