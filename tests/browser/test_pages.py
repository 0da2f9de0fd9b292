"""Every page of docs/interfaces.md in every language, in Chromium: translated, hooked, laid out.

A missing translation shows as its symbolic key (``citizen.start_video``), so a page is checked for
any key of the English catalogue in its text, title and accessible attributes. Screenshots go to
``tests/artifacts`` for a person to look at: the citizen page at 360 px, the wall at 1920 px.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import RunningServer
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
# How long a page's script may take to fetch its catalogue and replace what it renders.
SETTLE_MS = 5_000
LANGUAGES = ("en", "ru", "kk", "pl")
TRANSLATIONS = Path(__file__).resolve().parents[2] / "console_ui" / "translations"
PHONE: ViewportSize = {"width": 360, "height": 740}
WALL_SCREEN: ViewportSize = {"width": 1920, "height": 1080}
MIN_TOUCH_TARGET_PX = 48

# Everything a page shows to people: its text, hidden parts included (a call panel is hidden until
# a call starts), its title and the attributes read aloud or shown as hints.
PAGE_TEXTS_JS = """() => {
  const texts = [document.title, document.body.innerText, document.body.textContent];
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title], [alt]')) {
    for (const name of ['placeholder', 'aria-label', 'title', 'alt']) {
      const value = el.getAttribute(name);
      if (value) texts.push(value);
    }
  }
  return texts;
}"""
NO_KEY_SHOWN_JS = f"""(keys) => {{
  const texts = ({PAGE_TEXTS_JS})().map((text) => text.toLowerCase());
  return !keys.some((key) => texts.some((text) => text.includes(key)));
}}"""


@dataclass(frozen=True)
class Spec:
    """A page: where it is, its CONTRACT hooks, which must be visible, and keys it must show."""

    path: str
    hooks: tuple[str, ...]
    visible: tuple[str, ...]
    shown_keys: tuple[str, ...]


SPECS = {
    "citizen": Spec(
        "/",
        (
            "[data-testid=start-video-call]",
            "[data-testid=start-text-call]",
            "[data-testid=report-misconduct]",
            "[data-testid=call-state][data-state]",
        ),
        (
            "[data-testid=start-video-call]",
            "[data-testid=start-text-call]",
            "[data-testid=report-misconduct]",
        ),
        ("citizen.headline", "citizen.start_video", "citizen.start_text"),
    ),
    "thread": Spec(
        "/thread",
        (
            "[data-testid=thread][data-state]",
            "[data-testid=message-input]",
            "[data-testid=message-attach]",
            "[data-testid=message-send]",
            "[data-testid=message-log]",
        ),
        ("[data-testid=message-input]", "[data-testid=message-send]"),
        ("thread.heading", "thread.send", "thread.attach"),
    ),
    "map": Spec(
        "/map",
        (
            "[data-testid=new-report]",
            "[data-testid=report-category]",
            "[data-testid=report-description]",
            "[data-testid=report-submit]",
            "[data-testid=report-count]",
        ),
        ("[data-testid=new-report]", "[data-testid=report-count]"),
        ("map.not_emergency", "map.reports_shown"),
    ),
    "stats": Spec(
        "/stats",
        ("[data-testid=stats-total]",),
        ("[data-testid=stats-total]",),
        ("stats.title", "stats.total"),
    ),
    "login": Spec(
        "/login",
        (
            "input[name=username]",
            "input[name=password]",
            "input[name=totp]",
            "[data-testid=login-submit]",
        ),
        (
            "input[name=username]",
            "input[name=password]",
            "input[name=totp]",
            "[data-testid=login-submit]",
        ),
        ("login.title", "login.submit"),
    ),
    "console": Spec(
        "/console",
        (
            "[data-testid=remote-video]",
            "[data-testid=caller-location][data-lat][data-lon][data-accuracy]",
            "[data-testid=chat-input]",
            "[data-testid=chat-send]",
            "[data-testid=chat-log]",
            "[data-testid=take-snapshot]",
            "[data-testid=transfer-call]",
            "[data-testid=end-call]",
            "[data-testid=disposition]",
            "[data-testid=accept-call]",
        ),
        ("[data-testid=accept-call]", "[data-testid=chat-input]", "[data-testid=end-call]"),
        ("console.accept", "console.queue", "console.end"),
    ),
    "wall": Spec(
        "/wall",
        ("[data-testid=queue-count][data-channel=police]",),
        ("[data-testid=queue-count][data-channel=police]",),
        ("wall.waiting", "wall.live_calls"),
    ),
    "admin": Spec(
        "/admin",
        (
            "[data-testid=admin-add-user]",
            "[data-testid=admin-user-row][data-username=pagesadmin]",
        ),
        ("[data-testid=admin-add-user]",),
        ("admin.add_user", "admin.users"),
    ),
    "security": Spec(
        "/security",
        (
            "[data-testid=nav-security]",
            "[data-testid=access-changes]",
            # The officer's own account, made by `users add`: the unit sees who made it.
            "[data-testid=access-change][data-actor=cli][data-attempt=create]"
            "[data-username=pagessecurity][data-outcome=done]",
            "[data-testid=security-add-officer]",
            "[data-testid=security-officer-row][data-username=pagessecurity]",
        ),
        ("[data-testid=access-changes]", "[data-testid=security-add-officer]"),
        ("security.title", "security.changes"),
    ),
}
# Staff accounts made with `python -m server users add`; names without dots, so a user name can
# never look like a catalogue key.
STAFF_USERS = {
    "console": "pagesoperator",
    "wall": "pagessupervisor",
    "admin": "pagesadmin",
    "security": "pagessecurity",
}
STAFF_ROLES = {
    "console": "operator",
    "wall": "supervisor",
    "admin": "admin",
    "security": "internal_security",
}
# Where a sign-in lands, when it is not the page itself.
STAFF_HOMES = {"security": "/console"}


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(live_server: RunningServer) -> None:
    """Start the module's server before Chromium: in scale-out mode its start resets PostgreSQL
    with ``asyncio.run()``, which fails once sync Playwright's event loop runs in this thread."""


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, str]]:
    """Each language's key -> text, read as the server reads them."""
    result: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        with (TRANSLATIONS / f"{lang}.po").open("rb") as handle:
            catalog = read_po(handle, locale=lang)
        result[lang] = {str(m.id): str(m.string) for m in catalog if m.id and m.string}
    assert len(result["en"]) > 50, "the English catalogue is nearly empty"
    return result


