"""Every Socket.IO event's payload model, parsed as the event wrapper parses it
(``signaling.namespace.event``): a refusal is a ``ValidationError`` turned into an error event
whose message is built from the error's first entry."""

from __future__ import annotations

import json
from typing import Any

import atheris
from pydantic import BaseModel, ValidationError

from signaling import payloads
from tests.fuzz.harness import Target

MODELS: tuple[type[BaseModel], ...] = tuple(
    model
    for model in vars(payloads).values()
    if isinstance(model, type)
    and issubclass(model, payloads.Strict)
    and model is not payloads.Strict
    and model.__module__ == payloads.__name__
)


def refusal_message(exc: ValidationError) -> str:
    """What the event wrapper sends in the error event: built here exactly as there."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


def _data(text: str) -> Any:
    """What Socket.IO hands the handler: decoded JSON, or the text itself (a string payload)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    model = MODELS[fdp.ConsumeIntInRange(0, len(MODELS) - 1)]
    value = _data(fdp.ConsumeUnicodeNoSurrogates(len(data)))
    try:
        model.model_validate(value if value is not None else {})
    except ValidationError as exc:
        json.dumps(refusal_message(exc))  # the error event's message must serialise


SEEDS = [
    b"\x00" + json.dumps({"lat": 43.2, "lon": 76.9, "accuracy": 5, "timestamp": 1.7e12}).encode(),
    b"\x01" + json.dumps({"client_id": "abcdefgh1", "body": "help"}).encode(),
    b"\x02" + json.dumps({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}).encode(),
    b"\x03" + json.dumps({"call_id": "x" * 36, "last_seq": 2**63}).encode(),
    b"\x04" + json.dumps({"type": "offer", "sdp": "v=0\r\n"}).encode(),
    b"\x05" + json.dumps({"token": "t" * 40, "last_seq": 1}).encode(),
]

TARGET = Target("payloads", one_input, SEEDS)
