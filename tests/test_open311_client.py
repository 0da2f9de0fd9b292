"""An existing civic client library reads our Open311 GeoReport v2 endpoints.

georeport (PyPI) is a read-only client: it has no call to create a request, so the request is
posted over plain HTTP as the GeoReport v2 spec describes, then read back through the library.
"""

from __future__ import annotations

import asyncio

from georeport import GeoReport

from tests.staff import Client

WARSAW = (52.2297, 21.0122)


async def test_georeport_reads_back_a_posted_request(client: Client) -> None:
    posted = await client.post(
        "/open311/v2/requests.json",
        data={
            "service_code": "illegal_dumping",
            "lat": str(WARSAW[0]),
            "long": str(WARSAW[1]),
            "description": "Old fridges dumped by the river",
        },
    )
    assert posted.status == 201, await posted.text()
    [receipt] = await posted.json()
    request_id = str(receipt["service_request_id"])

    library = GeoReport(str(client.make_url("/open311/v2")))
    services = await asyncio.to_thread(library.get_service_list)
    codes = {service["service_code"] for service in services}
    assert {"illegal_dumping", "vandalism", "begging"} <= codes
    assert len(codes) == 24

    listed = await asyncio.to_thread(library.get_service_requests, service_code="illegal_dumping")
    assert [str(r["service_request_id"]) for r in listed] == [request_id]
    one = await asyncio.to_thread(library.get_service_request, request_id)
    assert one["service_code"] == "illegal_dumping"
    assert one["description"] == "Old fridges dumped by the river"
    assert one["status"] == "open"
    assert abs(float(one["lat"]) - WARSAW[0]) < 1e-6
    assert abs(float(one["long"]) - WARSAW[1]) < 1e-6
    closed = await asyncio.to_thread(library.get_service_requests, status="closed")
    assert closed == []
