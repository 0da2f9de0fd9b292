"""Trickled ICE candidates as ``media.session.add_candidate`` takes them: the payload model,
``ice.parse_candidate``, the network filter, and aiortc's own parse of what passed. Refusals: a
``ValidationError`` (an error event) or the ``ValueError`` that becomes ``INVALID_CANDIDATE``."""

from __future__ import annotations

import atheris
from aiortc.sdp import candidate_from_sdp
from pydantic import ValidationError

from media import ice
from signaling.payloads import IceCandidate
from tests.fuzz.harness import Target

NETWORKS = ice.parse_networks(["127.0.0.0/8", "::1/128"])


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mid = (
        fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40)) if fdp.ConsumeBool() else None
    )
    index = fdp.ConsumeIntInRange(-1, 70) if fdp.ConsumeBool() else None
    text = fdp.ConsumeUnicodeNoSurrogates(len(data))
    try:
        payload = IceCandidate.model_validate(
            {"candidate": text, "sdpMid": mid, "sdpMLineIndex": index}
        )
    except ValidationError:
        return
    if not payload.candidate.strip():
        return
    try:
        value, address = ice.parse_candidate(payload.candidate)
    except ValueError:
        return
    ice.address_allowed(address, [])
    if ice.address_allowed(address, NETWORKS):
        parsed = candidate_from_sdp(value)  # what the session hands aiortc
        parsed.sdpMid = payload.sdpMid
        parsed.sdpMLineIndex = payload.sdpMLineIndex


SEEDS = [
    b"\x00\x00candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
    b"\x00\x00candidate:2 1 tcp 1518280447 ::1 9 typ host tcptype active",
    b"\x00\x00a=candidate:3 1 udp 1677729535 127.0.0.1 61000 typ srflx raddr 0.0.0.0 rport 0",
    b"\x00\x00candidate:4 1 udp 2113937151 5f0c1b2e-0c4a.local 51000 typ host generation 0",
]

TARGET = Target("candidates", one_input, SEEDS)
