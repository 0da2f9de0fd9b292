"""The API's OpenAPI document (GET /api/openapi.json): every route under /api/ is in it, and
schemathesis, run against a real server, finds no 5xx and no answer that breaks the document.

The public operations run without a session, the staff operations with a real signed-in
session of a role each lets through; every second example aims at a real call, thread and
(confirmed, with a photo) report, with the call's or thread's token where the operation takes
one. Examples are bounded and drawn derandomized: the same run every time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from server.actions.staff_sessions import SESSION_COOKIE
from server.core.clock import FrozenClock
from server.http.openapi import CALL_TOKEN_HEADER, CSRF_HEADER, THREAD_TOKEN_HEADER
from tests.staff import add_account, another_browser, sign_in
from tests.threats import HERE, created, jpeg_with_gps, post_report

Client = TestClient[web.Request, web.Application]
EXAMPLES_PER_OPERATION = 8
# The role a staff operation is run with: the first of these that it lets through.
ROLE_ORDER = ("supervisor", "operator", "internal_security", "admin")
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# Refusals that say the run itself sent the wrong session: the document names the wrong roles.
SESSION_REFUSALS = {"unauthorized", "session_expired", "role_forbidden", "csrf_failed"}


async def _document(client: Client) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


async def test_every_api_route_is_in_the_document(client: Client) -> None:
    """Walks the app's router: a route under /api/ the document leaves out fails here."""
    document = await _document(client)
    assert document["openapi"] == "3.1.0"
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert client.app is not None
    routed = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }
    assert routed - described == set(), "routes under /api/ the document does not describe"
    assert described - routed == set(), "the document describes routes that do not exist"
    # Every operation says who may call it, and answers errors with the one error body.
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "security" in operation, (method, path)
            error = operation["responses"]["4XX"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    schemes = document["components"]["securitySchemes"]
    assert schemes["staffSession"] == {**schemes["staffSession"], "in": "cookie"}
    assert schemes["staffSession"]["name"] == SESSION_COOKIE
    assert schemes["csrfToken"]["name"] == CSRF_HEADER


@dataclass
class Session:
    cookie: str
    csrf: str


@dataclass
class Held:
    """A real call, thread and (confirmed) report that half the examples aim at."""

    call_id: str
    call_token: str
    thread_id: str
    thread_token: str
    report_id: int

    def ids(self) -> dict[str, str]:
        return {
            "call_id": self.call_id,
            "thread_id": self.thread_id,
            "report_id": str(self.report_id),
        }


@dataclass
class Tally:
    operations: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    wrong_session: list[str] = field(default_factory=list)


def _staff_only(operation: Any) -> bool:
    security = operation.definition.raw.get("security", [])
    return bool(security) and all("staffSession" in needed for needed in security)


def _token_header(operation: Any) -> str | None:
    for needed in operation.definition.raw.get("security", []):
        if "callToken" in needed:
            return CALL_TOKEN_HEADER
        if "threadToken" in needed:
            return THREAD_TOKEN_HEADER
    return None


@dataclass(frozen=True)
class Aim:
    """What one operation's examples are sent with."""

    base_url: str
    headers: dict[str, str]
    token_header: str | None
    held: Held
    spare_user: int


def _examples(operation: Any, aim: Aim, tally: Tally) -> None:
    """Up to EXAMPLES_PER_OPERATION cases of one operation, each sent and checked; a check's
    failure is collected and the run goes on."""
    sent_count = iter(range(1_000_000))

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def examples(case: Any) -> None:
        sent = dict(aim.headers)
        params = case.path_parameters or {}
        # The run's own accounts are left alone: a change to them would end its sessions.
        if "user_id" in params:
            params["user_id"] = str(aim.spare_user)
        if next(sent_count) % 2:  # every second example aims at the real call, thread, report
            for name, value in aim.held.ids().items():
                if name in params:
                    params[name] = value
            if aim.token_header == CALL_TOKEN_HEADER:
                sent[CALL_TOKEN_HEADER] = aim.held.call_token
            elif aim.token_header == THREAD_TOKEN_HEADER:
                sent[THREAD_TOKEN_HEADER] = aim.held.thread_token
        response = case.call(base_url=aim.base_url, headers=sent)
        tally.examples += 1
        tally.statuses[response.status_code] += 1
        label = f"{case.method} {case.formatted_path} -> {response.status_code}"
        if aim.headers and response.status_code in (401, 403):
            code = (response.json().get("error") or {}).get("code")
            if code in SESSION_REFUSALS:
                tally.wrong_session.append(f"{label} {code}")
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            tally.failures.append(f"{label}: {exc}"[:3000])

    examples()


def _run(
    document: dict[str, Any],
    base_url: str,
    sessions: dict[str, Session],
    held: Held,
    spare_user: int,
    tally: Tally,
) -> None:
    """schemathesis over every operation, in this thread (the server's loop runs on)."""
    schema = schemathesis.openapi.from_dict(document)
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        tally.operations += 1
        headers: dict[str, str] = {}
        if _staff_only(operation):
            roles = operation.definition.raw.get("x-lifeline-roles", [])
            session = sessions[next(r for r in ROLE_ORDER if r in roles)]
            headers = {"Cookie": f"{SESSION_COOKIE}={session.cookie}", CSRF_HEADER: session.csrf}
        aim = Aim(base_url, headers, _token_header(operation), held, spare_user)
        _examples(operation, aim, tally)


async def _sessions(client: Client, clock: FrozenClock) -> tuple[dict[str, Session], list[Client]]:
    sessions: dict[str, Session] = {}
    browsers = []
    for role in ROLE_ORDER:
        browser = await another_browser(client)
        browsers.append(browser)
        csrf = await sign_in(browser, await add_account(client, f"sch_{role}", role), clock)
        jar = browser.session.cookie_jar.filter_cookies(browser.make_url("/"))
        sessions[role] = Session(jar[SESSION_COOKIE].value, csrf)
    return sessions, browsers


@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    client: Client, clock: FrozenClock
) -> None:
    document = await _document(client)
    sessions, browsers = await _sessions(client, clock)
    spare = await add_account(client, "sch_spare", "operator")
    users = await (
        await browsers[-1].get("/api/users")  # the admin's browser
    ).json()
    spare_id = next(u["id"] for u in users["users"] if u["username"] == spare.username)
    call = await (await client.post("/api/calls", json={"mode": "text"})).json()
    thread = await (await client.post("/api/threads", json={})).json()
    report = await created(await post_report(client, photos=[jpeg_with_gps()]))
    await post_report(client, lat=HERE[0] + 0.01)  # a second one: the map has two
    desk = browsers[0]  # the supervisor's
    for status in ("verifying", "confirmed"):
        changed = await desk.post(
            f"/api/staff/reports/{report['id']}/status",
            json={"status": status, "public_note": "Seen by a patrol"},
            headers={CSRF_HEADER: sessions["supervisor"].csrf},
        )
        assert changed.status == 200, await changed.text()
    held = Held(call["call_id"], call["token"], thread["thread_id"], thread["token"], report["id"])
    tally = Tally()
    base_url = str(client.make_url("")).rstrip("/")
    assert threading.current_thread() is threading.main_thread()
    await asyncio.to_thread(_run, document, base_url, sessions, held, spare_id, tally)
    for browser in browsers:
        await browser.close()
    print(
        f"\nschemathesis: {tally.operations} operations, {tally.examples} examples, "
        f"{len(tally.failures)} failures; statuses {dict(sorted(tally.statuses.items()))}"
    )
    for failure in tally.failures + tally.wrong_session:
        print(failure)
    assert tally.operations == sum(len(ops) for ops in document["paths"].values())
    assert tally.examples >= tally.operations
    assert tally.failures == []
    assert tally.wrong_session == []
    assert all(status < 500 for status in tally.statuses)


