"""The command line: ``run``, ``migrate``, ``backup``, ``users``, ``evidence``
(docs/interfaces.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.exc import DBAPIError

from config import Settings, SettingsError, load_settings
from server.actions.users import Actor, do_create_first_admin, do_create_user
from server.core.clock import SystemClock
from server.core.logs import setup_logging
from server.core.named_areas import NamedAreasError, load_named_areas
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.migrate import upgrade
from server.notify import sd_notify

if TYPE_CHECKING:
    from server.actions.evidence_export import ExportPlan
    from server.core.storage import Storage
from server.security.passwords import PROBLEM_TEXTS, password_problem
from server.security.totp import provisioning_uri

PAGES = (
    ("citizen", "/"),
    ("console", "/console"),
    ("wall", "/wall"),
    ("map", "/map"),
    ("stats", "/stats"),
    ("admin", "/admin"),
)
FIRST_ADMIN = "admin"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="Lifeline")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve everything")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    sub.add_parser("migrate", help="bring the database to the newest schema")
    backup = sub.add_parser("backup", help="copy the embedded database while it serves")
    backup.add_argument("destination", type=Path, help="a new file")
    users = sub.add_parser("users", help="staff accounts").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser("add", help="add a staff account")
    add.add_argument("name")
    add.add_argument(
        "--role", required=True, choices=["operator", "supervisor", "internal_security", "admin"]
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    users.add_parser("list", help="every staff account: role, disabled, TOTP, last sign-in")
    disable = users.add_parser("disable", help="disable an account (signed out everywhere)")
    disable.add_argument("name")
    reset = users.add_parser(
        "reset", help="a new one-time password; TOTP set up again at the next sign-in"
    )
    reset.add_argument("name")
    reset.add_argument("--reason", required=True, help="why (kept in the audit chain)")
    evidence = sub.add_parser("evidence", help="evidence and the audit chain").add_subparsers(
        dest="evidence_command", required=True
    )
    verify = evidence.add_parser(
        "verify", help="verify the audit chain, its checkpoints and files, or a bundle"
    )
    verify.add_argument("bundle", nargs="?", type=Path, help="an export bundle (a zip)")
    evidence.add_parser(
        "purge", help="delete the stored files whose retention has ended now (docs/retention.md)"
    )
    redact = evidence.add_parser(
        "redact", help="make a redacted copy of a call's recording: faces blurred, audio kept"
    )
    redact.add_argument("call_id")
    redact.add_argument("--reason", required=True, help="why (free text or a case number)")
    export = evidence.add_parser("export", help="write a call's signed evidence bundle")
    export.add_argument("call_id")
    export.add_argument("out", type=Path, help="the zip to write (a new file)")
    export.add_argument(
        "--reason", default="exported on the command line", help="why (kept in the audit chain)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = {}
        if getattr(args, "host", None):
            overrides["HOST"] = args.host
        if getattr(args, "port", None) is not None:
            overrides["PORT"] = args.port
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.LOG_FORMAT, settings.LOG_LEVEL)
    if args.command == "migrate":
        upgrade(settings.database_url, storage_dir=settings.storage_dir, data_dir=settings.DATA_DIR)
        print(f"database at the newest schema: {_redacted(settings.database_url)}")
        return 0
    if args.command == "run":
        if settings.STATS_AREAS_FILE is not None:
            try:  # said here in one line, before anything starts
                load_named_areas(settings.STATS_AREAS_FILE, settings.STATS_AREAS_NAME_PROPERTY)
            except NamedAreasError as exc:
                print(f"error: LIFELINE_STATS_AREAS_FILE: {exc}", file=sys.stderr)
                return 2
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url, storage_dir=settings.storage_dir, data_dir=settings.DATA_DIR)
        return asyncio.run(_run(settings))
    if args.command == "backup":
        return _backup(settings, args.destination)
    try:
        if args.command == "users" and args.users_command == "list":
            return asyncio.run(_users_list(settings))
        if args.command == "users" and args.users_command in ("disable", "reset"):
            return asyncio.run(_users_administer(settings, args))
        if args.command == "users":
            return asyncio.run(_users_add(settings, args.name, args.role, args.password_stdin))
        if args.evidence_command == "purge":
            return asyncio.run(_purge(settings))
        if args.evidence_command == "redact":
            return asyncio.run(_redact(settings, args.call_id, args.reason))
        if args.command == "evidence" and args.evidence_command == "export":
            return _export(settings, args.call_id, args.out, args.reason)
        if args.command == "evidence" and getattr(args, "bundle", None) is not None:
            return _verify_bundle(settings, args.bundle)
        return asyncio.run(_verify(settings))
    except DBAPIError as exc:
        # No database there, or one that was never migrated: say so in one line.
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        print(
            f"error: the database at {_redacted(settings.database_url)} is not ready "
            f"(run `python -m server migrate` first?): {reason}",
            file=sys.stderr,
        )
        return 1


def _redacted(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def _first_admin(settings: Settings) -> str | None:
    """Create the first admin when there is none; return its one-time password."""
    db = Database(settings.database_url)
    try:
        created = await do_create_first_admin(
            AuditLog(db, SystemClock()), SystemClock(), username=FIRST_ADMIN
        )
        return created.password if created is not None else None
    finally:
        await db.close()


async def _run(settings: Settings) -> int:
    from media.ice import warn_about_reachability
    from server.app import create_app
    from server.core.gc_tuning import freeze_startup_objects
    from server.http import access_log
    from server.media_workers import NodeMedia

    warn_about_reachability(settings)
    password = await _first_admin(settings)
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=5, **access_log.runner_options())
    await runner.setup()
    site = web.TCPSite(runner, settings.HOST, settings.PORT)
    await site.start()
    # With PORT=0 the system picks the port: print the one really bound.
    port = runner.addresses[0][1] if runner.addresses else settings.PORT
    media = NodeMedia(app)
    try:
        await media.start(port)
    except BaseException:
        await media.stop()
        await runner.cleanup()
        raise
    freeze_startup_objects()
    base = settings.PUBLIC_URL or f"http://{settings.HOST}:{port}"
    for name, path in PAGES:
        print(f"{name}: {base}{path}", flush=True)
    if password:
        print(
            f"first admin: user '{FIRST_ADMIN}', one-time password: {password} "
            f"(sign in at {base}/login; you must change it and set up TOTP)",
            flush=True,
        )
    if not settings.REQUIRE_TOTP:
        print("warning: LIFELINE_REQUIRE_TOTP=false: no second factor, demo use only", flush=True)
    # Under systemd (Type=notify): the node listens and its media nodes are up.
    sd_notify("READY=1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        sd_notify("STOPPING=1")
    finally:
        # Media first: the workers' last segments are stored while the node still runs.
        with contextlib.suppress(Exception):
            await media.stop()
        with contextlib.suppress(Exception):
            await runner.cleanup()
    return 0


def _backup(settings: Settings, destination: Path) -> int:
    """Copy the embedded database with SQLite's online backup while nodes write to it.

    The copy is one consistent snapshot, made one self-contained file (no -wal beside it) and
    checked (SQLite's integrity check, then the audit chain) before it is called a backup.
    PostgreSQL has pg_dump for this (docs/backup.md).
    """
    url = settings.database_url
    if not url.startswith("sqlite"):
        print(
            "error: the database is PostgreSQL: back it up with pg_dump (docs/backup.md)",
            file=sys.stderr,
        )
        return 2
    source = Path(url.split(":///", 1)[1])
    if not source.is_file():
        print(f"error: no database at {source}", file=sys.stderr)
        return 1
    if destination.exists():
        print(f"error: {destination} exists; name a new file", file=sys.stderr)
        return 2
    with (
        contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(destination)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        integrity = dst.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        print(
            f"error: the copy at {destination} fails its integrity check: {integrity}",
            file=sys.stderr,
        )
        return 1
    copy = settings.model_copy(
        update={"DATABASE_URL": f"sqlite+aiosqlite:///{destination.resolve()}"}
    )
    code = asyncio.run(_verify(copy, backup=True))
    with contextlib.closing(sqlite3.connect(destination)) as dst:
        dst.execute("PRAGMA journal_mode=DELETE")  # the engine opened it in WAL mode
    if code == 0:
        print(f"database copied to {destination}")
    return code


async def _users_add(settings: Settings, name: str, role: str, password_stdin: bool) -> int:
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        problem = password_problem(password, password, name)
        if problem:
            print(f"error: password refused ({PROBLEM_TEXTS[problem]})", file=sys.stderr)
            return 2
    db = Database(settings.database_url)
    try:
        from server.core.errors import AppError

        try:
            created = await do_create_user(
                AuditLog(db, SystemClock()),
                SystemClock(),
                actor=Actor.command_line(),
                username=name,
                role=role,
                password=password,
                with_totp_secret=settings.REQUIRE_TOTP,
            )
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
    finally:
        await db.close()
    user = created.user
    print(f"added {user.username} ({user.role})")
    if created.password:
        print(f"one-time password: {created.password} (must be changed at first login)")
    if user.totp_secret:
        print(f"totp: {provisioning_uri(user.totp_secret, user.username)}")
    return 0


async def _users_list(settings: Settings) -> int:
    """``users list``: one line per account, by name, in columns."""
    from server.actions.account_admin import last_sign_ins
    from server.actions.users import list_users

    db = Database(settings.database_url)
    try:
        users = await list_users(db)
        last = await last_sign_ins(db, [u.username for u in users])
    finally:
        await db.close()
    rows = [("name", "role", "disabled", "totp", "last sign-in")]
    for user in users:
        at = last.get(user.username)
        rows.append(
            (
                user.username,
                user.role,
                "yes" if user.disabled else "no",
                "yes" if user.totp_confirmed and user.totp_secret else "no",
                at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "never",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


async def _users_administer(settings: Settings, args: argparse.Namespace) -> int:
    """``users disable NAME`` and ``users reset NAME --reason``, as the command line (above the
    roles; the chain names it ``cli``). An unknown user or a refusal: one line, exit 2."""
    from server.actions.account_admin import reset_account, user_by_name
    from server.actions.users import do_set_disabled
    from server.core.errors import AppError

    db = Database(settings.database_url)
    clock = SystemClock()
    audit = AuditLog(db, clock)
    try:
        try:
            user = await user_by_name(db, args.name)
            assert user.id is not None
            if args.users_command == "disable":
                if user.disabled:
                    print(f"{user.username} is disabled already")
                    return 0
                await do_set_disabled(
                    audit, clock, actor=Actor.command_line(), user_id=user.id, disabled=True
                )
                print(f"disabled {user.username} ({user.role})")
                return 0
            done = await reset_account(
                audit, clock, actor=Actor.command_line(), user_id=user.id, reason=args.reason
            )
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
    finally:
        await db.close()
    ended = len(done.ended_sessions)
    print(f"reset {done.user.username} ({done.user.role}); sessions ended: {ended}")
    print(
        f"one-time password: {done.password} (must be changed at the next sign-in, "
        "then TOTP set up again)"
    )
    if done.user.disabled:
        print(f"note: {done.user.username} is disabled; enable it on /admin to sign in")
    return 0


async def _purge(settings: Settings) -> int:
    """What the nodes' daily purge does, now (the same locks and checks: safe beside them)."""
    from server.actions.retention import Purger
    from server.core.storage import FileStorage

    db = Database(settings.database_url)
    try:
        clock = SystemClock()
        report = await Purger(
            settings, AuditLog(db, clock), FileStorage(settings.storage_dir), clock
        ).run()
    finally:
        await db.close()
    if not report.ran:
        print("error: another node is purging now; nothing done", file=sys.stderr)
        return 1
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report.counts().items())) or "nothing"
    print(f"purged: {counts} ({report.files_deleted} files deleted)")
    return 0


async def _redact(settings: Settings, call_id: str, reason: str) -> int:
    """A redacted copy made here and now (the page's request makes it on a node, in the
    background); the chain names the command line as who asked."""
    from media.redaction import FaceBlur
    from server.actions.redactions import Redactions
    from server.core.errors import AppError
    from server.core.storage import FileStorage
    from server.db.models import Call, RedactionState

    db = Database(settings.database_url)
    try:
        clock = SystemClock()
        async with db.session() as session:
            call = await session.get(Call, call_id)
        if call is None:
            print(f"error: no call {call_id}", file=sys.stderr)
            return 1
        desk = Redactions(
            AuditLog(db, clock),
            FileStorage(settings.storage_dir),
            clock,
            FaceBlur(),
            asyncio.to_thread,
        )
        try:
            rows = await desk.request(call, Actor.command_line().name, reason)
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        made = await desk.make([row.id for row in rows if row.id is not None])
    finally:
        await db.close()
    for row in made:
        if row.state == RedactionState.DONE:
            print(
                f"segment {row.segment}: {row.path} sha256 {row.sha256} "
                f"({row.frames_with_faces} of {row.frames} frames with faces blurred)"
            )
        else:
            print(f"segment {row.segment}: failed (the audit chain says why)")
    return 0 if all(row.state == RedactionState.DONE for row in made) else 1


