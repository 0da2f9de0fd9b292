"""Confirmed threats as CAP 1.2 alerts in an Atom feed (issue 18, item 5): two confirmed reports
come back, read by a CAP 1.2 parser from PyPI (capparser) and checked for every element CAP 1.2
requires (OASIS CAP-v1.2, section 3.2: alert, info, area) with the values its enumerations
allow; nothing unconfirmed, unpublished or private goes out.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

import capparser
import pytest

from config import Settings
from server.core.clock import FrozenClock
from tests.staff import Client
from tests.threats import TEST_AREA, created, post_report

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
# CAP-v1.2 section 3.2.1 and 3.2.2: what every alert and every info block must carry, and the
# values allowed where the standard lists them.
ALERT_REQUIRED = ("identifier", "sender", "sent", "status", "msgType", "scope")
INFO_REQUIRED = ("category", "event", "urgency", "severity", "certainty")
ALLOWED = {
    "status": {"Actual", "Exercise", "System", "Test", "Draft"},
    "msgType": {"Alert", "Update", "Cancel", "Ack", "Error"},
    "scope": {"Public", "Restricted", "Private"},
    "category": {
        "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
        "Infra", "CBRNE", "Other",
    },
    "responseType": {
        "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear",
        "None",
    },
    "urgency": {"Immediate", "Expected", "Future", "Past", "Unknown"},
    "severity": {"Extreme", "Severe", "Moderate", "Minor", "Unknown"},
    "certainty": {"Observed", "Likely", "Possible", "Unlikely", "Unknown"},
}  # fmt: skip
# Section 3.3.2: seconds and an explicit offset; no "Z".
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
# Section 3.2.1: no spaces, commas, "<" or "&" in an identifier or a sender.
CAP_ID = re.compile(r"^[^\s,<&]+$")
CIRCLE = re.compile(r"^-?\d+(\.\d+)?,-?\d+(\.\d+)? \d+(\.\d+)?$")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"REPORT_RATE_LIMIT": "1000/day", "REPORT_AREA": TEST_AREA})


async def _status(officer: Client, csrf: str, report_id: int, status: str, **notes: str) -> None:
    response = await officer.post(
        f"/api/staff/reports/{report_id}/status",
        json={"status": status, **notes},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 200, await response.text()


def check_cap(alert: ElementTree.Element) -> dict[str, Any]:
    """Every required element present and in its allowed values; returns what a reader sees."""
    assert alert.tag == f"{CAP}alert"
    values = {name: alert.findtext(f"{CAP}{name}") for name in ALERT_REQUIRED}
    assert all(values.values()), values
    assert CAP_ID.match(values["identifier"] or ""), values
    assert CAP_ID.match(values["sender"] or ""), values
    assert CAP_TIME.match(values["sent"] or ""), values
    for name in ("status", "msgType", "scope"):
        assert values[name] in ALLOWED[name], (name, values[name])
    infos = alert.findall(f"{CAP}info")
    assert infos, "an alert with no info"
    for info in infos:
        for name in INFO_REQUIRED:
            text = info.findtext(f"{CAP}{name}")
            assert text, name
            if name in ALLOWED:
                assert text in ALLOWED[name], (name, text)
        for response_type in info.findall(f"{CAP}responseType"):
            assert response_type.text in ALLOWED["responseType"]
        assert CAP_TIME.match(info.findtext(f"{CAP}effective") or "")
        for area in info.findall(f"{CAP}area"):
            assert area.findtext(f"{CAP}areaDesc")
            for circle in area.findall(f"{CAP}circle"):
                assert CIRCLE.match(circle.text or ""), circle.text
    first = infos[0]
    return {
        **values,
        "language": first.findtext(f"{CAP}language"),
        "event": first.findtext(f"{CAP}event"),
        "description": first.findtext(f"{CAP}description"),
        "circle": first.findtext(f"{CAP}area/{CAP}circle"),
        "report": first.findtext(f"{CAP}parameter/{CAP}value"),
    }


async def test_two_confirmed_reports_come_out_as_cap_alerts_in_the_feed(
    client: Client, operator_desk: tuple[Client, str], clock: FrozenClock
) -> None:
    officer, csrf = operator_desk
    first = await created(
        await post_report(client, lat=52.2297, lon=21.0122, description="Broken street light")
    )
    clock.advance(60)
    second = await created(
        await post_report(
            client,
            lat=52.2400,
            lon=21.0300,
            category="drug_use",
            description="Dealing at the stairs",
            contact="+48 600 000 000",
            duplicate_ok="1",
        )
    )
    waiting = await created(await post_report(client, lat=52.25, lon=21.05, duplicate_ok="1"))
    for report, note in ((first, "A patrol saw it"), (second, "Confirmed by the precinct")):
        clock.advance(60)
        await _status(officer, csrf, report["id"], "verifying")
        await _status(officer, csrf, report["id"], "confirmed", public_note=note)
    await _status(officer, csrf, waiting["id"], "verifying")

    response = await client.get("/api/alerts.atom?lang=pl")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/atom+xml"
    body = await response.read()
    feed = ElementTree.fromstring(body)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert feed.findtext(f"{ATOM}{name}"), name
    assert feed.findtext(f"{ATOM}title") == "Potwierdzone zagrożenia"
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 2  # the report still being verified is not an alert
    read = []
    for entry in entries:
        [alert] = entry.find(f"{ATOM}content") or []
        read.append(check_cap(alert))
        link = entry.find(f"{ATOM}link[@rel='alternate']")
        assert link is not None and link.get("type") == "application/cap+xml"
        # The alert alone, at its own address, is the same alert.
        alone = await client.get(str(link.get("href")).split("://", 1)[1].split("/", 1)[1])
        assert alone.status == 200 and alone.content_type == "application/cap+xml"
        assert check_cap(ElementTree.fromstring(await alone.read())) == read[-1]
        # And a CAP parser from PyPI reads it back with the same required values.
        parsed = capparser.parse(stringXML=ElementTree.tostring(alert, encoding="unicode"))
        assert parsed.getIdentifier() == read[-1]["identifier"]
        assert parsed.getSender() == read[-1]["sender"]
        assert parsed.getSent() == read[-1]["sent"]
        assert [str(s) for s in (parsed.status[0], parsed.msgType[0], parsed.scope[0])] == [
            read[-1]["status"],
            read[-1]["msgType"],
            read[-1]["scope"],
        ]
        [info] = parsed.info[0]
        assert info.event[0] == read[-1]["event"]

    newest, older = read  # the last confirmed first
    assert [newest["report"], older["report"]] == [str(second["id"]), str(first["id"])]
    assert newest["language"] == "pl"
    assert newest["description"] == "Dealing at the stairs\n\nConfirmed by the precinct"
    assert older["circle"] == "52.229700,21.012200 0.05"
    assert "+48 600" not in body.decode()  # the contact never goes out
    assert newest["identifier"] != older["identifier"]


async def test_what_is_not_confirmed_has_no_alert_and_bad_queries_are_refused(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    report = await created(await post_report(client))
    missing = await client.get(f"/api/alerts/{report['id']}.cap")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "report_not_found"
    await _status(officer, csrf, report["id"], "verifying")
    await _status(officer, csrf, report["id"], "not_confirmed")
    assert (await client.get(f"/api/alerts/{report['id']}.cap")).status == 404
    empty = ElementTree.fromstring(await (await client.get("/api/alerts.atom")).read())
    assert empty.findall(f"{ATOM}entry") == []
    for query in ("limit=0", "limit=501", "limit=x", "lang=xx"):
        refused = await client.get(f"/api/alerts.atom?{query}")
        assert refused.status in (400, 422), query
        assert (await refused.json())["error"]["code"] in {"invalid_page", "invalid"}
