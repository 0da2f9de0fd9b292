"""Directory sign-in (issue 16, item 3) against a real slapd of the test's own (one per module,
tests/ldap_directory.py), through the real login route: the password is the directory's, TOTP
the second factor as for local accounts; every refusal is the one answer a failed local sign-in
gets, with the real reason in the audit chain; a directory that does not answer costs a bounded
wait, a refusal and an outage of the node, never a 500 or a hung sign-in.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from config import Settings, SettingsError, load_settings
from config.settings import STAFF_ROLES
from server.actions.directory_login import ask_directory
from server.actions.login import NO_PASSWORD
from server.actions.users import Actor, do_create_user
from server.app import create_app
from server.core.clock import FrozenClock
from server.core.outages import Outages
from server.db.models import LoginFailure, Role, User
from server.http.keys import OUTAGES_KEY
from server.security.passwords import verify_password
from tests.conftest import ClientFactory
from tests.edge import self_signed
from tests.ldap_directory import (
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SUFFIX,
    Directory,
    Person,
    group_dn,
)
from tests.staff import (
    PASSWORD,
    Client,
    add_account,
    another_browser,
    audit_rows,
    page_csrf,
    post_login,
)
from tests.staff import services_of as services
from tests.test_webauthn import ORIGIN, _post, _with_key

ANNA = Person("anna", "anna's directory passphrase", groups=("dispatch",))
BORIS = Person("boris", "boris's directory passphrase", disabled=True)
VERA = Person("vera", "vera's directory passphrase")  # in the directory, not in Lifeline
SAM = Person("sam", "sam's directory passphrase", groups=("supervisors", "dispatch"))
IRIS = Person("iris", "iris's directory passphrase", groups=("dispatch",))
# A filter under which an unescaped "*" or ")(" would match every person: the injection test.
USER_FILTER = "(&(objectClass=inetOrgPerson)(uid={username}))"
TIMEOUT_SECS = 1
# What the refusal of a dead directory may take beyond LDAP_TIMEOUT_SECS (the route, the
# database, a loaded machine).
SLACK_SECS = 2.0
FAILED = "Sign-in failed"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    server = Directory(tmp_path_factory.mktemp("slapd"), [ANNA, BORIS, VERA, SAM, IRIS])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def running(directory: Directory) -> Iterator[Directory]:
    """The module's slapd, answering: a test that stopped or froze it has it back after."""
    if not directory.running:
        directory.start()
    yield directory
    if not directory.running:
        directory.start()
    directory.resume()


@pytest.fixture
def settings(settings: Settings, running: Directory, tmp_path: Path) -> Settings:
    secret = tmp_path / "ldap-bind-password"
    secret.write_text(SERVICE_PASSWORD + "\n")
    return settings.model_copy(
        update={
            "LDAP_URL": running.url,
            "LDAP_BIND_DN": SERVICE_DN,
            "LDAP_BIND_PASSWORD_FILE": secret,
            "LDAP_USER_BASE": PEOPLE,
            "LDAP_USER_FILTER": USER_FILTER,
            "LDAP_DISABLED_FILTER": "(employeeType=disabled)",
            "LDAP_TIMEOUT_SECS": TIMEOUT_SECS,
            "LDAP_LOCAL_ACCOUNTS": ["breakglass"],
            "LOGIN_MAX_FAILURES": 3,
        }
    )


async def audit(client: Client, action: str) -> list[dict[str, object]]:
    rows = await audit_rows(client, action=action)
    return [{"actor": row.actor, **json.loads(row.data)} for row in rows]


async def refused(client: Client, username: str, password: str, totp: str = "") -> None:
    """The one answer of a failed sign-in: 401, the login page, the generic line, no session."""
    response = await post_login(client, username, password, totp)
    assert response.status == 401, await response.text()
    assert FAILED in await response.text()
    assert "lifeline_session" not in response.cookies


async def test_directory_user_signs_in_with_totp_and_reaches_a_session(
    client: Client, clock: FrozenClock
) -> None:
    account = await add_account(client, ANNA.uid, "operator")
    signed_in = await post_login(client, ANNA.uid, ANNA.password, account.code(clock))
    assert signed_in.status == 303, await signed_in.text()
    assert signed_in.headers["Location"] == "/console"
    page = await client.get("/console")
    assert page.status == 200
    [entry] = await audit(client, "login")
    assert entry["directory"] == "ok" and entry["directory_dn"] == ANNA.dn
    assert "role" not in entry  # no group mapping: the role set in Lifeline

    other = await another_browser(client)
    try:
        # The account's Lifeline password opens nothing: the directory's is the one.
        await refused(other, ANNA.uid, PASSWORD, account.code(clock, 1))
        # The directory's password without the second factor neither.
        await refused(other, ANNA.uid, ANNA.password, "000000")
    finally:
        await other.close()
    reasons = [e["reason"] for e in await audit(client, "login_failed")]
    assert reasons == ["bad_password", "bad_totp"]


