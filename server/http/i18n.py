"""One catalogue per language (gettext .po files read with Babel), for templates and scripts.

Messages are symbolic keys (``citizen.start_video``), so a missing translation shows as a key
and a test can catch it, instead of silently falling back to English.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from babel.messages.pofile import read_po

from config.settings import LANGUAGES

log = logging.getLogger("lifeline.i18n")

TRANSLATIONS_DIR = Path(__file__).resolve().parents[2] / "console_ui" / "translations"
LANG_COOKIE = "lifeline_lang"
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "kk": "Қазақша", "pl": "Polski"}


class Catalogs:
    """All four catalogues, loaded once at start-up."""

    def __init__(self, directory: Path = TRANSLATIONS_DIR) -> None:
        self.messages: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            with (directory / f"{lang}.po").open("rb") as handle:
                catalog = read_po(handle, locale=lang)
            self.messages[lang] = {
                str(message.id): str(message.string)
                for message in catalog
                if message.id and message.string
            }

    def gettext(self, lang: str, key: str, **values: object) -> str:
        text = self.messages.get(lang, {}).get(key)
        if text is None:
            log.warning("untranslated key", extra={"lang": lang, "key": key})
            text = key
        return text.format(**values) if values else text

    def missing(self, lang: str) -> set[str]:
        """Keys English has and ``lang`` lacks."""
        return set(self.messages["en"]) - set(self.messages[lang])


def negotiate(request: web.Request, default: str) -> tuple[str, bool]:
    """The page language: ``?lang=`` (remembered in a cookie), the cookie, Accept-Language.

    Returns the language and whether the cookie should be set.
    """
    asked = request.query.get("lang", "")
    if asked in LANGUAGES:
        return asked, True
    cookie = request.cookies.get(LANG_COOKIE, "")
    if cookie in LANGUAGES:
        return cookie, False
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code, False
    return default, False
