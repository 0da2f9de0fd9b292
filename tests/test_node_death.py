"""A whole node killed under live calls (issue 11, T1): the scenario in tests/node_death.py, one
short round of four calls split across two nodes behind nginx. Every call's video is back at its
operator, the killed node's calls recorded on in a next segment on the live node, and nothing
acknowledged lost or doubled. ``python -m bench.node_death`` runs it with 16 calls, 5 times.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.edge import Centre, run_centre
from tests.node_death import node_death_round

# One pass: two nodes on a PostgreSQL database and a Redis of their own in either pass.
pytestmark = pytest.mark.one_pass

EMBEDDED_DATABASE = "lifeline_node_death"
EMBEDDED_REDIS_DB = 8
CALLS = 4
RECONNECTING_WITHIN_SECS = 3.0


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    with run_centre(
        tmp_path_factory.mktemp("death"),
        database=EMBEDDED_DATABASE,
        redis_db=EMBEDDED_REDIS_DB,
        media_workers={"a": "1", "b": "1"},
    ) as centre:
        yield centre


@pytest.mark.timeout(240)
async def test_a_node_killed_under_live_calls_costs_seconds_not_calls(centre: Centre) -> None:
    figures = await node_death_round(centre, CALLS, centre.nodes["a"].env["LIFELINE_DATABASE_URL"])
    print(f"\nFIGURE node_death {figures.line()}")
    assert figures.calls_back == CALLS
    assert figures.affected == CALLS // 2  # each node's own worker took its phones' media
    assert figures.next_segments == figures.affected
    assert (figures.lost, figures.doubled) == (0, 0)
    assert figures.chats > 0 and figures.fixes > 0
    # Supervisors see the moved calls as reconnecting within 3 s, and back once they are.
    assert len(figures.reconnecting_secs) == figures.affected
    assert max(figures.reconnecting_secs) <= RECONNECTING_WITHIN_SECS, figures.reconnecting_secs
    assert figures.wall_back == figures.affected
