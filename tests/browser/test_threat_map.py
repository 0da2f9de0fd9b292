"""The threat map (KMZB) in real Chromium: a citizen's phone, an operator's console, the statistics.

Issue 5, "Done when" 1 and 2 (and 7's screenshots): at 360x740 a citizen reports a threat with a
photo; it reaches the operator's Threats tab live; the officer moves it through verifying to
confirmed with a public note; the citizen's follow link shows the status and the note; the public
map shows it in its status colour. A second report 20 m away is offered the first ("is it one of
these?"), and "me too" adds a confirmation. Screenshots go to ``tests/artifacts``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Geolocation,
    Page,
    ViewportSize,
    expect,
)

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
PHONE: ViewportSize = {"width": 360, "height": 740}
CONSOLE_SCREEN: ViewportSize = {"width": 1920, "height": 1080}
STATS_SCREEN: ViewportSize = {"width": 1280, "height": 900}
ALMATY: Geolocation = {"latitude": 43.238, "longitude": 76.945, "accuracy": 10}
# 20 m north of the duplicate test's first report: one degree of latitude is ~111.32 km.
DUPLICATE_FIRST = (43.2500, 76.9300)
METRES_20_IN_DEGREES_LAT = 20 / 111_320
COORDINATE_TOLERANCE = 1e-4
MEDEU = [[76.90, 43.20], [76.96, 43.20], [76.96, 43.27], [76.90, 43.27], [76.90, 43.20]]
DISTRICTS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"name": "Medeu district"},
            "geometry": {"type": "Polygon", "coordinates": [MEDEU]},
        }
    ],
}
DESCRIPTION = "A pack of stray dogs by the school gate every evening."
PUBLIC_NOTE = "A patrol found the dogs; the city shelter is on its way."

# The colour a status is drawn in: the custom property threats.css gives it, and the colour the
# marker's dot really has, both as the browser computes them.
STATUS_COLOURS_JS = """([selector, status]) => {
  const probe = document.createElement('span');
  probe.style.color = getComputedStyle(document.documentElement).getPropertyValue(`--st-${status}`);
  document.body.append(probe);
  const wanted = getComputedStyle(probe).color;
  probe.remove();
  const dot = document.querySelector(selector);
  return { wanted, shown: dot ? getComputedStyle(dot).backgroundColor : null };
}"""


@pytest.fixture(scope="module")
def threat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One report a day per client is KMZB's rule; this module's phones share an address."""
    root = tmp_path_factory.mktemp("threat-map")
    # The statistics count by the centre's own districts (here one around the test's reports).
    districts = root / "districts.geojson"
    districts.write_text(json.dumps(DISTRICTS), encoding="utf-8")
    server = start_server(
        root,
        {
            "LIFELINE_REPORT_RATE_LIMIT": "100/day",
            "LIFELINE_CONFIRM_RATE_LIMIT": "100/day",
            "LIFELINE_STATS_AREAS_FILE": str(districts),
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(threat_server: RunningServer) -> None:
    """Start the server before Chromium: in scale-out mode its start resets PostgreSQL with
    ``asyncio.run()``, which fails once sync Playwright's event loop runs in this thread."""


@pytest.fixture(scope="module")
def console(
    browser: Browser, threat_server: RunningServer, page_errors: list[str]
) -> Iterator[Page]:
    """Operator op1, signed in with password and TOTP, on the console's Threats tab."""
    secret = add_staff(threat_server, "op1", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
    sign_in(page, threat_server.base, "op1", secret, "/console")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("tab-threats").click()
    expect(page.get_by_test_id("threats-panel")).to_be_visible()
    expect(page.get_by_test_id("threats-panel")).to_have_attribute("data-ready", "true")
    yield page
    context.close()


def new_phone(browser: Browser, page_errors: list[str], where: Geolocation) -> BrowserContext:
    """A phone at ``where`` that has granted the page its location; its own cookies."""
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["geolocation"],
        geolocation=where,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.on("weberror", lambda error: page_errors.append(f"phone: {error.error}"))
    return context


@pytest.fixture
def phone(browser: Browser, page_errors: list[str]) -> Iterator[BrowserContext]:
    context = new_phone(browser, page_errors, ALMATY)
    yield context
    context.close()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A small real JPEG, as a phone's camera would give."""
    path = tmp_path / "dogs.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (170, 120, 60)).save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


def open_map(page: Page, base: str) -> None:
    page.goto(f"{base}/map")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def fill_report(page: Page, category: str, description: str) -> None:
    """Open the form and fill what every report needs; the point is the phone's location."""
    page.get_by_test_id("new-report").tap()
    expect(page.get_by_test_id("report-panel")).to_be_visible()
    expect(page.get_by_test_id("report-emergency-banner")).to_be_visible()
    expect(page.get_by_test_id("report-call-112")).to_have_attribute("href", "tel:112")
    expect(page.get_by_test_id("report-point")).not_to_have_attribute("data-lat", "")
    page.get_by_test_id("report-category").select_option(category)
    page.get_by_test_id("report-description").fill(description)


def point_of(page: Page) -> tuple[float, float]:
    point = page.get_by_test_id("report-point")
    return float(point.get_attribute("data-lat") or "nan"), float(
        point.get_attribute("data-lon") or "nan"
    )


def public_report(page: Page, base: str, report_id: int) -> dict[str, Any]:
    """The report's properties in the public GeoJSON, read as any client reads them."""
    response = page.request.get(f"{base}/api/reports")
    assert response.ok
    for feature in response.json()["features"]:
        if feature["properties"]["id"] == report_id:
            properties: dict[str, Any] = feature["properties"]
            return properties
    raise AssertionError(f"report {report_id} is not in the public GeoJSON")


def change_status(console: Page, status: str, public_note: str, internal_note: str) -> None:
    console.get_by_test_id("threat-status-select").select_option(status)
    console.get_by_test_id("threat-public-note").fill(public_note)
    console.get_by_test_id("threat-internal-note").fill(internal_note)
    console.get_by_test_id("threat-status-submit").click()
    expect(console.get_by_test_id("threat-detail-status")).to_have_attribute("data-status", status)


def test_a_reported_threat_goes_to_the_console_and_back(
    phone: BrowserContext,
    console: Page,
    threat_server: RunningServer,
    photo: Path,
    artifacts: Path,
) -> None:
    base = threat_server.base
    citizen = phone.new_page()
    open_map(citizen, base)
    shown_before = int(citizen.get_by_test_id("report-count").inner_text())

    fill_report(citizen, "stray_dogs", DESCRIPTION)
    lat, lon = point_of(citizen)
    assert abs(lat - ALMATY["latitude"]) < COORDINATE_TOLERANCE
    assert abs(lon - ALMATY["longitude"]) < COORDINATE_TOLERANCE
    expect(citizen.get_by_test_id("report-pin")).to_be_visible()
    expect(citizen.get_by_test_id("report-description-count")).to_have_text(
        f"{len(DESCRIPTION)} / 500"
    )
    citizen.get_by_test_id("report-day-mon").check()
    citizen.get_by_test_id("report-day-fri").check()
    citizen.get_by_test_id("report-time").select_option("evening")
    citizen.get_by_test_id("report-photos").set_input_files(str(photo))
    expect(citizen.get_by_test_id("report-thumb")).to_have_count(1)
    citizen.get_by_test_id("report-contact").fill("+7 700 000 00 00")
    width = citizen.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the map page is {width} px wide on a 360 px phone"
    # The sheet scrolled down while filling it in: show its top (the 112 banner, the point).
    citizen.get_by_test_id("report-panel").evaluate("(panel) => panel.scrollTo(0, 0)")
    citizen.screenshot(path=str(artifacts / "map-360-report-form.png"))
    # Nothing of the map lies over the sheet: where a map control and the sheet overlap, a tap
    # reaches the sheet.
    over = citizen.get_by_test_id("report-panel").evaluate(
        """(panel) => {
          const sheet = panel.getBoundingClientRect();
          return [...document.querySelectorAll('.leaflet-control a, .leaflet-control button')]
            .filter((control) => {
              const box = control.getBoundingClientRect();
              for (let i = 1; i < 8; i++) {
                for (let j = 1; j < 8; j++) {
                  const x = box.x + (box.width * i) / 8;
                  const y = box.y + (box.height * j) / 8;
                  const inside =
                    x > sheet.left && x < sheet.right && y > sheet.top && y < sheet.bottom;
                  if (inside && control.contains(document.elementFromPoint(x, y))) return true;
                }
              }
              return false;
            })
            .map((control) => control.title || control.textContent);
        }"""
    )
    assert over == [], f"map controls over the report sheet: {over}"

    citizen.get_by_test_id("report-submit").tap()
    follow = citizen.get_by_test_id("report-follow-link")
    expect(follow).to_be_visible()
    follow_url = follow.get_attribute("href") or ""
    assert follow_url.startswith(f"{base}/reports/follow/"), follow_url
    report_id = int(citizen.get_by_test_id("report-done").get_attribute("data-report-id") or "0")
    expect(citizen.get_by_test_id("report-count")).to_have_text(str(shown_before + 1))
    citizen.get_by_test_id("report-done-close").tap()
    marker = citizen.locator(f"[data-testid=map-report][data-report-id='{report_id}']")
    expect(marker).to_have_attribute("data-status", "new")
    citizen.screenshot(path=str(artifacts / "map-360-with-report.png"))
    stored = public_report(citizen, base, report_id)
    assert stored["category"] == "stray_dogs"
    assert len(stored["photos"]) == 1
    assert stored["days"] == ["mon", "fri"]
    assert stored["time_of_day"] == "evening"

    # The console never reloaded: the report came over its Socket.IO connection.
    item = console.locator(f"[data-testid=threat-item][data-report-id='{report_id}']")
    expect(item).to_have_attribute("data-status", "new")
    item.click()
    expect(console.get_by_test_id("threat-detail-body")).to_be_visible()
    expect(console.get_by_test_id("threat-description")).to_contain_text("stray dogs")
    expect(console.get_by_test_id("threat-photo")).to_have_count(1)
    expect(console.get_by_test_id("threat-facts")).to_contain_text("+7 700 000 00 00")
    change_status(console, "verifying", "", "Sent car 12 to look.")
    expect(item).to_have_attribute("data-status", "verifying")
    change_status(console, "confirmed", PUBLIC_NOTE, "Five dogs, two aggressive.")
    expect(item).to_have_attribute("data-status", "confirmed")
    expect(
        console.locator(f"[data-testid=threat-marker][data-report-id='{report_id}']")
    ).to_have_attribute("data-status", "confirmed")
    expect(console.get_by_test_id("threat-history-item")).to_have_count(3)
    console.get_by_test_id("threat-detail").evaluate("(detail) => detail.scrollTo(0, 0)")
    console.screenshot(path=str(artifacts / "console-threats-1920.png"))

    citizen.goto(follow_url)
    expect(citizen.get_by_test_id("follow-status")).to_have_attribute("data-status", "confirmed")
    expect(citizen.get_by_test_id("follow-status")).to_have_text("Confirmed")
    expect(citizen.get_by_test_id("follow-public-note")).to_have_text(PUBLIC_NOTE)
    expect(citizen.get_by_test_id("follow-history-item")).to_have_count(3)
    # The internal notes stay inside the police.
    expect(citizen.locator("body")).not_to_contain_text("car 12")

    open_map(citizen, base)
    marker = citizen.locator(f"[data-testid=map-report][data-report-id='{report_id}']")
    expect(marker).to_have_attribute("data-status", "confirmed")
    selector = f"[data-testid=map-report][data-report-id='{report_id}'] .threat-pin"
    colours = citizen.evaluate(STATUS_COLOURS_JS, [selector, "confirmed"])
    assert colours["shown"] == colours["wanted"], colours
    assert public_report(citizen, base, report_id)["public_note"] == PUBLIC_NOTE


def test_a_report_20_m_away_offers_the_first_and_me_too_counts(
    browser: Browser,
    threat_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    base = threat_server.base
    lat, lon = DUPLICATE_FIRST
    first_phone = new_phone(browser, page_errors, {"latitude": lat, "longitude": lon})
    second_phone = new_phone(
        browser,
        page_errors,
        {"latitude": lat + METRES_20_IN_DEGREES_LAT, "longitude": lon, "accuracy": 5},
    )
    try:
        first = first_phone.new_page()
        open_map(first, base)
        # A long unbroken word (a street corner, as people write them) in the first report: the
        # offer's "Me too" beside it must stay a button, not a column of letters.
        fill_report(
            first,
            "illegal_dumping",
            "Building rubble dumped behind the garages at Zhambyl-Furmanov-Kabanbay-Batyr.",
        )
        first.get_by_test_id("report-submit").tap()
        expect(first.get_by_test_id("report-follow-link")).to_be_visible()
        first_id = int(first.get_by_test_id("report-done").get_attribute("data-report-id") or "0")
        before = public_report(first, base, first_id)["confirmations"]

        second = second_phone.new_page()
        open_map(second, base)
        fill_report(second, "illegal_dumping", "Rubble and old tyres by the garages.")
        second.get_by_test_id("report-submit").tap()
        expect(second.get_by_test_id("nearby")).to_be_visible()
        offered = second.locator(f"[data-testid=nearby-item][data-report-id='{first_id}']")
        expect(offered).to_contain_text("Building rubble")
        me_too = offered.get_by_test_id("nearby-confirm")
        shape = me_too.evaluate(
            """(button) => ({
              height: button.offsetHeight,
              fits: button.scrollWidth <= button.clientWidth,
              width: document.documentElement.scrollWidth,
            })"""
        )
        assert shape["fits"] and shape["height"] <= 56, f"'Me too' wraps: {shape}"
        assert shape["width"] <= PHONE["width"], f"the page is {shape['width']} px wide"
        second.screenshot(path=str(artifacts / "map-360-nearby.png"))
        me_too.tap()
        expect(offered.get_by_test_id("nearby-confirmations")).to_have_attribute(
            "data-count", str(before + 1)
        )
        assert public_report(second, base, first_id)["confirmations"] == before + 1
        # Nothing new was stored: the same number of reports is on the map.
        expect(second.get_by_test_id("report-follow-link")).to_be_hidden()

        # "No, mine is new" still sends a report of its own.
        second.get_by_test_id("report-new-anyway").tap()
        expect(second.get_by_test_id("report-follow-link")).to_be_visible()
        second_id = int(second.get_by_test_id("report-done").get_attribute("data-report-id") or "0")
        assert second_id != first_id
    finally:
        first_phone.close()
        second_phone.close()


def test_an_officer_invites_the_author_to_a_video_call(
    phone: BrowserContext, console: Page, threat_server: RunningServer, artifacts: Path
) -> None:
    base = threat_server.base
    citizen = phone.new_page()
    sent = citizen.request.post(
        f"{base}/api/reports",
        multipart={
            "category": "begging",
            "lat": "43.2700",
            "lon": "76.9200",
            "description": "Children begging at the crossing all day.",
            "duplicate_ok": "1",
        },
    )
    assert sent.status == 201, sent.text()
    report_id, follow_url = sent.json()["id"], base + sent.json()["follow_url"]
    citizen.goto(follow_url)
    expect(citizen.get_by_test_id("follow-report")).to_be_visible()
    expect(citizen.get_by_test_id("follow-video-call")).to_have_count(0)

    item = console.locator(f"[data-testid=threat-item][data-report-id='{report_id}']")
    item.click()
    expect(console.get_by_test_id("threat-detail-body")).to_have_attribute(
        "data-report-id", str(report_id)
    )
    expect(console.get_by_test_id("threat-invited")).to_be_hidden()
    console.get_by_test_id("threat-invite").click()
    expect(console.get_by_test_id("threat-invited")).to_be_visible()
    expect(console.get_by_test_id("threat-history-item").last).to_contain_text("invited")

    citizen.reload()
    button = citizen.get_by_test_id("follow-video-call")
    expect(button).to_be_visible()
    expect(button).to_have_text("The police invite you to a video call")
    expect(button).to_have_attribute("href", f"/?report={report_id}&channel=police")
    assert citizen.request.get(f"{base}/api/reports/follow/{follow_url.rsplit('/', 1)[1]}").json()[
        "invited"
    ]
    citizen.screenshot(path=str(artifacts / "follow-360-invited.png"))
    button.tap()
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    expect(citizen.get_by_test_id("about-report")).to_have_text(f"About your report #{report_id}")
    expect(citizen.get_by_test_id("start-video-call")).to_be_visible()


def test_statistics_show_the_figures_with_tables(
    browser: Browser,
    threat_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    base = threat_server.base
    context = browser.new_context(viewport=STATS_SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    context.on("weberror", lambda error: page_errors.append(f"stats: {error.error}"))
    try:
        page = context.new_page()
        # At least one report, whatever ran before.
        created = page.request.post(
            f"{base}/api/reports",
            multipart={
                "category": "speeding",
                "lat": "43.2600",
                "lon": "76.9100",
                "description": "Cars race down the avenue at night.",
                "duplicate_ok": "1",
            },
        )
        assert created.status == 201, created.text()
        figures = page.request.get(f"{base}/api/stats").json()
        assert figures["total"] >= 1

        page.goto(f"{base}/stats")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("stats-total")).to_have_attribute(
            "data-value", str(figures["total"])
        )
        for section, key in (("category", "by_category"), ("status", "by_status")):
            rows = page.get_by_test_id(f"stats-table-{section}").locator("tbody tr")
            expect(rows).to_have_count(len(figures[key]))
            expect(page.get_by_test_id(f"stats-chart-{section}").locator("canvas")).to_be_visible()
        expect(page.get_by_test_id("stats-table-month").locator("tbody tr")).to_have_count(
            len(figures["by_month"])
        )
        # A share only from the minimum count; below it the count of confirmed reports.
        share = page.get_by_test_id("stats-confirmed-pct")
        if figures["total"] >= figures["min_reports_for_share"]:
            expect(share).to_have_attribute("data-share", "shown")
            expect(share).to_contain_text("%")
        else:
            expect(share).to_have_attribute("data-share", "too-few")
            expect(share).to_have_text(str(figures["confirmed"]))
            expect(page.get_by_test_id("stats-confirmed-label")).to_contain_text(
                str(figures["min_reports_for_share"])
            )
        # Areas: grid cells, the busiest first, each a row of the chart's text alternative.
        areas = page.get_by_test_id("stats-table-area").locator("tbody tr")
        expect(areas).to_have_count(len(figures["by_area"]))
        top = figures["by_area"][0]
        # Named by the district that holds its reports; a cell outside it by its centre.
        assert figures["areas_named"] is True
        assert "Medeu district" in [area["area"] for area in figures["by_area"]]
        expect(areas.first.locator("th")).to_have_text(
            top["area"] if top["named"] else f"{top['lat']:.3f}, {top['lon']:.3f}"
        )
        expect(page.locator("#stats-area-hint")).to_contain_text("district")
        expect(page.get_by_test_id("stats-table-area").locator("thead th").first).to_have_text(
            "Area"
        )
        expect(areas.first.locator("td")).to_have_text(str(top["count"]))
        expect(page.get_by_test_id("stats-chart-area").locator("canvas")).to_be_visible()
        expect(page.get_by_test_id("stats-heat-map")).to_have_attribute(
            "data-points", str(len(figures["heat"]))
        )
        expect(page.get_by_test_id("export-csv")).to_have_attribute("href", "/api/reports.csv")
        expect(page.get_by_test_id("export-geojson")).to_have_attribute("href", "/api/reports")
        page.screenshot(path=str(artifacts / "stats-1280.png"), full_page=True)
    finally:
        context.close()
