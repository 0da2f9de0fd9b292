"""Without MAP_PMTILES or MAP_TILE_URL (the default) the maps draw country outlines, and say on
the map, in the page's language, that street detail is not configured; no attribution is shown
for data that is not there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.test_threat_map import PHONE

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
NOTES = {
    "en": "Street detail is not configured",
    "ru": "Улицы на карте не настроены",
    "kk": "Картадағы көшелер бапталмаған",
    "pl": "Mapa ulic nie jest skonfigurowana",
}


@pytest.fixture(scope="module")
def outline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("outline-map"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(outline_server: RunningServer) -> None:
    """Start the server before Chromium: in scale-out mode its start resets PostgreSQL with
    ``asyncio.run()``, which fails once sync Playwright's event loop runs in this thread."""


@pytest.mark.parametrize("lang", list(NOTES))
def test_the_outline_map_says_street_detail_is_not_configured(
    browser: Browser,
    outline_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
    lang: str,
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.on("weberror", lambda error: page_errors.append(f"phone: {error.error}"))
    try:
        page = context.new_page()
        page.goto(f"{outline_server.base}/map?lang={lang}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("threat-map")).to_have_attribute("data-basemap", "outline")
        note = page.get_by_test_id("map-no-streets")
        expect(note).to_be_visible()
        expect(note).to_contain_text(NOTES[lang])
        expect(page.locator(".leaflet-control-attribution")).to_have_count(0)
        # The note stays clear of the legend in the same corner.
        note_box, legend_box = note.bounding_box(), page.get_by_test_id("map-legend").bounding_box()
        assert note_box and legend_box
        assert note_box["y"] + note_box["height"] <= legend_box["y"], (note_box, legend_box)
        if lang in ("en", "ru"):
            page.screenshot(path=str(artifacts / f"map-outline-360-{lang}.png"))
    finally:
        context.close()
