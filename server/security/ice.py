"""ICE servers for browsers: STUN/TURN from settings, TURN with time-limited credentials.

coturn's REST scheme (``use-auth-secret``): username ``<expiry>:<id>``, password
``base64(HMAC-SHA1(secret, username))``. A leaked credential dies within the hour.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

TURN_CREDENTIAL_TTL_SECS = 3600


def ice_servers_for(
    servers: list[dict[str, Any]], turn_secret: str, who: str, now: datetime
) -> list[dict[str, Any]]:
    """The ``iceServers`` list for one client; always a list, never None."""
    expiry = int(now.timestamp()) + TURN_CREDENTIAL_TTL_SECS
    result = []
    for server in servers:
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        entry: dict[str, Any] = {"urls": urls}
        is_turn = any(str(url).startswith(("turn:", "turns:")) for url in urls)
        if is_turn and turn_secret:
            username = f"{expiry}:{who}"
            digest = hmac.new(turn_secret.encode(), username.encode(), hashlib.sha1).digest()
            entry["username"] = username
            entry["credential"] = base64.b64encode(digest).decode()
        elif "username" in server:
            entry["username"], entry["credential"] = server["username"], server.get("credential")
        result.append(entry)
    return result
