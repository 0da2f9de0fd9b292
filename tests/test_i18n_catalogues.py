"""The four catalogues agree with each other and with every key the templates and scripts use.

No server: the .po files are read with Babel as ``server.i18n.Catalogs`` reads them, and each
template is compiled and rendered by the environment of ``server.pages.Pages`` under
StrictUndefined, in every language, with a catalogue lookup that fails on an unknown key. The
render catches keys built at run time (``"role." ~ code``) that no regex can see.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from babel.messages.pofile import read_po
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.settings import LANGUAGES
from server.http.i18n import LANGUAGE_NAMES, TRANSLATIONS_DIR, Catalogs
from server.http.pages import STATIC_DIR, TEMPLATES_DIR, Pages
from server.security.evidence_key import EvidenceKey

# One pass: no store.
pytestmark = pytest.mark.one_pass

# `_("key")` / `_('key')` and `gettext(...)` in templates; `t('key')` / `t("key")` in scripts.
# A literal followed by `~` (a key built at run time) is left to test_every_page_renders.
TEMPLATE_KEY_RE = re.compile(r"""\b(?:_|gettext)\(\s*(["'])([^"']+)\1(?=\s*[,)])""")
SCRIPT_KEY_RE = re.compile(r"""(?<![\w.$])t\(\s*(["'])([^"']+)\1(?=\s*[,)])""")
KEY_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")

TEMPLATES = sorted(path.name for path in TEMPLATES_DIR.glob("*.html"))
# Layouts and partials: rendered through the pages that extend or include them.
LAYOUTS = {"base.html", "staff_base.html", "public_base.html"}
PAGES = [name for name in TEMPLATES if name not in LAYOUTS and not name.startswith("_")]
SCRIPTS = sorted((STATIC_DIR / "js").glob("*.js"))
ROLES = ("operator", "supervisor", "internal_security", "admin")


def read_catalogue(lang: str) -> dict[str, str]:
    """All messages of one .po file, the header excluded: key -> text."""
    with (TRANSLATIONS_DIR / f"{lang}.po").open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    assert str(catalog.locale) == lang
    assert catalog.charset.lower() == "utf-8"
    return {str(message.id): str(message.string) for message in catalog if message.id}


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, str]]:
    return {lang: read_catalogue(lang) for lang in LANGUAGES}


@pytest.fixture(scope="module")
def english(catalogues: dict[str, dict[str, str]]) -> dict[str, str]:
    return catalogues["en"]


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages(Catalogs())


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a str.format text."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def keys_in(pattern: re.Pattern[str], paths: list[Path]) -> dict[str, str]:
    """Every key the pattern finds: key -> the first file it was seen in."""
    found: dict[str, str] = {}
    for path in paths:
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(2), path.name)
    return found


