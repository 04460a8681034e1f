"""The `--test` connection check: can this configuration run at all, proven without a write.

Meltano's own `meltano config test` is broken for loaders in 4.4 (it terminates a loader that
already exited), so the project runs this through the plugin command
`target-personalization:test`. It authenticates with the same harmless read every run starts
with, and checks the feed destination: a local folder must exist and be writable, an SFTP
server must accept the login with its host key checked and show sftp_path as a folder. It
reads no input, uploads nothing and writes no report. Whether the token may also send events
cannot be proven without sending one, so it is left to the first event_api run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tap_personalization.api import PersonalizationClient
from tap_personalization.target.delivery import destination_for


def check_connection(config: Mapping[str, Any], logger: logging.Logger) -> str:
    """The one-line success message; raises PersonalizationError naming what to change."""
    with PersonalizationClient(config, logger=logger) as client:
        client.check_connection()
        api = f"{client.base_url} dataset '{client.dataset}' answered the users export"
    destination = destination_for(config, logger=logger)
    if destination is None:  # event_api with nothing needing a feed: allowed at start-up
        return f"Connection test passed: {api}; no feed destination is configured."
    try:
        destination.check()
    finally:
        destination.close()
    return f"Connection test passed: {api}; feed files can go to {destination.describe()}."
