"""Open311 GeoReport v2 in XML, read as FixMyStreet's client reads it (``xml.etree``, element
by element): discovery, services, a post, the request, its updates (FixMyStreet's
``servicerequestupdates``), comma lists of statuses, the 90-day default window, and the spec's
error body; a partner app posting with the API key an admin issued (its address kept), and
refused once the key is revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from aiohttp import ClientResponse

from config import Settings
from server.core.clock import FrozenClock
from tests.partners import admin_desk, issue_key, revoke_key
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
        (
            await client.post(
                f"{API}/requests.xml",
                data={"service_code": "vandalism", "address_string": "Plac Defilad 1"},
            ),
            400,
            "point_required",
        ),
        (
            await client.post(
                f"{API}/requests.xml",
                data={"service_code": "vandalism", "lat": "52.2", "long": "21", "api_key": "x"},
            ),
            403,
            "invalid_api_key",
        ),
        (await client.get(f"{API}/requests/999.xml"), 404, "report_not_found"),
        (await client.get(f"{API}/servicerequestupdates.xml?start_date=x"), 400, "invalid_date"),
    ]:
        errors = await _xml(response, status)
        assert errors.tag == "errors"
        [error] = errors.iter("error")
        assert _text(error, "code") == str(status)
        assert _text(error, "description").startswith(f"{code}: ")
    assert await report_count(client) == 0


@pytest.fixture
async def admin(client: Client, clock: FrozenClock) -> AsyncIterator[tuple[Client, str]]:
    browser, csrf = await admin_desk(client, clock)
    yield browser, csrf
    await browser.close()


async def test_a_partner_app_posts_with_its_key_and_follows_its_request_in_xml(
    client: Client,
    admin: tuple[Client, str],
    operator_desk: tuple[Client, str],
) -> None:
    """What a FixMyStreet set up with our endpoint and a key does: post with ``api_key`` and
    ``address_string``, read the request back (the address in it), poll the updates; once the
    centre revokes the key, its post is the spec's XML error with 403."""
    browser, csrf = admin
    officer, officer_csrf = operator_desk
    issued = await issue_key(browser, csrf, "City FixMyStreet", 5)
    secret = issued["api_key"]
    services = await _xml(await client.get(f"{API}/services.xml"))  # no key needed to read
    assert "illegal_dumping" in {_text(s, "service_code") for s in services.iter("service")}

    receipt = await _xml(
        await client.post(
            f"{API}/requests.xml",
            data={
                "api_key": secret,
                "service_code": "illegal_dumping",
                "lat": str(HERE[0]),
                "long": str(HERE[1]),
                "address_string": "Plac Defilad 1, Warszawa",
                "description": "Fridges left by the bins",
                "email": "resident@example.pl",
            },
        ),
        201,
    )
    [posted] = receipt.iter("request")
    request_id = _text(posted, "service_request_id")
    assert "/reports/follow/" in _text(posted, "service_notice")

    [one] = (await _xml(await client.get(f"{API}/requests/{request_id}.xml"))).iter("request")
    assert _text(one, "address") == "Plac Defilad 1, Warszawa"
    assert _text(one, "service_code") == "illegal_dumping"
    assert _text(one, "status") == "open"
    assert (float(_text(one, "lat")), float(_text(one, "long"))) == HERE
    assert "resident@example.pl" not in ElementTree.tostring(one).decode()
    listed = await _xml(await client.get(f"{API}/requests.xml?service_request_id={request_id}"))
    assert [_text(r, "address") for r in listed.iter("request")] == ["Plac Defilad 1, Warszawa"]

    for status, note in (("verifying", ""), ("confirmed", "Collection booked for Monday")):
        changed = await officer.post(
            f"/api/staff/reports/{request_id}/status",
            json={"status": status, "public_note": note},
            headers={"X-CSRF-Token": officer_csrf},
        )
        assert changed.status == 200, await changed.text()
    updates = await _xml(await client.get(f"{API}/servicerequestupdates.xml"))
    assert [
        (_text(u, "service_request_id"), _text(u, "status"), _text(u, "description"))
        for u in updates.iter("request_update")
    ] == [(request_id, "open", ""), (request_id, "open", "Collection booked for Monday")]

    await revoke_key(browser, csrf, issued["key"]["id"], "The city moved to another system")
    errors = await _xml(
        await client.post(
            f"{API}/requests.xml",
            data={
                "api_key": secret,
                "service_code": "illegal_dumping",
                "lat": str(HERE[0]),
                "long": str(HERE[1]),
            },
        ),
        403,
    )
    assert errors.tag == "errors"
    [error] = errors.iter("error")
    assert _text(error, "code") == "403"
    assert _text(error, "description").startswith("invalid_api_key: ")
    assert await report_count(client) == 1
    # Reading stays open after the revocation.
    [still] = (await _xml(await client.get(f"{API}/requests/{request_id}.xml"))).iter("request")
    assert _text(still, "status") == "open"