def test_templates_and_scripts_exist() -> None:
    assert "base.html" in TEMPLATES
    assert {path.name for path in SCRIPTS} >= {"i18n.js", "citizen.js", "console.js"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogue_has_the_english_keys_and_no_empty_text(
    lang: str, catalogues: dict[str, dict[str, str]], english: dict[str, str]
) -> None:
    messages = catalogues[lang]
    assert set(messages) - set(english) == set(), "keys English lacks"
    assert set(english) - set(messages) == set(), "keys missing"
    assert [key for key, text in messages.items() if not text.strip()] == []


def test_keys_are_symbolic(english: dict[str, str]) -> None:
    assert [key for key in english if not KEY_RE.match(key)] == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match_english(
    lang: str, catalogues: dict[str, dict[str, str]], english: dict[str, str]
) -> None:
    differing = {
        key: (placeholders(english[key]), placeholders(text))
        for key, text in catalogues[lang].items()
        if placeholders(english[key]) != placeholders(text)
    }
    assert differing == {}


def test_every_template_key_is_in_english(english: dict[str, str]) -> None:
    used = keys_in(TEMPLATE_KEY_RE, sorted(TEMPLATES_DIR.glob("*.html")))
    assert used, "no keys found: has the pattern stopped matching?"
    assert {key: where for key, where in used.items() if key not in english} == {}


def test_every_script_key_is_in_english(english: dict[str, str]) -> None:
    used = keys_in(SCRIPT_KEY_RE, SCRIPTS)
    assert used, "no keys found: has the pattern stopped matching?"
    assert {key: where for key, where in used.items() if key not in english} == {}


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_compiles(name: str, pages: Pages) -> None:
    assert isinstance(pages.env.get_template(name), jinja2.Template)


def strict_gettext(messages: dict[str, str]) -> Callable[..., str]:
    """A ``_`` that fails on an unknown key instead of showing the key."""

    def gettext(key: str, **values: object) -> str:
        assert key in messages, f"unknown key {key!r}"
        return messages[key].format(**values) if values else messages[key]

    return gettext


def staff(role: str) -> SimpleNamespace:
    return SimpleNamespace(username=f"{role}-1", role=role, stage="ok")


def user(user_id: int, role: str, *, flags: bool) -> SimpleNamespace:
    return SimpleNamespace(
        id=user_id,
        username=f"user{user_id}",
        role=role,
        disabled=flags,
        totp_confirmed=not flags,
        locked=flags,
        must_change_password=flags,
        display_name="Anna K." if flags else None,
        badge="4521" if flags else None,
        skills=["ru", "kk"] if flags else [],
    )


NOW = "2026-12-03T18:00:00+00:00"


def page_cases() -> list[tuple[str, dict[str, Any]]]:
    """Each page with the values its handler passes, in the states that change its markup."""
    created = SimpleNamespace(username="new-operator", password="one-time-secret")
    evidence_key = {
        "evidence_key": EvidenceKey(Ed25519PrivateKey.generate()),
        "evidence_key_url": "/.well-known/lifeline-evidence-key",
    }
    users = [
        user(1, "admin", flags=False),
        user(2, "operator", flags=True),
        user(3, "internal_security", flags=False),
    ]
    officers = [user(3, "internal_security", flags=False), user(4, "internal_security", flags=True)]
    changes = [
        SimpleNamespace(
            seq=seq,
            at=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
            actor="adam",
            attempt=attempt,
            username="user3",
            before=before,
            after="internal_security",
            outcome=outcome,
        )
        for seq, attempt, before, outcome in (
            (9, "create", None, "done"),
            (10, "role", "operator", "refused"),
            (11, "disable", "internal_security", "refused"),
            (12, "enable", "internal_security", "done"),
        )
    ]
    return [
        (
            "login.html",
            {
                "error": "x",
                "notice": "y",
                "next": "/console",
                "username": "",
                "oidc_providers": [SimpleNamespace(id="police-sso", name="Police SSO")],
                "keys_available": True,
                "passkeys": True,
            },
        ),
        (
            "login.html",
            {
                "error": None,
                "notice": None,
                "next": "",
                "username": "someone",
                "oidc_providers": [],
                "keys_available": False,
                "passkeys": False,
            },
        ),
        ("oidc_continue.html", {"where": "/console"}),
        ("login_totp.html", {"staff": staff("operator"), "error": "x"}),
        ("login_totp.html", {"staff": staff("operator"), "error": None}),
        (
            "account_keys.html",
            {"staff": staff("operator"), "keys_available": True, "max_name_chars": 60}
            | {"keys": [SimpleNamespace(id=1, name="Blue", created_at=NOW, last_used_at=None)]},
        ),
        (
            "account_keys.html",
            {"staff": staff("operator"), "keys_available": False, "max_name_chars": 60}
            | {"keys": []},
        ),
        ("change_password.html", {"staff": staff("operator"), "error": "x", "forced": False}),
        ("change_password.html", {"staff": staff("operator"), "error": None, "forced": True}),
        (
            "totp_enrol.html",
            {
                "staff": staff("operator"),
                "qr_svg": "<svg></svg>",
                "secret": "JBSWY3DPEHPK3PXP",
                "otpauth_uri": "otpauth://totp/lifeline:op?secret=JBSWY3DPEHPK3PXP",
                "error": None,
            },
        ),
        (
            "admin.html",
            {
                "staff": staff("admin"),
                "users": users,
                "roles": list(ROLES),
                "created": created,
                **evidence_key,
            },
        ),
        (
            "admin.html",
            {"staff": staff("admin"), "users": [], "roles": [], "created": None, **evidence_key},
        ),
        (
            "admin.html",
            {
                "staff": staff("admin"),
                "users": users,
                "roles": list(ROLES),
                "created": None,
                "error": "x",
                "error_code": "internal_security_only",
                **evidence_key,
            },
        ),
        (
            "security.html",
            {
                "staff": staff("internal_security"),
                "officers": officers,
                "changes": changes,
                "created": created,
            },
        ),
        (
            "security.html",
            {
                "staff": staff("internal_security"),
                "officers": [],
                "changes": [],
                "created": None,
                "error": "x",
                "error_code": "user_exists",
            },
        ),
        # Account recovery's notice after each of its actions, on /admin and on /security.
        *[
            (
                page,
                {
                    "staff": staff(role),
                    listed: users if page == "admin.html" else officers,
                    "roles": list(ROLES),
                    "changes": changes,
                    "created": None,
                    **evidence_key,
                    "recovery": SimpleNamespace(
                        action=action, username="user2", password=password, sessions=2
                    ),
                },
            )
            for page, role, listed in (
                ("admin.html", "admin", "users"),
                ("security.html", "internal_security", "officers"),
            )
            for action, password in (
                ("reset", "one-time-secret"),
                ("unlock", None),
                ("end-sessions", None),
            )
        ],
        ("citizen.html", {}),
        ("receipt.html", {}),
        ("invite.html", {}),
        ("thread.html", {}),
        ("console.html", {"staff": staff("operator")}),
        ("console.html", {"staff": staff("internal_security")}),
        ("wall.html", {"staff": staff("supervisor")}),
        ("wall.html", {"staff": staff("internal_security")}),
        ("map.html", {}),
        ("stats.html", {}),
        ("stats.html", {"total": 7}),
        (
            "report_follow.html",
            {
                "report": {
                    "id": 3,
                    "category": "stray_dogs",
                    "status": "confirmed",
                    "public_note": "A patrol saw them.",
                    "invited": True,
                    "history": [
                        {"status": "verifying", "public_note": "", "at": "2026-11-02T10:00:00Z"},
                        {"status": "confirmed", "public_note": "x", "at": "2026-11-03T10:00:00Z"},
                    ],
                }
            },
        ),
        (
            "report_follow.html",
            {
                "report": {
                    "id": 4,
                    "category": "begging",
                    "status": "new",
                    "public_note": None,
                    "invited": False,
                    "history": [],
                }
            },
        ),
        *[
            (
                "archive.html",
                {
                    "staff": staff(role),
                    "channels": channels,
                    "dispositions": ["dispatched", "advice_given"],
                    "shift_hours": 12.0,
                },
            )
            for role, channels in (
                ("operator", ["police"]),
                ("supervisor", ["police"]),
                ("internal_security", ["internal_security"]),
                ("admin", ["internal_security", "police"]),
            )
        ],
        ("archive_record.html", {"staff": staff("supervisor"), "call_id": "c-1", "can_hold": True}),
        ("archive_record.html", {"staff": staff("operator"), "call_id": "c-1", "can_hold": False}),
        ("error.html", {"status": 404, "code": "not_found", "message": "x"}),
        ("neutral.html", {}),
        ("error.html", {"staff": staff("supervisor"), "status": 403, "code": "f", "message": "x"}),
    ]


def test_every_page_has_a_render_case() -> None:
    assert set(PAGES) - {name for name, _ in page_cases()} == set()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_renders(lang: str, pages: Pages, catalogues: dict[str, dict[str, str]]) -> None:
    gettext = strict_gettext(catalogues[lang])
    for name, values in page_cases():
        context: dict[str, Any] = {
            "_": gettext,
            "gettext": gettext,
            "lang": lang,
            "languages": list(LANGUAGE_NAMES.items()),
            "staff": None,
            "csrf_token": "csrf-value",
            "require_totp": False,
            "map_tile_url": "",
            "map_pmtiles_url": "",
            "map_attribution": "",
            "ice_transport_policy": "all",
            "request_path": "/",
            "emergency_number": "112",
            "time_zone": "UTC",
            "quick_exit_url": "/leave",
            "static": lambda path: f"/static/{path}",
            "min_length": 12,
            "error": None,
        }
        context.update(values)
        html = pages.env.get_template(name).render(context)
        assert f'<html lang="{lang}"' in html, name
        assert 'data-testid="lang-switch"' in html, name
        # A strict CSP comes later: nothing inline.
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, name
        assert re.search(r"\sstyle=|\son[a-z]+=", html) is None, name
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S):
            assert 'name="csrf_token" value="csrf-value"' in form, name


def test_every_key_the_server_uses_is_in_the_catalogue() -> None:
    """Messages the Python code picks (login errors, password rules) are catalogue keys too."""
    pattern = re.compile(r'"((?:login|password|totp)\.(?:error|notice)\.[a-z_]+)"')
    used: set[str] = set()
    for path in (TEMPLATES_DIR.parent.parent / "server").rglob("*.py"):
        used.update(pattern.findall(path.read_text(encoding="utf-8")))
    assert len(used) >= 10, "the pattern no longer finds the server's message keys"
    english = set(read_catalogue("en"))
    assert used <= english, sorted(used - english)
