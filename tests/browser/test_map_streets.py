"""The street basemap in real Chromium: a PMTiles file the test makes (tests/street_basemap.py),
served by the node (MAP_PMTILES) in byte ranges and painted by protomaps-leaflet on canvas.

On a 360x740 phone at zoom 17 the streets are where Web Mercator says they must be: the
screenshot's pixels along each street have the flavour's road colour, and beside it the land's.
A citizen pins a report by tapping the crossing of two streets: the report is stored within a
few metres of that crossing, and the operator's map (the dark flavour, 1920x1080) shows its
marker on the same crossing. A second phone tapping the same corner is offered the first
report and says "me too". MAP_TILE_URL is set as well: the PMTiles file comes first and no tile
is asked of it. Screenshots go to ``tests/artifacts``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Response, expect

from server.http.basemap import BASEMAP_PATH
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_threat_map import CONSOLE_SCREEN, PHONE, open_map, public_report
from tests.street_basemap import (
    ATTRIBUTION,
    CROSSING,
    DARK_EARTH,
    DARK_ROAD,
    LIGHT_EARTH,
    LIGHT_ROAD,
    Street,
    metres_between,
    offset,
    streets,
    world_pixel,
    write_street_basemap,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
# Never asked: the PMTiles file comes first (nothing listens on the discard port anyway).
UNUSED_TILE_SERVER = "http://127.0.0.1:9"
# The phone stands inside the block north-east of the middle crossing, off every street.
HERE = offset(40, 50)
STREET_ZOOM = 17
# A tap lands on a whole CSS pixel (0.87 m here at zoom 17); the map's centre is rounded too.
PIN_TOLERANCE_M = 3.0
# Colours are compared channel by channel, anti-aliasing and JPEG-free PNGs being what they are.
COLOUR_TOLERANCE = 8
# Beside a street: far enough to be off its paint (8 px wide at most here), well inside the block.
BESIDE_PX = 30
SAMPLE_STEP_PX = 10
# What lies over the map and must not be read as the basemap.
OVERLAYS = (
    ".leaflet-control, .leaflet-marker-icon, .leaflet-popup, .report-counter, .locate-btn,"
    " .map-legend, .fab, .map-message:not([hidden]), .report-panel:not([hidden])"
)
BOXES_JS = """(selector) => [...document.querySelectorAll(selector)]
  .map((e) => e.getBoundingClientRect())
  .filter((r) => r.width > 0 && r.height > 0)
  .map((r) => [r.left, r.top, r.right, r.bottom])"""
# The pin stays put for two looks 250 ms apart, and every tile in view is painted.
SETTLED_JS = """([mapId, selector]) => {
  const map = document.getElementById(mapId);
  const mark = document.querySelector(selector);
  if (!mark || map.dataset.basemapState !== 'drawn') return false;
  const r = mark.getBoundingClientRect();
  const key = `${r.left},${r.top}`;
  const same = map.dataset.settledAt === key;
  map.dataset.settledAt = key;
  return same;
}"""


@dataclass
class Reading:
    """Pixels read along one street and beside it."""

    street: str
    on: int
    on_road: int
    beside: int
    beside_land: int


@pytest.fixture(scope="module")
def street_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("street-map")
    basemap = write_street_basemap(data_dir / "streets.pmtiles")
    server = start_server(
        data_dir,
        {
            "LIFELINE_MAP_PMTILES": str(basemap),
            "LIFELINE_MAP_ATTRIBUTION": ATTRIBUTION,
            "LIFELINE_MAP_TILE_URL": f"{UNUSED_TILE_SERVER}/{{z}}/{{x}}/{{y}}.png",
            "LIFELINE_REPORT_RATE_LIMIT": "100/day",
            "LIFELINE_CONFIRM_RATE_LIMIT": "100/day",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(street_server: RunningServer) -> None:
    """Start the server before Chromium: in scale-out mode its start resets PostgreSQL with
    ``asyncio.run()``, which fails once sync Playwright's event loop runs in this thread."""