async def _verify(settings: Settings, *, backup: bool = False) -> int:
    """The store's evidence; for ``backup``'s copy, its chain and checkpoints only (the files
    are the live ones, and the live checkpoint file may have run ahead of the copy)."""
    from server.actions.checkpoints import Custody
    from server.actions.custody import verify_custody
    from server.core.storage import FileStorage
    from server.security.evidence_key import read_evidence_key

    db = Database(settings.database_url)
    try:
        custody = Custody(
            audit=AuditLog(db, SystemClock()),
            clock=SystemClock(),
            key=read_evidence_key(settings.evidence_key_file),
            file=settings.checkpoint_file,
        )
        storage = None if backup else FileStorage(settings.storage_dir)
        report = await verify_custody(custody, storage, snapshot=backup)
    finally:
        await db.close()
    if report.ok:
        files = "" if backup else f", {report.files} files re-hashed"
        print(
            f"audit chain intact: {report.entries} entries, {report.checkpoints} checkpoints"
            + files
        )
        return 0
    print(f"evidence BROKEN at {report.broken}")
    return 1


def _export(settings: Settings, call_id: str, out: Path, reason: str) -> int:
    """``evidence export``: the bundle written to a new file, the export in the chain."""
    from server.actions.evidence_export import write_bundle
    from server.core.errors import AppError
    from server.core.storage import FileStorage

    if out.exists():
        print(f"error: {out} exists; name a new file", file=sys.stderr)
        return 2
    storage = FileStorage(settings.storage_dir)
    try:
        plan = asyncio.run(_plan_export(settings, storage, call_id, reason))
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    try:
        with out.open("xb") as sink:
            manifest = write_bundle(plan, storage, sink)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    print(
        f"bundle written to {out}: call {plan.call_id}, {len(plan.items)} files "
        f"and the signed manifest (SHA-256 {manifest})"
    )
    return 0


