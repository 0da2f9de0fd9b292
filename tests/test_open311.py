"""Open311 GeoReport v2 (JSON) through the real server: services, post, read back, filters,
statuses, and the spec's error body."""

from __future__ import annotations

import pytest
from aiohttp import ClientResponse

from config import Settings
from server.actions.threats.categories import DEFAULT_CATEGORY_CODES
from tests.staff import Client
from tests.threats import HERE, TEST_AREA, report_count


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"REPORT_RATE_LIMIT": "1000/day", "REPORT_AREA": TEST_AREA})


async def test_services_are_the_categories_with_english_names(client: Client) -> None:
    response = await client.get("/open311/v2/services.json")
    assert response.status == 200
    services = await response.json()
    assert [s["service_code"] for s in services] == list(DEFAULT_CATEGORY_CODES)
    names = {s["service_code"]: s["service_name"] for s in services}
    assert names["vandalism"] == "Vandalism"
    assert names["stray_dogs"] == "Stray dogs"
    assert all(s["type"] == "realtime" and s["metadata"] is False for s in services)


async def test_post_read_back_and_follow_the_status(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    posted = await client.post(
        "/open311/v2/requests.json",
        data={
            "service_code": "illegal_dumping",
            "lat": str(HERE[0]),
            "long": str(HERE[1]),
            "description": "Tyres dumped in the park",
            "email": "anna@example.pl",
        },
    )
    assert posted.status == 201, await posted.text()
    [receipt] = await posted.json()
    request_id = receipt["service_request_id"]
    assert "/reports/follow/" in receipt["service_notice"]

    [one] = await (await client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert one["service_code"] == "illegal_dumping"
    assert one["service_name"] == "Illegal dumping"
    assert one["status"] == "open" and one["status_notes"] == ""
    assert (one["lat"], one["long"]) == HERE
    assert one["description"] == "Tyres dumped in the park"
    assert "anna@example.pl" not in str(one)

    # JSON is accepted too.
    as_json = await client.post(
        "/open311/v2/requests.json",
        json={"service_code": "speeding", "lat": 52.0, "long": 21.0, "description": "Racers"},
    )
    assert as_json.status == 201, await as_json.text()

    for status, note in (("verifying", ""), ("confirmed", ""), ("eliminated", "Cleaned up")):
        changed = await officer.post(
            f"/api/staff/reports/{request_id}/status",
            json={"status": status, "public_note": note},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.status == 200, await changed.text()
    [closed] = await (await client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert closed["status"] == "closed" and closed["status_notes"] == "Cleaned up"

    everything = await (await client.get("/open311/v2/requests.json")).json()
    assert len(everything) == 2
    only_closed = await (await client.get("/open311/v2/requests.json?status=closed")).json()
    assert [r["service_request_id"] for r in only_closed] == [request_id]
    only_open = await (await client.get("/open311/v2/requests.json?status=open")).json()
    assert [r["service_code"] for r in only_open] == ["speeding"]
    by_code = await (
        await client.get("/open311/v2/requests.json?service_code=illegal_dumping")
    ).json()
    assert [r["service_request_id"] for r in by_code] == [request_id]
    future = await (
        await client.get("/open311/v2/requests.json?start_date=2999-01-01T00:00:00Z")
    ).json()
    assert future == []
    by_ids = await (
        await client.get(f"/open311/v2/requests.json?service_request_id={request_id}")
    ).json()
    assert len(by_ids) == 1


async def refused(response: ClientResponse, status: int, code: str) -> None:
    """The spec's error body: a list of {code, description}, Lifeline's code leading."""
    text = await response.text()
    assert response.status == status, text
    [error] = await response.json()
    assert error["code"] == status and error["description"].startswith(f"{code}: "), text


async def test_open311_bad_input_changes_nothing(client: Client) -> None:
    url = "/open311/v2/requests.json"
    base = {"service_code": "vandalism", "lat": str(HERE[0]), "long": str(HERE[1])}
    await refused(
        await client.post(url, data={**base, "service_code": "ufo"}), 422, "unknown_category"
    )
    await refused(
        await client.post(url, data={"service_code": "vandalism", "address_string": "Main St 1"}),
        400,
        "point_required",
    )
    await refused(await client.post(url, data={**base, "lat": "95"}), 422, "invalid_point")
    await refused(
        await client.post(url, data={**base, "lat": "40.7", "long": "-74"}), 422, "outside_area"
    )
    await refused(
        await client.post(url, data={**base, "description": "d" * 501}), 422, "description_too_long"
    )
    await refused(
        await client.post(url, data=b"x", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    await refused(await client.get("/open311/v2/requests.json?status=maybe"), 422, "invalid_status")
    await refused(
        await client.get("/open311/v2/requests.json?status=open,maybe"), 422, "invalid_status"
    )
    await refused(
        await client.get("/open311/v2/requests.json?start_date=soon"), 400, "invalid_date"
    )
    await refused(await client.get("/open311/v2/requests/999.json"), 404, "report_not_found")
    assert await report_count(client) == 0