def _phone(browser: Browser, page_errors: list[str], where: tuple[float, float]) -> BrowserContext:
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["geolocation"],
        geolocation={"latitude": where[0], "longitude": where[1], "accuracy": 10},
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.on("weberror", lambda error: page_errors.append(f"phone: {error.error}"))
    return context


@pytest.fixture
def phone(browser: Browser, page_errors: list[str]) -> Iterator[BrowserContext]:
    context = _phone(browser, page_errors, HERE)
    yield context
    context.close()


@dataclass
class Fetches:
    """What the page asked for the basemap, and of the tile server (nothing, it must be)."""

    basemap: list[Response]
    tile_server: list[str]


def _watch(page: Page) -> Fetches:
    fetches = Fetches([], [])
    page.on("response", lambda r: fetches.basemap.append(r) if BASEMAP_PATH in r.url else None)
    page.on(
        "request",
        lambda r: (
            fetches.tile_server.append(r.url) if r.url.startswith(UNUSED_TILE_SERVER) else None
        ),
    )
    return fetches


def _settle(page: Page, map_id: str, mark: str) -> None:
    page.wait_for_function(SETTLED_JS, arg=[map_id, mark], polling=250, timeout=TIMEOUT_MS)


def _screen(page: Page) -> Image.Image:
    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")


def _pixel(image: Image.Image, x: float, y: float) -> tuple[int, ...]:
    value = image.getpixel((round(x), round(y)))
    assert isinstance(value, tuple)
    return value


def _near(colour: tuple[int, ...], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= COLOUR_TOLERANCE for a, b in zip(colour, wanted, strict=False))


def _screen_of(anchor: tuple[float, float], anchor_at: tuple[float, float], zoom: float) -> Any:
    """Where a point is on screen, given one point whose screen position is known."""
    ax, ay = world_pixel(*anchor_at, zoom)

    def at(lat: float, lon: float) -> tuple[float, float]:
        x, y = world_pixel(lat, lon, zoom)
        return anchor[0] + x - ax, anchor[1] + y - ay

    return at


def _read_streets(
    page: Page,
    image: Image.Image,
    map_box: tuple[float, float, float, float],
    at: Any,
    road: tuple[int, int, int],
    land: tuple[int, int, int],
    keep_clear: list[tuple[float, float, float]],
) -> list[Reading]:
    """For every street crossing the map's box: its colour along it, and the land's beside it,
    at points no overlay covers, away from the other streets and the ``keep_clear`` circles."""
    overlays = [tuple(box) for box in page.evaluate(BOXES_JS, OVERLAYS)]
    left, top, right, bottom = map_box
    lines: list[tuple[Street, bool, float]] = []  # (street, east-west, where on screen)
    for street in streets():
        x, y = at(street.lat or CROSSING[0], street.lon or CROSSING[1])
        lines.append((street, street.lat is not None, y if street.lat is not None else x))

    def clear(x: float, y: float) -> bool:
        if not (left + 4 <= x <= right - 4 and top + 4 <= y <= bottom - 4):
            return False
        if any(x0 - 4 <= x <= x1 + 4 and y0 - 4 <= y <= y1 + 4 for x0, y0, x1, y1 in overlays):
            return False
        return all((x - cx) ** 2 + (y - cy) ** 2 > r**2 for cx, cy, r in keep_clear)

    readings = []
    for street, horizontal, where in lines:
        others = [pos for s, h, pos in lines if h != horizontal]
        parallel = [pos for s, h, pos in lines if h == horizontal and s is not street]
        span = (left, right) if horizontal else (top, bottom)
        on = on_road = beside = beside_land = 0
        along = span[0]
        while along <= span[1]:
            along += SAMPLE_STEP_PX
            if any(abs(along - other) < 16 for other in others):
                continue  # the crossing street's paint and its label
            point = (along, where) if horizontal else (where, along)
            if clear(*point):
                on += 1
                on_road += _near(_pixel(image, *point), road)
            for side in (-BESIDE_PX, BESIDE_PX):
                if any(abs(where + side - p) < 16 for p in parallel):
                    continue
                off = (along, where + side) if horizontal else (where + side, along)
                if clear(*off):
                    beside += 1
                    beside_land += _near(_pixel(image, *off), land)
        if on >= 8:
            readings.append(Reading(street.name, on, on_road, beside, beside_land))
    return readings


