"""SDP offers as the server takes them before aiortc applies one (``media.session._set_offer``):
the payload model (size, ``v=0``), the candidate count, the candidate filter, then
``ice.check_offer``. Refusals: a ``ValidationError`` (an error event) or ``AppError``.

Half the inputs are text as it comes; the other half are a browser's offer edited by the
input (lines dropped, doubled, cut or replaced by garbage; codecs, candidates and padding added),
so that the fuzzer spends its time on offers that get past the first line.
"""

from __future__ import annotations

import atheris
from pydantic import ValidationError

from media import ice
from server.core.errors import AppError
from signaling.payloads import SessionDescription
from tests.fuzz.harness import Target

NETWORKS = ice.parse_networks(["127.0.0.0/8", "::1/128"])

OFFER_LINES = [
    "v=0",
    "o=- 4005207179 4005207179 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=msid-semantic:WMS *",
    "m=audio 46505 UDP/TLS/RTP/SAVPF 96 9 0 8",
    "c=IN IP4 127.0.0.1",
    "a=sendrecv",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=mid:0",
    "a=msid:9d1eaac3 9a4fd378",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=rtcp-mux",
    "a=ssrc:857930474 cname:1631fd09",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=candidate:f957a233 1 udp 2130706431 127.0.0.1 46505 typ host",
    "a=candidate:d0bcf3d9 1 udp 2130706431 fd00::2 50926 typ host",
    "a=end-of-candidates",
    "a=ice-ufrag:Hp7S",
    "a=ice-pwd:RJKbl7QuGBJnFkdk9Z78Lq",
    "a=fingerprint:sha-256 ED:E9:1A:89:84:1D:89:D4:15:70:1E:B4:AE:64:97:AC:5F:8D:C7:10:54:0F:"
    "91:33:40:90:2C:56:D9:D6:CB:96",
    "a=setup:actpass",
    "m=video 34889 UDP/TLS/RTP/SAVPF 97 98 99",
    "c=IN IP4 127.0.0.1",
    "a=sendrecv",
    "a=mid:1",
    "a=rtcp-mux",
    "a=ssrc-group:FID 2813945733 4024150973",
    "a=rtpmap:97 VP8/90000",
    "a=rtcp-fb:97 nack pli",
    "a=rtpmap:98 rtx/90000",
    "a=fmtp:98 apt=97",
    "a=rtpmap:99 H264/90000",
    "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=candidate:f957a233 1 udp 2130706431 127.0.0.1 34889 typ host",
    "a=ice-ufrag:Hp7S",
    "a=ice-pwd:RJKbl7QuGBJnFkdk9Z78Lq",
    "a=setup:actpass",
]
OFFER = "\r\n".join(OFFER_LINES) + "\r\n"

# What an edit may put in: codecs a browser offers and some it never does, candidates of every
# kind, lines aiortc's parser reads by position.
FRAGMENTS = [
    "a=rtpmap:{n} {codec}/90000",
    "a=fmtp:{n} apt={n}",
    "a=rtcp-fb:{n} {codec}",
    "a=candidate:{n} 1 udp {n} 127.0.0.{n} {n} typ host",
    "a=candidate:{n} 1 tcp {n} ::1 {n} typ srflx raddr 0.0.0.0 rport 0 tcptype passive",
    "a=candidate:{n} 1 udp {n} {codec}.local {n} typ host",
    "m={codec} {n} UDP/TLS/RTP/SAVPF {n}",
    "m=application {n} UDP/DTLS/SCTP webrtc-datachannel",
    "a=sctp-port:{n}",
    "a=ssrc:{n} cname:{codec}",
    "a=ssrc-group:FID {n}",
    "a=extmap:{n} {codec}",
    "a=mid:{codec}",
    "a=group:BUNDLE {codec}",
    "c=IN IP6 {codec}",
    "a=setup:{codec}",
    "a=fingerprint:{codec} {n}",
    "a=msid:{codec}",
    "a={codec}:{n}",
]
CODECS = [
    "VP8",
    "VP9",
    "H264",
    "AV1",
    "opus",
    "rtx",
    "red",
    "ulpfec",
    "G722",
    "",
    "\u00e9",
    "x" * 300,
]


def _edited(fdp: atheris.FuzzedDataProvider) -> str:
    lines = list(OFFER_LINES)
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        op = fdp.ConsumeIntInRange(0, 6)
        at = fdp.ConsumeIntInRange(0, max(0, len(lines) - 1))
        if op == 0 and len(lines) > 1:
            del lines[at]
        elif op == 1:
            lines.insert(at, lines[at % len(lines)])
        elif op == 2 and lines:
            line = lines[at % len(lines)]
            lines[at % len(lines)] = line[: fdp.ConsumeIntInRange(0, len(line))]
        elif op == 3:
            lines.insert(at, fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80)))
        elif op == 4:
            fragment = FRAGMENTS[fdp.ConsumeIntInRange(0, len(FRAGMENTS) - 1)]
            codec = CODECS[fdp.ConsumeIntInRange(0, len(CODECS) - 1)]
            n = fdp.ConsumeIntInRange(-1, 2**32)
            repeat = fdp.ConsumeIntInRange(1, 300)
            lines[at:at] = [fragment.format(n=n, codec=codec)] * repeat
        elif op == 5:
            lines.append("a=x-pad:" + "p" * fdp.ConsumeIntInRange(0, 70_000))
        else:
            sep = ["\n", "\r", "\r\n\r\n", "\x00"][fdp.ConsumeIntInRange(0, 3)]
            return sep.join(lines)
    return "\r\n".join(lines) + "\r\n"


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sdp = _edited(fdp) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(len(data))
    try:
        offer = SessionDescription.model_validate({"type": "offer", "sdp": sdp})
    except ValidationError:
        return
    ice.count_candidates(offer.sdp)
    filtered = ice.filter_sdp_candidates(offer.sdp, NETWORKS)
    try:
        ice.check_offer(filtered)
    except AppError:
        return


SEEDS = [b"\x01", b"\x00" + OFFER.encode(), b"\x01\x05\x04\x07\x00\x10\x20"]

TARGET = Target("sdp", one_input, SEEDS)