@pytest.fixture(scope="module")
def staff_contexts(
    browser: Browser, live_server: RunningServer
) -> Iterator[dict[str, BrowserContext]]:
    """One signed-in 1920 px context per staff page, reused across languages."""
    contexts: dict[str, BrowserContext] = {}
    try:
        for page_name, username in STAFF_USERS.items():
            secret = add_staff(live_server, username, STAFF_ROLES[page_name])
            context = browser.new_context(viewport=WALL_SCREEN)
            context.set_default_timeout(TIMEOUT_MS)
            contexts[page_name] = context
            page = context.new_page()
            home = STAFF_HOMES.get(page_name, SPECS[page_name].path)
            sign_in(page, live_server.base, username, secret, home)
            page.close()
        yield contexts
    finally:
        for context in contexts.values():
            context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def page_texts(page: Page) -> list[str]:
    texts: list[str] = page.evaluate(PAGE_TEXTS_JS)
    return texts


def visible_text(page: Page) -> str:
    """The body's rendered text, whitespace collapsed and case folded (CSS may upper-case it)."""
    return " ".join(page.locator("body").inner_text().split()).casefold()


def open_in(page: Page, url: str, lang: str, keys: list[str]) -> None:
    """Open ``url`` in ``lang`` and give its script time to replace what it renders."""
    response = page.goto(f"{url}?lang={lang}")
    assert response is not None
    assert response.status == 200, f"{url}?lang={lang} answered {response.status}"
    expect(page.locator("html")).to_have_attribute("lang", lang)
    # On a timeout check_page names the keys still shown.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(NO_KEY_SHOWN_JS, arg=keys, timeout=SETTLE_MS)