def _assert_drawn(readings: list[Reading], least: int) -> None:
    assert len(readings) >= least, readings
    for reading in readings:
        # Street names are painted along the middle of a street: most of it is still road.
        assert reading.on_road >= 0.75 * reading.on, reading
        assert reading.beside_land >= 0.9 * reading.beside, reading


def _map_box(page: Page, selector: str) -> tuple[float, float, float, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None
    return box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]


def _pin_at(page: Page) -> tuple[tuple[float, float], tuple[float, float]]:
    """The pin's tip on screen (its icon's anchor, map.js: 17, 42) and the point it stands for."""
    box = page.get_by_test_id("report-pin").bounding_box()
    assert box is not None
    point = page.get_by_test_id("report-point")
    latlon = (
        float(point.get_attribute("data-lat") or "nan"),
        float(point.get_attribute("data-lon") or "nan"),
    )
    return (box["x"] + 17, box["y"] + 42), latlon


def _pin_on_street(
    page: Page, target: tuple[float, float], artifacts: Path, shot: str | None
) -> tuple[float, float]:
    """In "choose on the map", tap where ``target`` (a point of a street) is drawn; the point
    the form then holds. With ``shot``, screenshots before the tap and of the pin after it."""
    page.get_by_test_id("report-pick-point").tap()
    expect(page.get_by_test_id("report-panel")).to_have_attribute("data-picking", "true")
    _settle(page, "map", "[data-testid=report-pin]")
    tip, pinned = _pin_at(page)
    at = _screen_of(tip, pinned, STREET_ZOOM)
    x, y = at(*target)
    image = _screen(page)
    # What is about to be tapped is a street: road colour there and both ways along each.
    assert _near(_pixel(image, x, y), LIGHT_ROAD), _pixel(image, x, y)
    readings = _read_streets(
        page,
        image,
        _map_box(page, "#map"),
        at,
        LIGHT_ROAD,
        LIGHT_EARTH,
        keep_clear=[(tip[0], tip[1], 24)],  # the phone's own dot, under the pin's tip
    )
    _assert_drawn([r for r in readings if r.street in ("Central Avenue", "Market Avenue")], 2)
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-choose.png"))
    page.touchscreen.tap(x, y)
    expect(page.get_by_test_id("report-panel")).to_have_attribute("data-picking", "false")
    point = page.get_by_test_id("report-point")
    expect(point).not_to_have_attribute("data-lat", f"{pinned[0]:.6f}")
    if shot:
        # The form's sheet covers the pin: "choose on the map" again shows where it stands.
        page.get_by_test_id("report-pick-point").tap()
        _settle(page, "map", "[data-testid=report-pin]")
        page.screenshot(path=str(artifacts / f"{shot}-pinned.png"))
        page.get_by_test_id("report-pick-done").tap()
    return float(point.get_attribute("data-lat") or "nan"), float(
        point.get_attribute("data-lon") or "nan"
    )


def test_streets_are_drawn_at_zoom_17_on_a_phone(
    phone: BrowserContext, street_server: RunningServer, artifacts: Path
) -> None:
    page = phone.new_page()
    fetches = _watch(page)
    open_map(page, street_server.base)
    map_element = page.get_by_test_id("threat-map")
    expect(map_element).to_have_attribute("data-basemap", "pmtiles")
    page.get_by_test_id("locate-me").tap()
    expect(map_element).to_have_attribute("data-view-zoom", str(STREET_ZOOM))
    _settle(page, "map", "#map .me-dot")
    page.screenshot(path=str(artifacts / "map-streets-360-z17.png"))
    box = _map_box(page, "#map")
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    readings = _read_streets(
        page,
        _screen(page),
        box,
        _screen_of(centre, HERE, STREET_ZOOM),
        LIGHT_ROAD,
        LIGHT_EARTH,
        keep_clear=[(centre[0], centre[1], 24)],  # the phone's own dot
    )
    # At zoom 17 the phone shows 310 m across: two of each way, the grid being 150 m apart.
    _assert_drawn(readings, 4)
    assert {r.street for r in readings} >= {"Central Avenue", "Market Avenue"}

    expect(page.locator("#map .leaflet-control-attribution")).to_contain_text(ATTRIBUTION)
    assert fetches.basemap, "the basemap was never fetched"
    assert all(a.status == 206 for a in fetches.basemap), [a.status for a in fetches.basemap]
    assert all(a.headers.get("accept-ranges") == "bytes" for a in fetches.basemap)
    assert fetches.tile_server == []


