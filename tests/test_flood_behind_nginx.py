"""A city behind one proxy (issue 19): callers from many addresses reach two nodes through nginx,
which the nodes trust (``TRUSTED_PROXIES``), and one address floods the line.

Each caller connects to nginx from an address of its own in 127.0.0.0/8 (``tests/edge.py``), so
nginx's ``X-Forwarded-For`` names twenty callers, and the call-rate policy (docs/operations.md)
counts each on its own: all twenty get calls, none marked. One address then starts calls as fast
as it can, 100 of them (the default allowance is 6 a minute), while ten other callers call: every
flood call is still a call (never a 429), those over the allowance are marked
``suspected_abuse`` and queued after every unmarked call, and the ten are queued unmarked, each
seen by the operator's console (on the other node) and its caller's page told "queued". How long
that setup takes during a flood is a figure for ``make bench`` (the ``flood`` row), not asserted
here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.edge import Centre, run_centre
from tests.edge_callers import (
    WAIT_SECS,
    console,
    flood,
    genuine_call,
    queue_of,
)

# One pass: two nodes on a PostgreSQL database and a Redis of their own in either pass.
pytestmark = pytest.mark.one_pass

EMBEDDED_DATABASE = "lifeline_flood"
EMBEDDED_REDIS_DB = 11
CITY = [f"127.0.0.{10 + n}" for n in range(20)]
GENUINE = [f"127.0.1.{10 + n}" for n in range(10)]
FLOODER = "127.0.2.99"
FLOOD_CALLS = 100
FLOOD_STREAMS = 4  # parallel streams of calls, each one call after the other


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    with run_centre(
        tmp_path_factory.mktemp("flood"),
        database=EMBEDDED_DATABASE,
        redis_db=EMBEDDED_REDIS_DB,
        # Both nodes keep their media in the node: no call here sends any.
        media_workers={"a": "0", "b": "0"},
    ) as centre:
        yield centre


@pytest.mark.timeout(240)  # two nodes and nginx start first; CI machines are not always quiet
async def test_twenty_forwarded_callers_each_get_an_unmarked_call_then_a_flood_is_demoted(
    centre: Centre,
) -> None:
    async with console(centre) as desk:
        # Twenty callers at once, each from an address of its own: each its own allowance.
        city = await asyncio.gather(*(genuine_call(centre, desk, address) for address in CITY))
        assert [call["state"] for call in city] == ["queued"] * len(CITY)
        assert [call["marks"] for call in city] == [[]] * len(CITY)

        # One address floods, its calls as fast as a script makes them (keeping no device
        # cookie: the address is the caller), while ten callers elsewhere call.
        flooded, *genuine = await asyncio.gather(
            flood(centre, FLOODER, FLOOD_CALLS, FLOOD_STREAMS),
            *(genuine_call(centre, desk, address) for address in GENUINE),
        )
        assert [call["state"] for call in genuine] == ["queued"] * len(GENUINE)
        assert [call["marks"] for call in genuine] == [[]] * len(GENUINE)

        # Every flood call is a call, in the operator's queue; those over the allowance marked.
        flood_ids = [call["call_id"] for call in flooded]
        await asyncio.wait_for(
            asyncio.gather(*(desk.arrived(call_id).wait() for call_id in flood_ids)), WAIT_SECS
        )
        queue = await queue_of(desk)
        by_id = {call["call_id"]: call for call in queue}
        assert set(flood_ids) <= set(by_id)
        flood_marks = sorted(tuple(by_id[call_id]["marks"]) for call_id in flood_ids)
        allowance = 6  # the default CALL_RATE_LIMIT: 6 a minute
        assert flood_marks == [()] * allowance + [("suspected_abuse",)] * (FLOOD_CALLS - allowance)

        # Demoted, not dropped: every unmarked call comes before every marked one.
        marked = [bool(call["marks"]) for call in queue]
        assert marked == sorted(marked), "a marked call is queued before an unmarked one"
        genuine_ids = {call["call_id"] for call in [*city, *genuine]}
        assert genuine_ids <= {call["call_id"] for call in queue if not call["marks"]}
