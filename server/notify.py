"""Tell systemd how the node is doing (``sd_notify``), so a ``Type=notify`` unit starts the
units ordered after it only once the node really listens, not once its process exists.

The protocol is one datagram of ``KEY=VALUE`` lines to the unix socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace). Without the variable (not
under systemd, or under a unit of another type) it does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def sd_notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ...); True if it was sent."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        # vsock: addresses (a VM's manager) are not used for a service on a host.
        log.warning("NOTIFY_SOCKET is neither a path nor @name; systemd not told %s", state)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        # The unit then times out and systemd says so; the node itself keeps serving.
        log.warning("could not tell systemd %s: %s", state, exc)
        return False
    return True
