"""The OpenAPI 3.1 document of ``/api/``: generated from the routes, never written by hand.

Each ``/api/`` handler says once, under its route's decorator, what it takes and answers
(``@documented``: its body's model, its replies' models, who may call it). ``document`` walks
the app's router and joins each declaration with the route's own method, path and path
patterns, so a route and its description sit in one place and cannot part; a route under
``/api/`` with none fails a test (tests/test_openapi.py). The schemas are pydantic's own JSON
Schema (2020-12), which OpenAPI 3.1 takes as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib.metadata import version
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from server.actions.staff_sessions import SESSION_COOKIE
from server.core.errors import ErrorCode

routes = web.RouteTableDef()

OPENAPI_PATH = "/api/openapi.json"
API_PREFIX = "/api/"
CALL_TOKEN_HEADER = "X-Call-Token"
THREAD_TOKEN_HEADER = "X-Thread-Token"
CSRF_HEADER = "X-CSRF-Token"
_OPERATION_ATTR = "__lifeline_operation__"
_REF = "#/components/schemas/{model}"
_PARAM_RE = re.compile(r"\(\?P<(\w+)>")
H = TypeVar("H", bound=Callable[..., Any])


# --- what a route declares ---------------------------------------------------------------------


@dataclass(frozen=True)
class Json:
    """A JSON reply of ``model``, under a media type of the JSON family."""

    model: type[BaseModel]
    media_type: str = "application/json"


@dataclass(frozen=True)
class File:
    """A reply that is a file (an image, a recording, a feed): bytes of ``media_types``."""

    media_types: tuple[str, ...]


Reply = type[BaseModel] | Json | File


@dataclass(frozen=True)
class Form:
    """A form body: its fields as a model, a file field typed ``bytes`` (``list[bytes]`` for
    several files under one name)."""

    model: type[BaseModel]
    media_types: tuple[str, ...] = ("multipart/form-data",)


@dataclass(frozen=True)
class Access:
    """Who may call an operation: any one of ``schemes`` (each a set of credentials sent
    together); ``roles``, the staff roles that the handler's own check lets through."""

    schemes: tuple[tuple[str, ...], ...] = ()
    roles: frozenset[str] = frozenset()

    def __or__(self, other: Access) -> Access:
        return Access(self.schemes + other.schemes, self.roles | other.roles)


PUBLIC = Access()
CALL_TOKEN = Access((("callToken",),))
THREAD_TOKEN = Access((("threadToken",),))


def staff(roles: frozenset[Any]) -> Access:
    """A read: the staff session's cookie."""
    return Access((("staffSession",),), frozenset(str(r) for r in roles))


def staff_change(roles: frozenset[Any]) -> Access:
    """A write: the session's cookie and its CSRF token in ``X-CSRF-Token``."""
    return Access((("staffSession", "csrfToken"),), frozenset(str(r) for r in roles))


@dataclass(frozen=True)
class Operation:
    replies: Mapping[int, Reply]
    access: Access
    body: type[BaseModel] | Form | None
    query: type[BaseModel] | None
    name: str
    description: str
    tag: str


def documented(
    *,
    replies: Mapping[int, Reply],
    access: Access = PUBLIC,
    body: type[BaseModel] | Form | None = None,
    query: type[BaseModel] | None = None,
) -> Callable[[H], H]:
    """Declare what a handler takes and answers; put it under the route's decorator. Every
    operation also answers ``4XX`` with the error body (``ErrorBody``) unless it names its own."""

    def mark(handler: H) -> H:
        module = handler.__module__.removeprefix("server.http.")
        setattr(
            handler,
            _OPERATION_ATTR,
            Operation(
                replies=replies,
                access=access,
                body=body,
                query=query,
                name=handler.__name__,
                description=" ".join((handler.__doc__ or "").split()),
                tag=module,
            ),
        )
        return handler

    return mark


def operation_of(handler: object) -> Operation | None:
    found = getattr(handler, _OPERATION_ATTR, None)
    return found if isinstance(found, Operation) else None


# --- the error body, common to every operation -------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: ErrorCode
    message: str


