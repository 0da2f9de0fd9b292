"""The public map with 100,000 reports on a phone: the first view shows where they are, and
every pan and zoom asks the server for that view only and draws it; what is drawn adds up to
the reports inside the view, counted in the database; a tap on a cluster zooms into it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from server.db.map_grid import to_grid
from server.db.migrate import upgrade
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.test_threat_map import PHONE, open_map
from tests.map_reports import fill_reports

# Its own SQLite deployment, whatever the pass: 100,000 rows are this test's alone.
pytestmark = [pytest.mark.browser, pytest.mark.one_pass]

REPORTS = 100_000
# Without a tile server the basemap goes this deep (basemap.js).
OFFLINE_MAX_ZOOM = 11
# A phone screen of 64-px cells holds about 6 x 12 of them; the page never draws more than a
# screen's worth (plus the cells at its edges).
MAX_MARKS = 200
TIMEOUT_MS = 20_000
# The cells on screen: the clusters' counts and the lone reports.
SHOWN_JS = """() => {
  const map = document.getElementById('map');
  let sum = 0;
  for (const c of map.querySelectorAll('[data-testid=map-cluster]')) sum += Number(c.dataset.count);
  const singles = map.querySelectorAll('[data-testid=map-report]').length;
  const clusters = map.querySelectorAll('[data-testid=map-cluster]').length;
  const {viewSeq, viewZoom, viewBbox} = map.dataset;
  return {sum: sum + singles, markers: clusters + singles,
          seq: Number(viewSeq), zoom: Number(viewZoom), bbox: viewBbox};
}"""  # fmt: skip

NEAREST_CLUSTER_JS = """() => {
  const map = document.getElementById('map').getBoundingClientRect();
  const cx = map.left + map.width / 2, cy = map.top + map.height / 2;
  let best = null, bestD = Infinity;
  for (const c of document.querySelectorAll('[data-testid=map-cluster]')) {
    const r = c.getBoundingClientRect();
    const d = Math.hypot(r.left + r.width / 2 - cx, r.top + r.height / 2 - cy);
    if (d < bestD) { best = [r.left + r.width / 2, r.top + r.height / 2]; bestD = d; }
  }
  return best;
}"""


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    data_dir = tmp_path_factory.mktemp("map-many")
    database = data_dir / "lifeline.db"
    url = f"sqlite+aiosqlite:///{database}"

    def prepare() -> None:
        upgrade(url)
        asyncio.run(fill_reports(url, REPORTS))

    # Beside sync Playwright's own event loop, which may be running in this thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(prepare).result()
    server = start_server(data_dir, {"LIFELINE_DATABASE_URL": url}, fresh_stores=False)
    yield server, database
    stop_server(server)


def _inside(database: Path, bbox: str) -> int:
    """The reports in the view, counted in the database by their grid cells."""
    west, south, east, north = (float(v) for v in bbox.split(","))
    (x0, y0), (x1, y1) = to_grid(north, west), to_grid(south, east)
    with sqlite3.connect(database) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM threat_reports"
            " WHERE grid_x BETWEEN ? AND ? AND grid_y BETWEEN ? AND ?",
            (x0, x1, y0, y1),
        ).fetchone()
    return int(count)


def _settled(page: Page, after: int) -> dict[str, object]:
    """The view after the ``after``-th, once it is drawn."""
    page.wait_for_function(
        "(after) => Number(document.getElementById('map').dataset.viewSeq) > after",
        arg=after,
        timeout=TIMEOUT_MS,
    )
    page.wait_for_timeout(0)
    return dict(page.evaluate(SHOWN_JS))


def _nearest_cluster(page: Page) -> tuple[float, float]:
    """The cluster nearest the map's centre: those at the edges sit under the controls."""
    found = page.evaluate(NEAREST_CLUSTER_JS)
    assert found, "no cluster on the map"
    return float(found[0]), float(found[1])


def _step(
    page: Page, database: Path, view: dict[str, object], act: Callable[[], None]
) -> dict[str, object]:
    """Pan, zoom or tap; the next view drawn holds exactly the reports inside it, in few marks."""
    act()
    moved = _settled(page, int(str(view["seq"])))
    assert moved["bbox"] != view["bbox"], moved
    assert moved["sum"] == _inside(database, str(moved["bbox"])), moved
    assert int(str(moved["markers"])) <= MAX_MARKS, moved
    return moved


def test_a_phone_pans_and_zooms_a_map_of_100000_reports(
    browser: Browser, many: tuple[RunningServer, Path], artifacts: Path
) -> None:
    server, database = many
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        open_map(page, server.base)
        expect(page.get_by_test_id("report-count")).to_have_attribute("data-count", str(REPORTS))
        view = _settled(page, 1)  # the second view: moved to where the reports are
        assert view["sum"] == _inside(database, str(view["bbox"])) > 0, view
        assert 0 < int(str(view["markers"])) <= MAX_MARKS, view
        page.screenshot(path=str(artifacts / "map-100000-360.png"))

        page.locator("#map").focus()
        view = _step(page, database, view, lambda: page.keyboard.press("+"))
        # A cluster tap zooms into its cell.
        zoomed = _step(page, database, view, lambda: page.touchscreen.tap(*_nearest_cluster(page)))
        assert int(str(zoomed["zoom"])) > int(str(view["zoom"])), zoomed
        view = zoomed
        while int(str(view["zoom"])) < OFFLINE_MAX_ZOOM:
            view = _step(page, database, view, lambda: page.keyboard.press("+"))
        page.screenshot(path=str(artifacts / "map-100000-deepest-360.png"))

        # At the deepest zoom a cluster opens as the list of its reports, each one's popup a
        # tap away.
        page.touchscreen.tap(*_nearest_cluster(page))
        listed = page.get_by_test_id("cluster-list")
        expect(listed.get_by_test_id("cluster-item")).to_have_count(20)
        expect(listed).to_contain_text("more")
        page.wait_for_timeout(300)  # the popup fades in (Leaflet), for the screenshot only
        page.screenshot(path=str(artifacts / "map-100000-cluster-list-360.png"))
        listed.get_by_test_id("cluster-item").first.tap()
        expect(page.get_by_test_id("report-popup")).to_contain_text("bench report")
        page.keyboard.press("Escape")

        page.locator("#map").focus()
        _step(page, database, view, lambda: page.keyboard.press("ArrowRight"))
    finally:
        context.close()
