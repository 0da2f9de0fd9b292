"""Directory sign-in: the login form's password checked by the centre's directory (Active
Directory, OpenLDAP) by binding as the person's own entry, never against a hash kept here.

Which accounts: with ``LDAP_URL`` set, every account except those named in
``LDAP_LOCAL_ACCOUNTS``, the break-glass accounts that keep their Lifeline password for the day
the directory is down. A directory account still needs its Lifeline account (enabled, its TOTP
as the second factor): the directory says who the person is, Lifeline who may work here.

One sign-in: search ``LDAP_USER_BASE`` for ``LDAP_USER_FILTER`` with the typed name escaped
(a name is never a filter: ``*`` or ``)(`` in it match themselves only), as the service account;
an entry that ``LDAP_DISABLED_FILTER`` also matches is refused before its password is tried;
with ``LDAP_GROUP_ROLES`` the role is the first listed group's whose ``member`` the entry is;
last, a bind as the entry with the typed password. ldap3 is synchronous: the exchange runs on a
thread with connect and receive timeouts, and the sign-in waits for it ``LDAP_TIMEOUT_SECS`` at
most. A directory that does not answer is a refusal like any other for the person, a line in
the log and an outage of the node (``/readyz``'s degraded ``directory``) until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import replace
from typing import Any

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from config import Settings
from server.actions.login import Judged, PasswordJudge, StandingJudge
from server.core.outages import Outages

log = logging.getLogger("lifeline.auth")

STORE = "directory"
PART = "sign-in"
# LDAP result codes (RFC 4511 4.1.9) the judgement reads.
_SUCCESS, _SIZE_LIMIT, _COMPARE_TRUE, _NO_SUCH_OBJECT = 0, 4, 6, 32


class Unanswered(Exception):
    """The directory could not be asked (down, hung, TLS refused, the service bind refused)."""


def directory_judge(settings: Settings, outages: Outages) -> PasswordJudge | None:
    """The sign-in's judge of passwords when directory sign-in is on; ``None``: it is off."""
    if not settings.LDAP_URL:
        return None

    async def judge(name: str, password: str) -> Judged | None:
        if name in settings.LDAP_LOCAL_ACCOUNTS:
            return None  # break-glass: the account's own password
        return await ask_directory(settings, outages, name, password)

    return judge


def directory_standing(settings: Settings, outages: Outages) -> StandingJudge | None:
    """For a sign-in that proves who the person is without a password (a passkey alone): is a
    directory account still in the directory, not disabled there, and (with group roles) in
    one of the groups? ``None``: directory sign-in is off. Without it, someone the directory
    disabled would still get in with a passkey registered before."""
    if not settings.LDAP_URL:
        return None

    async def judge(name: str) -> Judged | None:
        if name in settings.LDAP_LOCAL_ACCOUNTS:
            return None
        return await ask_directory(settings, outages, name, None)

    return judge


async def ask_directory(
    settings: Settings, outages: Outages, name: str, password: str | None
) -> Judged:
    """The directory's judgement of ``password`` for ``name``, within ``LDAP_TIMEOUT_SECS``;
    with ``password`` None, of the entry's standing alone (found, not disabled, its groups)."""
    try:
        judged = await asyncio.wait_for(
            asyncio.to_thread(_ask, settings, name, password), settings.LDAP_TIMEOUT_SECS
        )
    except (Unanswered, TimeoutError, LDAPException, OSError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        outages.failed(STORE, PART, why)
        facts: dict[str, object] = {"directory": "unavailable", "directory_error": why}
        return Judged(ok=False, reason="directory_unavailable", counts=False, facts=facts)
    outages.answered(STORE, PART)
    # The directory's word in the chain, also where the account's is the one that counts.
    said = "ok" if judged.ok else judged.reason
    return replace(judged, facts={"directory": said, **judged.facts})


def _server(settings: Settings) -> Server:
    tls = None
    if settings.LDAP_URL.startswith("ldaps://") or settings.LDAP_STARTTLS:
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(settings.LDAP_CA_FILE) if settings.LDAP_CA_FILE else None,
        )
    return Server(
        settings.LDAP_URL, connect_timeout=settings.LDAP_TIMEOUT_SECS, tls=tls, get_info=NONE
    )


def _connect(server: Server, settings: Settings, dn: str | None, password: str | None) -> Any:
    """An open connection (upgraded with StartTLS if asked), not yet bound."""
    connection = Connection(
        server,
        user=dn,
        password=password,
        receive_timeout=settings.LDAP_TIMEOUT_SECS,
        read_only=True,
        raise_exceptions=False,
    )
    try:
        connection.open()
        if settings.LDAP_STARTTLS and not connection.start_tls():
            raise Unanswered(f"StartTLS refused: {connection.result['description']}")
    except (LDAPException, Unanswered):
        _close(connection)
        raise
    return connection


def _close(connection: Any) -> None:
    """Unbind, and close the socket that ldap3 leaves open after a refused connection or a
    failed TLS handshake."""
    with contextlib.suppress(LDAPException):
        connection.unbind()
    if connection.socket is not None:
        connection.socket.close()


def _ask(settings: Settings, name: str, password: str | None) -> Judged:
    """The whole exchange, on a thread: search, disabled mark, groups, the person's bind."""
    server = _server(settings)
    service = _connect(
        server, settings, settings.LDAP_BIND_DN or None, settings.ldap_bind_password or None
    )
    try:
        if not service.bind():
            raise Unanswered(f"the service bind was refused: {service.result['description']}")
        wanted = settings.LDAP_USER_FILTER.replace("{username}", escape_filter_chars(name))
        service.search(settings.LDAP_USER_BASE, wanted, SUBTREE, attributes=[], size_limit=2)
        found = [r["dn"] for r in service.response or [] if r.get("type") == "searchResEntry"]
        code = service.result["result"]
        if code == _SIZE_LIMIT or len(found) > 1:
            return Judged(ok=False, reason="directory_ambiguous")
        if code not in (_SUCCESS, _NO_SUCH_OBJECT):
            raise Unanswered(f"the search failed: {service.result['description']}")
        if not found:
            return Judged(ok=False, reason="not_in_directory")
        dn = found[0]
        facts: dict[str, object] = {"directory_dn": dn}
        if settings.LDAP_DISABLED_FILTER:
            service.search(dn, settings.LDAP_DISABLED_FILTER, BASE, attributes=[])
            if any(r.get("type") == "searchResEntry" for r in service.response or []):
                return Judged(ok=False, reason="directory_disabled", facts=facts)
        role = None
        if settings.LDAP_GROUP_ROLES:
            role = next(
                (
                    granted
                    for group, granted in settings.LDAP_GROUP_ROLES.items()
                    if service.compare(group, "member", dn)
                    and service.result["result"] == _COMPARE_TRUE
                ),
                None,
            )
            if role is None:
                return Judged(ok=False, reason="no_directory_role", facts=facts)
    finally:
        _close(service)
    if password is None:  # the standing alone: the person proved who they are otherwise
        return Judged(ok=True, role=role, facts=facts)
    if not password:
        # An empty password is an unauthenticated bind (RFC 4513 5.1.2), which many
        # directories let "succeed": it proves nothing.
        return Judged(ok=False, reason="bad_password", facts=facts)
    person = _connect(server, settings, dn, password)
    try:
        if not person.bind():
            facts["directory_said"] = str(person.result["description"])
            return Judged(ok=False, reason="bad_password", facts=facts)
    finally:
        _close(person)
    return Judged(ok=True, role=role, facts=facts)