async def test_every_refusal_is_the_one_answer_with_its_reason_in_the_chain(
    client: Client, clock: FrozenClock
) -> None:
    anna = await add_account(client, ANNA.uid, "operator")
    boris = await add_account(client, BORIS.uid, "operator")
    await refused(client, ANNA.uid, "not anna's password", anna.code(clock))
    await refused(client, ANNA.uid, "", anna.code(clock))  # never an unauthenticated bind
    await refused(client, BORIS.uid, BORIS.password, boris.code(clock))  # disabled there
    await refused(client, VERA.uid, VERA.password)  # no Lifeline account
    await refused(client, "*)(uid=*", ANNA.password, anna.code(clock))  # an injection
    await refused(client, "an*", ANNA.password, anna.code(clock))

    failed = await audit(client, "login_failed")
    said = [(e["actor"], e["reason"], e["directory"]) for e in failed]
    assert said == [
        ("anna", "bad_password", "bad_password"),
        ("anna", "bad_password", "bad_password"),
        ("boris", "directory_disabled", "directory_disabled"),
        ("vera", "unknown_user", "ok"),
        ("*)(uid=*", "unknown_user", "not_in_directory"),
        ("an*", "unknown_user", "not_in_directory"),
    ]
    assert failed[0]["directory_said"] == "invalidCredentials"

    # The same throttle as local sign-ins: anna's address has failed twice; a third failure
    # makes it wait, and then even her right password is refused until the wait is over.
    async with services(client).db.session() as session:
        pairs = (await session.exec(select(LoginFailure))).all()
    assert sorted((p.user_id, p.failures) for p in pairs) == [(1, 2), (2, 1)]
    await refused(client, ANNA.uid, "a third wrong one", anna.code(clock))
    await refused(client, ANNA.uid, ANNA.password, anna.code(clock))
    [waiting] = await audit(client, "login_refused")
    assert waiting["reason"] == "waiting"


async def test_the_typed_name_is_escaped_in_the_search(settings: Settings) -> None:
    """Unescaped, ``*)(uid=*`` would make the filter match every person (``directory_ambiguous``)
    and ``an*`` would find anna; escaped, each looks for a person of that very name."""
    outages = Outages()
    for name in ("*)(uid=*", "an*", "*", "anna)(|(uid=*"):
        judged = await ask_directory(settings, outages, name, ANNA.password)
        assert (judged.ok, judged.reason) == (False, "not_in_directory"), name
    judged = await ask_directory(settings, outages, ANNA.uid, ANNA.password)
    assert judged.ok and judged.facts["directory_dn"] == ANNA.dn


@pytest.fixture(scope="module")
def tls_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Directory, Path]]:
    """A second slapd, with a certificate of its own (StartTLS and ldaps://); and its CA."""
    folder = tmp_path_factory.mktemp("slapd-tls")
    certificate, key = self_signed(folder)
    server = Directory(folder / "tree", [ANNA], tls=(certificate, key))
    server.start()
    yield server, certificate
    server.stop()


async def test_tls_to_the_directory_checks_its_certificate(
    settings: Settings, tls_directory: tuple[Directory, Path], tmp_path: Path
) -> None:
    server, ca = tls_directory
    outages = Outages()
    starttls = settings.model_copy(
        update={"LDAP_URL": server.url, "LDAP_STARTTLS": True, "LDAP_CA_FILE": ca}
    )
    ldaps = settings.model_copy(update={"LDAP_URL": server.ldaps_url, "LDAP_CA_FILE": ca})
    for tls in (starttls, ldaps):
        judged = await ask_directory(tls, outages, ANNA.uid, ANNA.password)
        assert judged.ok, (tls.LDAP_URL, judged)
    other_ca, _ = self_signed(tmp_path)  # a certificate the directory's does not chain to
    for tls in (starttls, ldaps):
        wrong = tls.model_copy(update={"LDAP_CA_FILE": other_ca})
        judged = await ask_directory(wrong, outages, ANNA.uid, ANNA.password)
        assert (judged.ok, judged.reason, judged.counts) == (False, "directory_unavailable", False)
        assert "certificate verify failed" in str(judged.facts["directory_error"])
    assert outages.is_down("directory", "sign-in")


