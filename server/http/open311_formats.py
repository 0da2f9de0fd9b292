"""GeoReport v2's two formats: every answer under ``/open311/`` as JSON or as XML (the
format is the path's suffix, as the spec has it), and refusals in the spec's own error body
(``[{"code", "description"}]``, ``<errors><error>``), the HTTP status kept and Lifeline's
machine code leading the description.

XML is what FixMyStreet and most Open311 clients read first: element names are the JSON keys,
a list is a root element holding one element per item, ``None`` an empty element.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

from aiohttp import web

from server.core.errors import AppError

FORMATS = "json|xml"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _element(name: str, value: Any) -> ElementTree.Element:
    element = ElementTree.Element(name)
    if isinstance(value, Mapping):
        for key, item in value.items():
            element.append(_element(str(key), item))
    elif isinstance(value, list | tuple):
        # A list inside an item (discovery's formats): one child per entry, named for it.
        singular = name[:-1] if name.endswith("s") else name
        for item in value:
            element.append(_element(singular, item))
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
    return element


def xml_document(root: str, item: str, items: Sequence[Mapping[str, Any]]) -> bytes:
    top = ElementTree.Element(root)
    for entry in items:
        top.append(_element(item, entry))
    return ElementTree.tostring(top, encoding="utf-8", xml_declaration=True)


def answer(
    request: web.Request,
    body: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    root: str,
    item: str,
    status: int = 200,
) -> web.Response:
    """The body in the format the path asks for: a list of items, or one object (discovery)."""
    if request.match_info.get("format") == "xml":
        if isinstance(body, Mapping):
            data = ElementTree.tostring(
                _element(root, body), encoding="utf-8", xml_declaration=True
            )
        else:
            data = xml_document(root, item, body)
        return web.Response(body=data, status=status, content_type="text/xml", charset="utf-8")
    return web.json_response(body, status=status)


def georeport(handler: Handler) -> Handler:
    """A refusal in the spec's error body, in the request's format."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AppError as exc:
            error = {"code": exc.status, "description": f"{exc.code.value}: {exc.message}"}
            response = answer(request, [error], root="errors", item="error", status=exc.status)
            if exc.data.get("headers"):
                response.headers.update(exc.data["headers"])
            return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped
