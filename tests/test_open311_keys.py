"""Open311 partners' API keys through the real server: an admin issues, lists and revokes them
(each an audit entry naming who and why); a post with a key is counted against the key's own
daily limit instead of the per-address REPORT_RATE_LIMIT, and staff see which partner sent
it; an unknown or revoked key is the spec's error with 403; ``address_string`` is kept beside
the point, and refused without one."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse
from sqlmodel import select

from server.actions.threats.open311_keys import list_keys
from server.core.clock import FrozenClock
from server.db.models import Open311Key, ThreatReport
from tests.partners import KEYS, admin_desk, issue_key, key_audit, revoke_key
from tests.staff import Client, services_of
from tests.threats import HERE, report_count

POST = "/open311/v2/requests.json"


@pytest.fixture
async def admin(client: Client, clock: FrozenClock) -> AsyncIterator[tuple[Client, str]]:
    browser, csrf = await admin_desk(client, clock)
    yield browser, csrf
    await browser.close()


def report_at(**extra: str) -> dict[str, str]:
    return {
        "service_code": "vandalism",
        "lat": str(HERE[0]),
        "long": str(HERE[1]),
        "description": "Graffiti on the tram shelter",
        **extra,
    }


async def georeport_error(response: ClientResponse, status: int, code: str) -> str:
    """The spec's error body, Lifeline's code leading the description; the description."""
    text = await response.text()
    assert response.status == status, text
    [error] = await response.json()
    assert error["code"] == status and error["description"].startswith(f"{code}: "), text
    description: str = error["description"]
    return description


async def listed(admin: Client) -> list[dict[str, Any]]:
    response = await admin.get(KEYS)
    assert response.status == 200, await response.text()
    keys: list[dict[str, Any]] = (await response.json())["keys"]
    return keys


async def test_an_admin_issues_lists_and_revokes_keys_each_audited(
    client: Client, admin: tuple[Client, str], operator_desk: tuple[Client, str]
) -> None:
    browser, csrf = admin
    issued = await issue_key(browser, csrf, "City FixMyStreet", 40, "Pilot agreed with the city")
    secret = issued["api_key"]
    key = issued["key"]
    assert len(secret) >= 40
    assert key["partner"] == "City FixMyStreet" and key["daily_limit"] == 40
    assert key["created_by"] == "ada" and key["revoked"] is False

    # Stored only as its hash; no answer shows it again.
    async with services_of(client).db.session() as session:
        [row] = (await session.exec(select(Open311Key))).all()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row.model_dump())
    listing = await (await browser.get(KEYS)).text()
    assert secret not in listing and row.secret_hash not in listing
    [shown] = await listed(browser)
    assert shown["partner"] == "City FixMyStreet" and shown["created_by"] == "ada"
    assert shown["created_at"] and shown["last_used_at"] is None and shown["reports_today"] == 0

    # A reason is required, and each refusal changes nothing.
    for body, code in (
        ({"partner": "X", "daily_limit": 5, "reason": " "}, "reason_required"),
        ({"partner": " ", "daily_limit": 5, "reason": "why"}, "invalid_partner"),
        ({"partner": "X", "daily_limit": 0, "reason": "why"}, "invalid_daily_limit"),
        ({"partner": "X", "daily_limit": "5", "reason": "why"}, "invalid"),
    ):
        response = await browser.post(KEYS, json=body, headers={"X-CSRF-Token": csrf})
        assert response.status in (400, 422), await response.text()
        assert (await response.json())["error"]["code"] == code
    no_csrf = await browser.post(KEYS, json={"partner": "X", "daily_limit": 5, "reason": "why"})
    assert (await no_csrf.json())["error"]["code"] == "csrf_failed"
    officer, officer_csrf = operator_desk
    forbidden = await officer.post(
        KEYS,
        json={"partner": "X", "daily_limit": 5, "reason": "why"},
        headers={"X-CSRF-Token": officer_csrf},
    )
    assert forbidden.status == 403
    assert (await officer.get(KEYS)).status == 403
    assert len(await listed(browser)) == 1

    revoked = await revoke_key(browser, csrf, key["id"], "The pilot ended")
    assert revoked["key"]["revoked"] is True and revoked["key"]["revoked_by"] == "ada"
    assert revoked["key"]["revoke_reason"] == "The pilot ended"
    again = await browser.delete(
        f"{KEYS}/{key['id']}", json={"reason": "twice"}, headers={"X-CSRF-Token": csrf}
    )
    assert again.status == 409 and (await again.json())["error"]["code"] == "api_key_revoked"
    for missing in ("999", "abc"):
        unknown = await browser.delete(
            f"{KEYS}/{missing}", json={"reason": "x"}, headers={"X-CSRF-Token": csrf}
        )
        assert unknown.status == 404, await unknown.text()
        assert (await unknown.json())["error"]["code"] == "api_key_not_found"
    no_reason = await browser.delete(
        f"{KEYS}/{key['id']}", json={"reason": ""}, headers={"X-CSRF-Token": csrf}
    )
    assert (await no_reason.json())["error"]["code"] == "reason_required"

    assert await key_audit(client, key["id"]) == [
        {
            "actor": "ada",
            "action": "open311_key_issued",
            "data": {
                "partner": "City FixMyStreet",
                "daily_limit": 40,
                "reason": "Pilot agreed with the city",
            },
        },
        {
            "actor": "ada",
            "action": "open311_key_revoked",
            "data": {"partner": "City FixMyStreet", "reason": "The pilot ended"},
        },
    ]
    report = await services_of(client).audit.verify()
    assert report.ok, report.broken


async def test_a_partners_posts_count_against_its_key_not_its_address(
    client: Client,
    admin: tuple[Client, str],
    operator_desk: tuple[Client, str],
    clock: FrozenClock,
) -> None:
    """REPORT_RATE_LIMIT is its default, one a day per address: twenty posts from the
    partner's one address pass with its key (limit 20), the 21st is refused; the address's
    own public report is untouched by them."""
    browser, csrf = admin
    issued = await issue_key(browser, csrf, "City FixMyStreet", 20)
    secret = issued["api_key"]
    ids = []
    for n in range(20):
        response = await client.post(
            POST, data=report_at(api_key=secret, description=f"Report {n} from the city app")
        )
        assert response.status == 201, (n, await response.text())
        ids.append((await response.json())[0]["service_request_id"])
    over = await client.post(POST, data=report_at(api_key=secret))
    await georeport_error(over, 429, "rate_limited")
    assert over.headers["Retry-After"] == str(24 * 3600)
    assert await report_count(client) == 20

    # Without the key the same address has its one public report of the day, and no more.
    public = await client.post(POST, data=report_at())
    assert public.status == 201, await public.text()
    await georeport_error(await client.post(POST, data=report_at()), 429, "rate_limited")

    [shown] = await listed(browser)
    assert shown["reports_today"] == 20
    assert shown["last_used_at"] == clock.now().isoformat()

    # Staff see which partner sent it; a public report names none.
    officer, _csrf = operator_desk
    seen = await (await officer.get(f"/api/staff/reports/{ids[0]}")).json()
    assert seen["partner"] == "City FixMyStreet" and seen["source"] == "open311"
    public_id = (await public.json())[0]["service_request_id"]
    assert (await (await officer.get(f"/api/staff/reports/{public_id}")).json())["partner"] is None
    async with services_of(client).db.session() as session:
        keyed = (await session.exec(select(ThreatReport.open311_key_id))).all()
    assert sorted(keyed, key=lambda k: k or 0) == [None] + [issued["key"]["id"]] * 20

    # A day later the key has its room again (the admin's session has ended by then: the
    # count is read as the list reads it).
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    again = await client.post(POST, data=report_at(api_key=secret))
    assert again.status == 201, await again.text()
    [listing] = await list_keys(services_of(client))
    assert listing.reports_today == 1


async def test_an_unknown_or_revoked_key_is_refused_with_403(
    client: Client, admin: tuple[Client, str]
) -> None:
    browser, csrf = admin
    await georeport_error(
        await client.post(POST, data=report_at(api_key="not-a-key-of-ours")), 403, "invalid_api_key"
    )
    await georeport_error(
        await client.post(POST, json={**report_at(), "api_key": "x" * 5000}), 403, "invalid_api_key"
    )
    issued = await issue_key(browser, csrf)
    first = await client.post(POST, data=report_at(api_key=issued["api_key"]))
    assert first.status == 201, await first.text()
    await revoke_key(browser, csrf, issued["key"]["id"], "The partner's server was breached")
    description = await georeport_error(
        await client.post(POST, data=report_at(api_key=issued["api_key"])), 403, "invalid_api_key"
    )
    assert "unknown or revoked" in description
    assert await report_count(client) == 1
    # An empty api_key is none: the public post, under the per-address limit.
    empty = await client.post(POST, data=report_at(api_key=""))
    assert empty.status == 201, await empty.text()
    # Reading needs no key, and a key given to a read is not looked at.
    assert (await client.get("/open311/v2/requests.json?api_key=whatever")).status == 200


async def test_an_address_is_kept_beside_the_point_and_refused_without_one(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    posted = await client.post(
        POST, data=report_at(address_string="ul. Marszałkowska 10, Warszawa")
    )
    assert posted.status == 201, await posted.text()
    request_id = (await posted.json())[0]["service_request_id"]
    [one] = await (await client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert one["address"] == "ul. Marszałkowska 10, Warszawa"
    assert (one["lat"], one["long"]) == HERE  # the point is what locates it
    officer, csrf = operator_desk
    seen = await (await officer.get(f"/api/staff/reports/{request_id}")).json()
    assert seen["address"] == "ul. Marszałkowska 10, Warszawa"

    # A sensitive report's address would give away the point the public map rounds.
    changed = await officer.post(
        f"/api/staff/reports/{request_id}/status",
        json={"status": "verifying", "sensitive": True},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status == 200, await changed.text()
    [hidden] = await (await client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert hidden["address"] == ""
    assert (await (await officer.get(f"/api/staff/reports/{request_id}")).json())["address"]

    description = await georeport_error(
        await client.post(
            POST, data={"service_code": "vandalism", "address_string": "ul. Marszałkowska 10"}
        ),
        400,
        "point_required",
    )
    assert "by its point only" in description
    await georeport_error(
        await client.post(POST, data={"service_code": "vandalism", "address_id": "12345"}),
        400,
        "point_required",
    )
    await georeport_error(
        await client.post(POST, data=report_at(address_string="a" * 251)), 422, "address_too_long"
    )
    await georeport_error(
        await client.post(POST, data=report_at(address_string="Main St\x07")),
        422,
        "invalid_address",
    )
    assert await report_count(client) == 1
