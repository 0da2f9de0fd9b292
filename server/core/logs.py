"""Structured logs: one JSON object per line, with the ``extra`` fields of each call.

Two fields come from the context rather than from each call to the logger: ``request_id``, the
HTTP request being served (server/http/access_log.py), and ``call_id``, the call being handled,
as the logs may name it (an internal-security call by its pseudonym, ``is-<hex>``: never its
id). Both live in context variables, so they follow the request's or the Socket.IO event's own
task and the tasks it starts, and every line logged meanwhile carries them without each
``log.info`` having to pass them.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Held at WARNING whatever LOG_LEVEL says: their INFO and DEBUG lines name every ICE candidate
# pair, so the callers' addresses (a misconduct caller's included).
QUIET_LIBRARIES = ("aioice", "aiortc")

REQUEST_ID: ContextVar[str | None] = ContextVar("lifeline_request_id", default=None)
# The call's log name (server/actions/access.py: call_log_name), never an internal-security
# call's id: whoever sets it names the call as the logs may.
CALL_LOG_NAME: ContextVar[str | None] = ContextVar("lifeline_call", default=None)


def about_call(log_name: str) -> None:
    """From here to the end of this task (a request, a Socket.IO event, a timer), log lines
    name this call. Pass its log name, not its id: see ``call_log_name``."""
    CALL_LOG_NAME.set(log_name)


def forget_context() -> None:
    """No request and no call: for work that outlives what started it (background.py)."""
    REQUEST_ID.set(None)
    CALL_LOG_NAME.set(None)


def _context() -> dict[str, object]:
    fields: dict[str, object] = {}
    if (request_id := REQUEST_ID.get()) is not None:
        fields["request_id"] = request_id
    if (call := CALL_LOG_NAME.get()) is not None:
        fields["call_id"] = call
    return fields


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The context's fields, then the line's own ``extra`` (which wins: it says it exactly)."""
    fields = _context()
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access lines name the raw path and the client's address; ours is
    # ``lifeline.access`` (server/http/access_log.py).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