def check_page(
    page: Page, base: str, spec: Spec, lang: str, catalogues: dict[str, dict[str, str]]
) -> None:
    """The page in ``lang``: translated, no key shown, every CONTRACT hook in place."""
    keys = [key.lower() for key in catalogues["en"]]
    english = ""
    if lang != "en":
        open_in(page, f"{base}{spec.path}", "en", keys)
        english = visible_text(page)
    open_in(page, f"{base}{spec.path}", lang, keys)

    texts = [text.lower() for text in page_texts(page)]
    leaked = sorted(key for key in keys if any(key in text for text in texts))
    assert not leaked, f"{spec.path}?lang={lang} shows untranslated keys: {leaked}"

    shown = visible_text(page)
    for key in spec.shown_keys:
        text = catalogues[lang].get(key)
        assert text, f"{lang}.po has no text for {key}"
        wanted = " ".join(text.format_map(_Blank()).split()).casefold()
        assert wanted in shown, f"{spec.path}?lang={lang} does not show {key} = {text!r}"
        if lang != "en":
            assert text != catalogues["en"][key], f"{lang}.po copies the English text of {key}"
    if lang == "kk":
        copied = [k for k in spec.shown_keys if catalogues["kk"][k] == catalogues["ru"][k]]
        assert not copied, f"kk.po copies the Russian text of {copied}"
    if lang != "en":
        assert shown != english, f"{spec.path}?lang={lang} shows the same text as English"

    for selector in spec.hooks:
        expect(page.locator(selector).first, f"{spec.path}: no {selector}").to_be_attached()
    for selector in spec.visible:
        expect(page.locator(selector).first, f"{spec.path}: {selector} hidden").to_be_visible()


class _Blank(dict[str, str]):
    """Fills a text's {placeholders} with nothing, for finding the rest of it on the page."""

    def __missing__(self, key: str) -> str:
        return ""


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport."""
    width: int = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


@pytest.mark.parametrize("lang", LANGUAGES)
def test_citizen_page_on_a_phone(
    lang: str,
    phone: BrowserContext,
    live_server: RunningServer,
    catalogues: dict[str, dict[str, str]],
    artifacts: Path,
) -> None:
    page = phone.new_page()
    check_page(page, live_server.base, SPECS["citizen"], lang, catalogues)
    expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "idle")

    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the citizen page is {width} px wide on a 360 px phone"
    box = page.get_by_test_id("start-video-call").bounding_box()
    assert box is not None
    assert box["height"] >= MIN_TOUCH_TARGET_PX, f"the video-call button is {box['height']} px tall"
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"], "the video-call button is cut off"
    page.screenshot(path=str(artifacts / f"citizen-360-{lang}.png"), full_page=True)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", ["map", "stats", "login", "thread"])
def test_public_page_on_a_phone(
    name: str,
    lang: str,
    phone: BrowserContext,
    live_server: RunningServer,
    catalogues: dict[str, dict[str, str]],
    artifacts: Path,
) -> None:
    page = phone.new_page()
    check_page(page, live_server.base, SPECS[name], lang, catalogues)
    overflow = horizontal_overflow(page)
    assert overflow <= 0, f"{name}?lang={lang} is {overflow} px wider than a 360 px phone"
    if (name, lang) in {("map", "en"), ("stats", "en"), ("login", "ru")}:
        page.screenshot(path=str(artifacts / f"{name}-360-{lang}.png"), full_page=True)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", ["console", "wall", "admin", "security"])
def test_staff_page_on_a_wide_screen(
    name: str,
    lang: str,
    staff_contexts: dict[str, BrowserContext],
    live_server: RunningServer,
    catalogues: dict[str, dict[str, str]],
    artifacts: Path,
) -> None:
    page = staff_contexts[name].new_page()
    try:
        check_page(page, live_server.base, SPECS[name], lang, catalogues)
        expect(page.get_by_test_id("whoami-username")).to_have_text(STAFF_USERS[name])
        overflow = horizontal_overflow(page)
        assert overflow <= 0, f"{name} is {overflow} px wider than a 1920 px screen"
        if lang == "en":
            page.screenshot(path=str(artifacts / f"{name}-1920-en.png"), full_page=True)
    finally:
        page.close()
