"""Open311 GeoReport v2 in XML, read as FixMyStreet's client reads it (``xml.etree``, element
by element): discovery, services, a post, the request, its updates (FixMyStreet's
``servicerequestupdates``), comma lists of statuses, the 90-day default window, and the spec's
error body."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from aiohttp import ClientResponse

from config import Settings
from server.core.clock import FrozenClock
from tests.staff import Client
from tests.threats import HERE, TEST_AREA, report_count

API = "/open311/v2"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"REPORT_RATE_LIMIT": "1000/day", "REPORT_AREA": TEST_AREA})


async def _xml(response: ClientResponse, status: int = 200) -> ElementTree.Element:
    body = await response.read()
    assert response.status == status, body
    assert response.content_type == "text/xml"
    assert body.startswith(b"<?xml")
    return ElementTree.fromstring(body)


def _text(element: ElementTree.Element, name: str) -> str:
    found = element.find(name)
    assert found is not None, (name, ElementTree.tostring(element))
    return found.text or ""


async def test_an_xml_client_discovers_posts_and_follows_a_request(
    client: Client, operator_desk: tuple[Client, str], clock: FrozenClock
) -> None:
    officer, csrf = operator_desk
    discovery = await _xml(await client.get("/open311/discovery.xml"))
    endpoint = discovery.find("endpoints/endpoint")
    assert endpoint is not None
    assert _text(endpoint, "url").endswith(API)
    assert [f.text for f in endpoint.findall("formats/format")] == ["text/xml", "application/json"]
    assert _text(endpoint, "specification") == "http://wiki.open311.org/GeoReport_v2"

    services = await _xml(await client.get(f"{API}/services.xml"))
    assert services.tag == "services"
    names = {_text(s, "service_code"): _text(s, "service_name") for s in services.iter("service")}
    assert names["stray_dogs"] == "Stray dogs" and len(names) == 24
    assert {_text(s, "metadata") for s in services.iter("service")} == {"false"}

    receipt = await _xml(
        await client.post(
            f"{API}/requests.xml",
            data={
                "service_code": "vandalism",
                "lat": str(HERE[0]),
                "long": str(HERE[1]),
                "description": "Bus stop glass smashed",
                "email": "jan@example.pl",
            },
        ),
        201,
    )
    assert receipt.tag == "service_requests"
    request_id = _text(receipt.find("request"), "service_request_id")  # type: ignore[arg-type]
    assert request_id.isdigit()

    [one] = (await _xml(await client.get(f"{API}/requests/{request_id}.xml"))).iter("request")
    assert _text(one, "service_code") == "vandalism"
    assert _text(one, "status") == "open"
    assert (float(_text(one, "lat")), float(_text(one, "long"))) == HERE
    assert _text(one, "expected_datetime") == ""  # null is an empty element
    assert "jan@example.pl" not in ElementTree.tostring(one).decode()

    for status, note in (("verifying", ""), ("confirmed", "A patrol saw it"), ("eliminated", "")):
        changed = await officer.post(
            f"/api/staff/reports/{request_id}/status",
            json={"status": status, "public_note": note},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.status == 200, await changed.text()
    updates = await _xml(await client.get(f"{API}/servicerequestupdates.xml"))
    assert updates.tag == "service_request_updates"
    rows = [
        (_text(u, "service_request_id"), _text(u, "status"), _text(u, "description"))
        for u in updates.iter("request_update")
    ]
    assert rows == [
        (request_id, "open", ""),
        (request_id, "open", "A patrol saw it"),
        (request_id, "closed", ""),
    ]
    assert len({_text(u, "update_id") for u in updates.iter("request_update")}) == 3

    both = await _xml(await client.get(f"{API}/requests.xml?status=open,closed"))
    assert [_text(r, "service_request_id") for r in both.iter("request")] == [request_id]
    closed = await _xml(await client.get(f"{API}/requests.xml?status=closed"))
    assert len(list(closed.iter("request"))) == 1

    # 91 days on: outside the default window of the list and of the updates, found when
    # asked for with a start date or by its id.
    clock.advance(timedelta(days=91).total_seconds())
    assert list((await _xml(await client.get(f"{API}/requests.xml"))).iter("request")) == []
    assert (
        list(
            (await _xml(await client.get(f"{API}/servicerequestupdates.xml"))).iter(
                "request_update"
            )
        )
        == []
    )
    since = await _xml(await client.get(f"{API}/requests.xml?start_date=2000-01-01T00:00:00Z"))
    assert len(list(since.iter("request"))) == 1
    by_id = await _xml(await client.get(f"{API}/requests.xml?service_request_id={request_id}"))
    assert len(list(by_id.iter("request"))) == 1


async def test_errors_come_in_the_specs_xml_body(client: Client) -> None:
    for response, status, code in [
        (
            await client.post(
                f"{API}/requests.xml",
                data={"service_code": "ufo", "lat": str(HERE[0]), "long": str(HERE[1])},
            ),
            422,
            "unknown_category",
        ),
        (await client.get(f"{API}/requests.xml?status=maybe"), 422, "invalid_status"),
        (await client.get(f"{API}/requests/999.xml"), 404, "report_not_found"),
        (await client.get(f"{API}/servicerequestupdates.xml?start_date=x"), 400, "invalid_date"),
    ]:
        errors = await _xml(response, status)
        assert errors.tag == "errors"
        [error] = errors.iter("error")
        assert _text(error, "code") == str(status)
        assert _text(error, "description").startswith(f"{code}: ")
    assert await report_count(client) == 0
