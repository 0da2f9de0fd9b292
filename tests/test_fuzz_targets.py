"""The fuzz targets (tests/fuzz/), briefly: every seed, every input the fuzzer once crashed on
(tests/fuzz/found/<target>/, each a bug fixed since), and a few hundred hypothesis inputs per
target. The million-input runs are ``make fuzz``."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.__main__ import INSTRUMENT
from tests.fuzz.harness import Target
from tests.staff import Client

FOUND = Path(__file__).parent / "fuzz" / "found"
EXAMPLES = {"clips": 60, "forms": 150}

pytestmark = [
    pytest.mark.one_pass,
    # aiohttp's post() leaves a form's spooled files to the garbage collector (the fuzzed
    # requests have no server to release them): not what is tested here.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def target(name: str) -> Iterator[Target]:
    found: Target = importlib.import_module(f"tests.fuzz.{name}").TARGET
    yield found
    close = getattr(found.one_input, "close", None)  # a target that keeps an event loop
    if close is not None:
        close()


@pytest.mark.parametrize("name", sorted(INSTRUMENT))
def test_seeds_and_found_inputs_are_answered(name: str, target: Target) -> None:
    found = sorted((FOUND / name).glob("crash-*")) if (FOUND / name).is_dir() else []
    for data in [*target.seeds, *(path.read_bytes() for path in found)]:
        target.one_input(data)


def test_found_inputs_are_kept() -> None:
    """The fixed crashes stay in the suite: the SDP parser's AttributeError, the forms' 500s,
    the codec-less video stream."""
    assert {path.parent.name for path in FOUND.glob("*/crash-*")} == {"sdp", "forms", "clips"}


@pytest.mark.parametrize("name", sorted(INSTRUMENT))
def test_random_inputs_are_answered(name: str, target: Target) -> None:

    @settings(
        max_examples=EXAMPLES.get(name, 300),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        st.one_of(
            st.binary(max_size=4096),
            st.sampled_from(list(target.seeds) or [b""]).flatmap(
                lambda seed: st.binary(max_size=64).map(lambda tail: seed[:-8] + tail)
            ),
        )
    )
    def run(data: bytes) -> None:
        target.one_input(data)

    run()


BAD_FORMS = [
    ("application/x-www-form-urlencoded", b"category=theft&description=\xff\xfe"),
    ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary in the header
    ("multipart/form-data; boundary=x", b"not a multipart body at all"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-linefuzz\r\n\r\nv\r\n--x--\r\n"),
]


@pytest.mark.parametrize("path", ["/api/reports", "/open311/v2/requests.json"])
async def test_a_form_that_does_not_parse_is_a_400(client: Client, path: str) -> None:
    """What the fuzzer found on the form routes, over HTTP: each of these was a 500."""
    for content_type, body in BAD_FORMS:
        reply = await client.post(path, data=body, headers={"Content-Type": content_type})
        assert reply.status == 400, (content_type, body, await reply.text())
        answer = await reply.json()
        if path == "/api/reports":  # GeoReport v2 has its own error body (a list)
            assert answer["error"]["code"] in {"bad_form", "invalid"}, answer