# Path parameters that are row ids, and ids past PostgreSQL's 32 bits and past 64.
ID_PARAMS = {
    "report_id",
    "seq",
    "snapshot_id",
    "segment",
    "redaction_id",
    "n",
    "user_id",
    "delivery_id",
    "key_id",
}
PAST_INTEGERS = ("9" * 11, "9" * 20)


async def test_ids_past_the_databases_integer_are_refused(
    client: Client, clock: FrozenClock
) -> None:
    """Every operation with a row id in its path, the id past PostgreSQL's 32 bits and past
    64: a 4xx, never the overflow's 500 (which schemathesis found in longer runs)."""
    document = await _document(client)
    sessions, browsers = await _sessions(client, clock)
    tried = 0
    for path, operations in document["paths"].items():
        names = {p["name"] for op in operations.values() for p in op.get("parameters", [])}
        if not names & ID_PARAMS:
            continue
        for past in PAST_INTEGERS:
            url = path
            for name in names:
                url = url.replace("{" + name + "}", past if name in ID_PARAMS else "x")
            for method, operation in operations.items():
                roles = operation.get("x-lifeline-roles", [])
                role = next((r for r in ROLE_ORDER if r in roles), None)
                browser = browsers[ROLE_ORDER.index(role)] if role else client
                headers = {CSRF_HEADER: sessions[role].csrf} if role else {}
                response = await browser.request(method, url, json={}, headers=headers)
                assert 400 <= response.status < 500, (method, url, await response.text())
                tried += 1
    for browser in browsers:
        await browser.close()
    assert tried >= 10
