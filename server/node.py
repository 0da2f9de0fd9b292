"""What the composition root keeps on the app beside the services: the Socket.IO server, this
process's own media hub (None with media workers) and the secret media nodes connect with.
Only the app factory, the node's process supervisor and tests use these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import socketio  # noqa: F401

    from media.hub import MediaHub  # noqa: F401

SIO_KEY = web.AppKey["socketio.AsyncServer"]("sio")
MEDIA_HUB_KEY = web.AppKey["MediaHub | None"]("media_hub")
MEDIA_SECRET_KEY = web.AppKey[str]("media_secret")