def _drag_marker_under_the_pill(page: Page, marker: Locator) -> None:
    """Drags the map (as a finger would, with the mouse) until ``marker`` stands just under
    the "Reports on the map" pill."""
    box, pill = marker.bounding_box(), page.locator(".report-counter").bounding_box()
    assert box is not None and pill is not None
    top = pill["y"] + pill["height"] + 40
    x, y = PHONE["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, top, steps=8)
    page.wait_for_timeout(200)  # held still before lifting: Leaflet adds no inertia
    page.mouse.up()
    moved = None
    for _ in range(50):  # the markers are drawn again once the map has its new view
        expect(marker).to_be_visible()
        moved = marker.bounding_box()
        if moved is not None:
            break
        page.wait_for_timeout(100)
    assert moved is not None and moved["y"] + moved["height"] / 2 < top + 24, moved


def test_a_report_pinned_on_a_street_is_there_on_the_console(
    browser: Browser,
    phone: BrowserContext,
    street_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    base = street_server.base
    page = phone.new_page()
    open_map(page, base)
    page.get_by_test_id("new-report").tap()
    expect(page.get_by_test_id("report-point")).not_to_have_attribute("data-lat", "")
    lat, lon = _pin_on_street(page, CROSSING, artifacts, "map-streets-360")
    assert metres_between((lat, lon), CROSSING) <= PIN_TOLERANCE_M, (lat, lon)
    page.get_by_test_id("report-category").select_option("illegal_parking")
    page.get_by_test_id("report-description").fill("Cars parked across the crossing every night.")
    page.get_by_test_id("report-submit").tap()
    expect(page.get_by_test_id("report-follow-link")).to_be_visible()
    report_id = int(page.get_by_test_id("report-done").get_attribute("data-report-id") or "0")
    stored = public_report(page, base, report_id)
    assert stored["category"] == "illegal_parking"

    # The report's popup, over the streets.
    page.get_by_test_id("report-done-close").tap()
    marker = page.locator(f"[data-testid=map-report][data-report-id='{report_id}']")
    expect(marker).to_be_visible()
    # The map dragged until the marker stands just under the "Reports on the map" pill: its
    # popup, opening upwards, would cover the pill's line (or the pill its title) unless the
    # map pans it clear.
    _drag_marker_under_the_pill(page, marker)
    marker.tap()
    expect(page.get_by_test_id("report-popup")).to_contain_text("Cars parked")
    page.wait_for_timeout(300)  # the popup fades in and the map pans (Leaflet)
    pill = page.locator(".report-counter").bounding_box()
    popup = page.locator(".leaflet-popup-content-wrapper").bounding_box()
    assert pill is not None and popup is not None
    assert popup["y"] >= pill["y"] + pill["height"], f"the pill covers the popup: {pill} {popup}"
    zoom = page.locator(".leaflet-control-zoom").bounding_box()
    assert zoom is not None and popup["x"] + popup["width"] <= zoom["x"], (
        f"the zoom buttons cover the popup's close button: {zoom} {popup}"
    )
    page.screenshot(path=str(artifacts / "map-streets-360-popup.png"))

    # The operator's map: the marker stands on the same crossing, in the dark flavour.
    secret = add_staff(street_server, "op-streets", "operator")
    desk = browser.new_context(viewport=CONSOLE_SCREEN)
    desk.set_default_timeout(TIMEOUT_MS)
    try:
        console = desk.new_page()
        console.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
        sign_in(console, base, "op-streets", secret, "/console")
        expect(console.locator("body")).to_have_attribute("data-ready", "true")
        console.get_by_test_id("tab-threats").click()
        expect(console.get_by_test_id("threats-panel")).to_have_attribute("data-ready", "true")
        threat_map = console.locator("#threat-map")
        expect(threat_map).to_have_attribute("data-basemap", "pmtiles")
        mark = f"[data-testid=threat-marker][data-report-id='{report_id}']"
        expect(console.locator(mark)).to_be_visible()
        _settle(console, "threat-map", mark)
        staff_view = console.request.get(f"{base}/api/staff/reports/{report_id}").json()
        assert metres_between((staff_view["lat"], staff_view["lon"]), CROSSING) <= PIN_TOLERANCE_M
        console.screenshot(path=str(artifacts / "console-streets-1920.png"))
        _assert_on_the_crossing(console, mark)
        expect(threat_map.locator(".leaflet-control-attribution")).to_contain_text(ATTRIBUTION)
    finally:
        desk.close()


def _assert_on_the_crossing(console: Page, mark: str) -> None:
    """Road both ways through the marker's centre, land on the diagonals: the crossing."""
    box = console.locator(mark).bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    image = _screen(console)
    overlays = [tuple(b) for b in console.evaluate(BOXES_JS, OVERLAYS)]

    def colour(dx: float, dy: float) -> tuple[int, ...] | None:
        x, y = cx + dx, cy + dy
        if any(x0 - 2 <= x <= x1 + 2 and y0 - 2 <= y <= y1 + 2 for x0, y0, x1, y1 in overlays):
            return None
        return _pixel(image, x, y)

    along = [
        colour(dx, dy) for d in range(20, 61, 5) for dx, dy in ((d, 0), (-d, 0), (0, d), (0, -d))
    ]
    diagonal = [
        colour(dx, dy) for d in range(20, 41, 5) for dx, dy in ((d, d), (-d, d), (d, -d), (-d, -d))
    ]
    along_read = [c for c in along if c is not None]
    diagonal_read = [c for c in diagonal if c is not None]
    assert len(along_read) >= 24 and len(diagonal_read) >= 16
    assert sum(_near(c, DARK_ROAD) for c in along_read) >= 0.75 * len(along_read), along_read
    assert sum(_near(c, DARK_EARTH) for c in diagonal_read) >= 0.9 * len(diagonal_read)


def test_a_second_phone_on_the_same_corner_says_me_too(
    browser: Browser, street_server: RunningServer, page_errors: list[str], artifacts: Path
) -> None:
    base = street_server.base
    lat, lon = CROSSING
    reporter = _phone(browser, page_errors, CROSSING)
    elsewhere = _phone(browser, page_errors, offset(-60, -70))
    try:
        first = reporter.request.post(
            f"{base}/api/reports",
            multipart={
                "category": "stray_dogs",
                "lat": str(lat),
                "lon": str(lon),
                "description": "Three stray dogs at the crossing.",
            },
        )
        assert first.status == 201, first.text()
        first_id = first.json()["id"]
        page = elsewhere.new_page()
        open_map(page, base)
        page.get_by_test_id("new-report").tap()
        expect(page.get_by_test_id("report-point")).not_to_have_attribute("data-lat", "")
        # On Central Avenue 40 m east of the crossing: the crossing itself is under the
        # reports' marks now (a tap there opens theirs), and 40 m is well inside "nearby".
        target = offset(0, 40)
        pinned = _pin_on_street(page, target, artifacts, None)
        assert metres_between(pinned, target) <= PIN_TOLERANCE_M, pinned
        page.get_by_test_id("report-category").select_option("stray_dogs")
        page.get_by_test_id("report-description").fill("Dogs again by the crossing.")
        page.get_by_test_id("report-submit").tap()
        expect(page.get_by_test_id("nearby")).to_be_visible()
        offered = page.locator(f"[data-testid=nearby-item][data-report-id='{first_id}']")
        expect(offered).to_contain_text("Three stray dogs")
        page.screenshot(path=str(artifacts / "map-streets-360-me-too.png"))
        offered.get_by_test_id("nearby-confirm").tap()
        expect(offered.get_by_test_id("nearby-confirmations")).to_have_attribute("data-count", "1")
        assert public_report(page, base, first_id)["confirmations"] == 1
    finally:
        elsewhere.close()
        reporter.close()