async def _plan_export(
    settings: Settings, storage: Storage, call_id: str, reason: str
) -> ExportPlan:
    from server.actions.access import COMMAND_LINE
    from server.actions.checkpoints import Custody
    from server.actions.evidence_export import check_call_for_export, plan_export
    from server.security.evidence_key import load_evidence_key
    from server.security.pseudonyms import load_pseudonyms

    db = Database(settings.database_url)
    try:
        custody = Custody(
            audit=AuditLog(db, SystemClock()),
            clock=SystemClock(),
            key=load_evidence_key(settings.evidence_key_file),
            file=settings.checkpoint_file,
            syslog=settings.CHECKPOINT_SYSLOG,
        )
        call = await check_call_for_export(custody, call_id, COMMAND_LINE)
        return await plan_export(
            custody,
            storage,
            load_pseudonyms(settings.PSEUDONYM_KEY, settings.DATA_DIR),
            call,
            actor="cli",
            role=COMMAND_LINE,
            reason=reason,
            remote=None,
        )
    finally:
        await db.close()


def _verify_bundle(settings: Settings, bundle: Path) -> int:
    """The bundle's own verifier (the file copied into it), held to this deployment's key."""
    from server.evidence.verify_bundle import verify
    from server.security.evidence_key import read_evidence_key

    if not bundle.exists():
        print(f"error: no bundle at {bundle}", file=sys.stderr)
        return 2
    key = read_evidence_key(settings.evidence_key_file)
    verdict = verify(bundle, key.key_id if key is not None else None)
    print(verdict.line())
    if key is None and verdict.ok:
        print("no deployment key here: compare that key id with the published one")
    return 0 if verdict.ok else 1