# ldap3 checks the name after the handshake and drops the TLS socket unclosed when it does not
# match (ldap3/core/tls.py: wrap_socket): the collector closes it, with a ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tls_to_the_directory_checks_its_name(
    settings: Settings, tls_directory: tuple[Directory, Path]
) -> None:
    server, ca = tls_directory
    port = server.ldaps_url.rsplit(":", 1)[1]
    outages = Outages()
    for url in (server.ldaps_url, f"ldaps://localhost:{port}"):
        renamed = settings.model_copy(update={"LDAP_URL": url, "LDAP_CA_FILE": ca})
        judged = await ask_directory(renamed, outages, ANNA.uid, ANNA.password)
        if url == server.ldaps_url:
            assert judged.ok, judged
        else:  # the right CA, another name: the certificate names 127.0.0.1 only
            assert (judged.ok, judged.reason) == (False, "directory_unavailable"), judged
            assert "doesn't match" in str(judged.facts["directory_error"])
    gc.collect()


async def test_group_mapping_gives_the_role(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    mapped = settings.model_copy(
        update={
            "LDAP_GROUP_ROLES": {
                group_dn("supervisors"): "supervisor",
                group_dn("dispatch"): "operator",
            }
        }
    )
    client = await aiohttp_client(create_app(mapped, clock))
    sam = await add_account(client, SAM.uid, "operator")
    signed_in = await post_login(client, SAM.uid, SAM.password, sam.code(clock))
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/wall"
    [entry] = await audit(client, "login")
    assert (entry["role"], entry["previous_role"]) == ("supervisor", "operator")
    async with services(client).db.session() as session:
        row = (await session.exec(select(User).where(col(User.username) == "sam"))).one()
    assert row.role == Role.SUPERVISOR

    # The directory never gives or takes internal security, the unit's own: iris keeps it.
    iris = await add_account(client, IRIS.uid, "internal_security")
    signed_in = await post_login(client, IRIS.uid, IRIS.password, iris.code(clock))
    assert signed_in.status == 303, await signed_in.text()
    entry = (await audit(client, "login"))[-1]
    assert (entry["role_kept"], entry["role_offered"]) == ("internal_security", "operator")
    async with services(client).db.session() as session:
        row = (await session.exec(select(User).where(col(User.username) == "iris"))).one()
    assert row.role == Role.INTERNAL_SECURITY

    # In no mapped group: no role, no sign-in (vera has a Lifeline account here).
    vera = await add_account(client, VERA.uid, "supervisor")
    await refused(client, VERA.uid, VERA.password, vera.code(clock))
    [failed] = await audit(client, "login_failed")
    assert failed["reason"] == "no_directory_role"


async def test_a_first_directory_sign_in_skips_the_password_change(
    client: Client, clock: FrozenClock
) -> None:
    """A new account made with a one-time password: with the directory's password, the next
    step is TOTP enrolment, never choosing a Lifeline password."""
    made = await do_create_user(
        services(client).audit,
        clock,
        actor=Actor.command_line("test"),
        username=ANNA.uid,
        role="operator",
    )
    assert made.password is not None
    signed_in = await post_login(client, ANNA.uid, ANNA.password)
    assert signed_in.status == 303, await signed_in.text()
    assert signed_in.headers["Location"] == "/account/totp"
    assert (await client.get("/account/totp")).status == 200
    # The one-time password is gone: it would open nothing even with directory sign-in off.
    async with services(client).db.session() as session:
        row = (await session.exec(select(User).where(col(User.username) == "anna"))).one()
    assert row.password_hash == NO_PASSWORD and not row.must_change_password
    assert not verify_password(row.password_hash, made.password)
    [entry] = await audit(client, "login")
    assert entry["one_time_password_dropped"] is True


async def test_a_directory_that_does_not_answer_is_a_bounded_refusal_and_an_outage(
    client: Client,
    clock: FrozenClock,
    running: Directory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert client.app is not None
    outages = client.app[OUTAGES_KEY]
    anna = await add_account(client, ANNA.uid, "operator")
    breakglass = await add_account(client, "breakglass", "admin")
    caplog.set_level(logging.WARNING, logger="lifeline.outages")

    running.pause()  # hung: the port takes the connection, nothing answers
    started = time.monotonic()
    await refused(client, ANNA.uid, ANNA.password, anna.code(clock))
    took = time.monotonic() - started
    assert TIMEOUT_SECS * 0.9 <= took <= TIMEOUT_SECS + SLACK_SECS, took
    assert outages.is_down("directory", "sign-in")
    assert "directory does not answer (sign-in)" in caplog.text
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["degraded"] == ["directory"]
    metrics = await (await client.get("/metrics")).text()
    assert 'lifeline_degraded{store="directory"} 1.0' in metrics

    # The break-glass account signs in with its own password meanwhile.
    desk = await another_browser(client)
    try:
        opened = await post_login(desk, "breakglass", PASSWORD, breakglass.code(clock))
        assert opened.status == 303 and opened.headers["Location"] == "/admin"
    finally:
        await desk.close()

    running.stop()  # gone: the connection is refused at once
    started = time.monotonic()
    await refused(client, ANNA.uid, ANNA.password, anna.code(clock, 1))
    assert time.monotonic() - started <= TIMEOUT_SECS + SLACK_SECS

    refusals = await audit(client, "login_refused")
    assert [(e["reason"], e["directory"]) for e in refusals] == [
        ("directory_unavailable", "unavailable"),
        ("directory_unavailable", "unavailable"),
    ]
    assert refusals[0]["directory_error"] == "timed out"
    async with services(client).db.session() as session:
        assert not (await session.exec(select(LoginFailure))).all()  # nobody's guess

    running.start()
    # The first refusal spent no code: the directory was not asked past the password.
    signed_in = await post_login(client, ANNA.uid, ANNA.password, anna.code(clock))
    assert signed_in.status == 303, await signed_in.text()
    assert not outages.is_down("directory")
    assert (await (await client.get("/readyz")).json())["status"] == "ok"


@pytest.mark.one_pass
def test_settings_refuse_a_half_configured_directory(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    whole: dict[str, object] = {
        "LDAP_URL": "ldap://127.0.0.1:3389",
        "LDAP_USER_BASE": PEOPLE,
        "LDAP_BIND_DN": SERVICE_DN,
        "LDAP_BIND_PASSWORD_FILE": secret,
    }
    loaded = load_settings(**whole, LDAP_LOCAL_ACCOUNTS="Admin, breakglass")
    assert loaded.LDAP_LOCAL_ACCOUNTS == ["admin", "breakglass"]
    assert loaded.ldap_bind_password == "x"
    cases: list[tuple[dict[str, object], str]] = [
        ({"LDAP_URL": "http://127.0.0.1"}, "ldap://"),
        ({"LDAP_URL": "ldaps://dc.example", "LDAP_STARTTLS": True}, "LDAP_STARTTLS"),
        ({"LDAP_USER_BASE": ""}, "LDAP_USER_BASE"),
        ({"LDAP_USER_FILTER": "(cn=staff)"}, "{username}"),
        ({"LDAP_USER_FILTER": "uid={username}"}, "parentheses"),
        ({"LDAP_DISABLED_FILTER": "((pwdAccountLockedTime=*)"}, "pair"),
        ({"LDAP_BIND_PASSWORD_FILE": tmp_path / "none"}, "cannot read"),
        ({"LDAP_BIND_PASSWORD_FILE": ""}, "LDAP_BIND_PASSWORD_FILE"),
        ({"LDAP_GROUP_ROLES": {f"cn=x,{SUFFIX}": "chief"}}, "not a role"),
    ]
    for wrong, named in cases:
        with pytest.raises(SettingsError, match=r"LDAP|role|filter") as caught:
            load_settings(**{**whole, **wrong})
        assert named in str(caught.value), (wrong, caught.value)
    assert set(STAFF_ROLES) == {role.value for role in Role}


async def test_a_passkey_alone_opens_nothing_for_someone_the_directory_disabled(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    """Keys registered while each could sign in (here on a node without directory sign-in,
    same database); then, with the directory on, anna's passkey alone signs her in, and boris's,
    whom the directory marks disabled, is refused with that reason in the chain."""
    keys = {"PUBLIC_URL": ORIGIN, "WEBAUTHN_PASSWORDLESS": True}
    local = await aiohttp_client(
        create_app(settings.model_copy(update={**keys, "LDAP_URL": ""}), clock)
    )
    _, anna_key = await _with_key(local, clock, ANNA.uid)
    _, boris_key = await _with_key(local, clock, BORIS.uid)
    node = await aiohttp_client(create_app(settings.model_copy(update=keys), clock))
    for person, key, status in ((ANNA, anna_key, 200), (BORIS, boris_key, 401)):
        browser = await another_browser(node)
        try:
            csrf = await page_csrf(browser)
            _, options = await _post(browser, "/login/key/options", csrf, {"passkey": True})
            body = {
                "challenge_id": options["challenge_id"],
                "credential": key.get(options),
                "passkey": True,
            }
            answered, answer = await _post(browser, "/login/key", csrf, body)
            assert answered == status, (person.uid, answer)
        finally:
            await browser.close()
    passkeys = [e["actor"] for e in await audit(node, "login") if e.get("method") == "passkey"]
    assert passkeys == ["anna"]
    [refusal] = await audit(node, "webauthn_refused")
    assert refusal["actor"] == "boris" and refusal["reason"] == "directory_disabled", refusal