class ErrorBody(BaseModel):
    """Every refusal (4xx) and failure: a code to branch on, a message for people."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


class OpenApiDocument(BaseModel):
    """This document."""

    model_config = ConfigDict(extra="allow")
    openapi: Literal["3.1.0"]
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


SECURITY_SCHEMES: dict[str, Any] = {
    "staffSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "A signed-in staff member's session, set by POST /login (password and "
        "TOTP); read afresh on every request, so a disabled account or a changed role takes "
        "effect at once.",
    },
    "csrfToken": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "The session's CSRF token, on every staff write: the value of the "
        "csrf_token field of any staff page's forms.",
    },
    "callToken": {
        "type": "apiKey",
        "in": "header",
        "name": CALL_TOKEN_HEADER,
        "description": "The capability token POST /api/calls (or an invite) returned.",
    },
    "threadToken": {
        "type": "apiKey",
        "in": "header",
        "name": THREAD_TOKEN_HEADER,
        "description": "The capability token POST /api/threads returned.",
    },
}


# --- the document ------------------------------------------------------------------------------


def path_patterns(pattern: str) -> dict[str, str]:
    """Each path parameter's regular expression, read off aiohttp's compiled route."""
    found: dict[str, str] = {}
    for match in _PARAM_RE.finditer(pattern):
        depth, i = 1, match.end()
        while depth:
            char = pattern[i]
            if char == "\\":
                i += 2
                continue
            depth += (char == "(") - (char == ")")
            i += 1
        found[match.group(1)] = pattern[match.end() : i - 1]
    return found


@dataclass
class _Schemas:
    """The models an operation names, rendered together at the end: one entry each in
    ``components/schemas``, however many operations name it."""

    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = field(default_factory=list)

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        if (model, mode) not in self.wanted:
            self.wanted.append((model, mode))
        return {"__ref__": (model, mode)}

    def render(self) -> tuple[dict[Any, Any], dict[str, Any]]:
        refs, top = models_json_schema(self.wanted, ref_template=_REF)
        return dict(refs), top.get("$defs", {})


def _resolve(value: Any, refs: dict[Any, Any]) -> Any:
    if isinstance(value, dict):
        if "__ref__" in value:
            return refs[value["__ref__"]]
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs) for v in value]
    return value


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is one left out: a query string has no null."""
    schema = dict(schema)
    if schema.get("default", ...) is None:
        del schema["default"]
    options = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    if "anyOf" in schema:
        del schema["anyOf"]
        if len(options) == 1:
            schema |= options[0]
        else:
            schema["anyOf"] = options
    return schema


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def _reply(status: int, reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    if isinstance(reply, File):
        content: dict[str, Any] = {media: {} for media in reply.media_types}
        return {"description": HTTPStatus(status).phrase, "content": content}
    json = reply if isinstance(reply, Json) else Json(reply)
    description = (json.model.__doc__ or "").strip().split("\n\n")[0]
    return {
        "description": " ".join(description.split()) or HTTPStatus(status).phrase,
        "content": {json.media_type: {"schema": schemas.ref(json.model, "serialization")}},
    }


def _operation(
    method: str, operation: Operation, patterns: dict[str, str], schemas: _Schemas
) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "operationId": f"{operation.tag}.{operation.name}",
        "summary": operation.name.replace("_", " "),
        "tags": [operation.tag],
    }
    if operation.description:
        rendered["description"] = operation.description
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": f"^(?:{regex})$"},
        }
        for name, regex in patterns.items()
    ]
    if operation.query is not None:
        params += _query_parameters(operation.query)
    if params:
        rendered["parameters"] = params
    if isinstance(operation.body, Form):
        ref = schemas.ref(operation.body.model, "validation")
        rendered["requestBody"] = {
            "required": True,
            "content": {media: {"schema": ref} for media in operation.body.media_types},
        }
    elif operation.body is not None:
        rendered["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(operation.body, "validation")}},
        }
    responses = {
        str(status): _reply(status, reply, schemas)
        for status, reply in sorted(operation.replies.items())
    }
    responses["4XX"] = _reply(400, ErrorBody, schemas) | {
        "description": "Refused: the error's code says why (docs/interfaces.md, Errors)."
    }
    rendered["responses"] = responses
    if operation.access.schemes:
        rendered["security"] = [{name: [] for name in s} for s in operation.access.schemes]
        if operation.access.roles:
            rendered["x-lifeline-roles"] = sorted(operation.access.roles)
    else:
        rendered["security"] = []
    return rendered


def api_routes(router: web.UrlDispatcher) -> list[web.AbstractRoute]:
    """Every route under ``/api/`` (HEAD excepted: aiohttp answers it beside each GET)."""
    return [
        route
        for route in router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and route.resource.canonical.startswith(API_PREFIX)
    ]


def document(router: web.UrlDispatcher) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every described route under ``/api/``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in api_routes(router):
        operation = operation_of(route.handler)
        if operation is None or route.resource is None:
            continue
        pattern = route.resource.get_info().get("pattern")
        patterns = path_patterns(pattern.pattern) if pattern is not None else {}
        paths.setdefault(route.resource.canonical, {})[route.method.lower()] = _operation(
            route.method, operation, patterns, schemas
        )
    refs, components = schemas.render()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lifeline",
            "version": version("lifeline"),
            "description": "The public and staff HTTP API of a Lifeline node: docs/interfaces.md.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "paths": _resolve(paths, refs),
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


OPENAPI_KEY = web.AppKey("openapi", dict)


@routes.get(OPENAPI_PATH)
@documented(replies={200: OpenApiDocument})
async def openapi_json(request: web.Request) -> web.StreamResponse:
    """This document: made once when the app is built, from its own routes."""
    return web.json_response(request.app[OPENAPI_KEY])
