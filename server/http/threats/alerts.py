"""Confirmed threats for warning systems: CAP 1.2 alerts, one per confirmed report, and an Atom
feed of them (the way Google Public Alerts and most national aggregators take CAP).

``GET /api/alerts.atom`` (``limit``, ``lang``) and ``GET /api/alerts/{id}.cap``. Times are as
CAP 1.2 (section 3.3.2) has them: seconds, an explicit offset, and UTC written ``-00:00``, never
``Z``. The XML is built with ElementTree; each document's namespace is its root's ``xmlns``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

from aiohttp import web

from server.actions.threats.alerts import ThreatAlert, confirmed_alert, confirmed_alerts
from server.core.errors import AppError, ErrorCode
from server.http.i18n import LANGUAGES
from server.http.keys import CATALOGS_KEY, SERVICES_KEY
from server.http.openapi import File, documented
from server.http.origin import site_base
from server.http.path_ids import ID
from server.http.threats.replies import AlertQuery, AlertsQuery

routes = web.RouteTableDef()

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_TYPE = "application/cap+xml"
ATOM_TYPE = "application/atom+xml"
# The CAP values every alert here carries: a confirmed local threat, not an emergency
# (KMZB's map is for what is not urgent; an emergency is a call to 102).
CAP_CATEGORY = "Security"
CAP_RESPONSE = "Monitor"
CAP_URGENCY = "Expected"
CAP_SEVERITY = "Minor"
CAP_CERTAINTY = "Observed"  # an officer verified it


def cap_time(moment: datetime) -> str:
    """2026-12-02T19:40:05-00:00: CAP's form of a UTC time."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def _atom_time(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _child(parent: ElementTree.Element, tag: str, text: str, **attrs: str) -> None:
    ElementTree.SubElement(parent, tag, attrs).text = text


def _sender(request: web.Request) -> str:
    """The originator CAP asks for, as a host name (no spaces, commas nor restricted signs)."""
    host = site_base(request).split("://", 1)[-1].split("/", 1)[0]
    return host.replace(",", "").replace(" ", "") or "lifeline"


def _identifier(request: web.Request, alert: ThreatAlert) -> str:
    return f"{_sender(request)}.report.{alert.report_id}.{alert.version}"


def _area(alert: ThreatAlert) -> str:
    return f"{alert.lat:.5f}, {alert.lon:.5f} ± {alert.radius_m} m"


def cap_alert(request: web.Request, alert: ThreatAlert, lang: str) -> ElementTree.Element:
    """One alert: the report at its public point, in ``lang``."""
    text = request.app[CATALOGS_KEY].gettext
    root = ElementTree.Element("alert", {"xmlns": CAP_NS})
    _child(root, "identifier", _identifier(request, alert))
    _child(root, "sender", _sender(request))
    _child(root, "sent", cap_time(alert.updated_at))
    _child(root, "status", "Actual")
    _child(root, "msgType", "Alert")
    _child(root, "scope", "Public")
    info = ElementTree.SubElement(root, "info")
    event = text(lang, f"category.{alert.category}")
    _child(info, "language", lang)
    _child(info, "category", CAP_CATEGORY)
    _child(info, "event", event)
    _child(info, "responseType", CAP_RESPONSE)
    _child(info, "urgency", CAP_URGENCY)
    _child(info, "severity", CAP_SEVERITY)
    _child(info, "certainty", CAP_CERTAINTY)
    _child(info, "effective", cap_time(alert.confirmed_at))
    _child(info, "senderName", text(lang, "alerts.sender_name"))
    _child(info, "headline", event)
    parts = [alert.description, alert.public_note or ""]
    _child(info, "description", "\n\n".join(p for p in parts if p) or event)
    _child(info, "web", f"{site_base(request)}/map?lang={lang}")
    parameter = ElementTree.SubElement(info, "parameter")
    _child(parameter, "valueName", "lifeline:report")
    _child(parameter, "value", str(alert.report_id))
    area = ElementTree.SubElement(info, "area")
    _child(area, "areaDesc", _area(alert))
    # WGS 84 "lat,lon radius", the radius in kilometres.
    _child(area, "circle", f"{alert.lat:.6f},{alert.lon:.6f} {alert.radius_m / 1000:g}")
    return root


def _lang(request: web.Request) -> str:
    asked = request.query.get("lang", "")
    if asked and asked not in LANGUAGES:
        raise AppError(ErrorCode.INVALID, f"lang: one of {', '.join(LANGUAGES)}")
    return asked or request.app[SERVICES_KEY].settings.DEFAULT_LANGUAGE


def _xml(root: ElementTree.Element, content_type: str) -> web.Response:
    body = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return web.Response(body=body, content_type=content_type, charset="utf-8")


@routes.get("/api/alerts.atom")
@documented(query=AlertsQuery, replies={200: File((ATOM_TYPE,))})
async def alerts_feed(request: web.Request) -> web.StreamResponse:
    lang = _lang(request)
    alerts = await confirmed_alerts(request.app[SERVICES_KEY], request.query)
    text = request.app[CATALOGS_KEY].gettext
    base = site_base(request)
    feed = ElementTree.Element("feed", {"xmlns": ATOM_NS, "xml:lang": lang})
    _child(feed, "id", f"{base}/api/alerts.atom")
    _child(feed, "title", text(lang, "alerts.feed_title"))
    newest = max((a.updated_at for a in alerts), default=None)
    _child(feed, "updated", _atom_time(newest or request.app[SERVICES_KEY].clock.now()))
    _child(feed, "link", "", rel="self", href=f"{base}/api/alerts.atom?lang={lang}")
    author = ElementTree.SubElement(feed, "author")
    _child(author, "name", text(lang, "alerts.sender_name"))
    for alert in alerts:
        entry = ElementTree.SubElement(feed, "entry")
        _child(entry, "id", f"urn:lifeline:{_identifier(request, alert)}")
        _child(entry, "title", f"{text(lang, f'category.{alert.category}')}: {_area(alert)}")
        _child(entry, "updated", _atom_time(alert.updated_at))
        _child(entry, "published", _atom_time(alert.confirmed_at))
        href = f"{base}/api/alerts/{alert.report_id}.cap?lang={lang}"
        _child(entry, "link", "", rel="alternate", type=CAP_TYPE, href=href)
        content = ElementTree.SubElement(entry, "content", {"type": CAP_TYPE})
        content.append(cap_alert(request, alert, lang))
    return _xml(feed, ATOM_TYPE)


@routes.get(r"/api/alerts/{report_id:" + ID + "}.cap")
@documented(query=AlertQuery, replies={200: File((CAP_TYPE,))})
async def one_alert(request: web.Request) -> web.StreamResponse:
    """The alert of one confirmed report; any other report is "no such alert"."""
    lang = _lang(request)
    report_id = int(request.match_info["report_id"])
    alert = await confirmed_alert(request.app[SERVICES_KEY], report_id)
    return _xml(cap_alert(request, alert, lang), CAP_TYPE)
