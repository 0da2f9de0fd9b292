"""The three-word code of an answered call: the same words reach the caller's page and the
operator's console, in the caller's language, from a keyed hash nobody can work out from the
call's id; none while the call waits."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlmodel import col, select

from config.settings import LANGUAGES
from server.core.clock import FrozenClock
from server.db.models import User
from server.http.keys import SERVICES_KEY
from server.security.call_code import (
    WORD_LISTS,
    WORDS_PER_LIST,
    load_word_lists,
    verification_code,
)
from server.security.pseudonyms import Pseudonyms
from tests.sockets import citizen, console, start_call
from tests.staff import Client, add_account, another_browser, page_csrf, sign_in

KEY = b"k" * 32


def test_each_language_has_its_own_list_of_different_short_words() -> None:
    assert set(WORD_LISTS) == set(LANGUAGES)
    for language, words in WORD_LISTS.items():
        assert len(words) == WORDS_PER_LIST == len(set(words)), language
        # Short enough to read aloud and type into a phone's notes; one word, no spaces.
        assert all(0 < len(w) <= 12 and " " not in w for w in words), language
    # The lists are not one list: a caller hears words of their own language.
    assert WORD_LISTS["ru"][0] != WORD_LISTS["en"][0]
    assert WORD_LISTS["pl"] != WORD_LISTS["en"]


def test_a_list_that_repeats_a_word_is_refused(tmp_path: Path) -> None:
    for language in LANGUAGES:
        words = list(WORD_LISTS[language])
        if language == "kk":
            words[1] = words[0]
        (tmp_path / f"{language}.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="kk"):
        load_word_lists(tmp_path)


def test_the_code_is_three_different_words_the_same_on_every_node() -> None:
    call_id = str(uuid.uuid4())
    here, there = Pseudonyms(KEY), Pseudonyms(KEY)
    for language in LANGUAGES:
        words = verification_code(here, call_id, language)
        assert len(words) == 3 == len(set(words))
        assert set(words) <= set(WORD_LISTS[language])
        assert verification_code(there, call_id, language) == words
    # The same positions in every language: one call's words mean the same things.
    positions = {
        tuple(WORD_LISTS[lang].index(w) for w in verification_code(here, call_id, lang))
        for lang in LANGUAGES
    }
    assert len(positions) == 1


def test_the_code_needs_the_key_not_only_the_call_id() -> None:
    """Whoever knows a call's id (it is in a link, a receipt) but not the deployment's key
    cannot work out its words: another key gives other words."""
    ids = [str(uuid.uuid4()) for _ in range(50)]
    ours = [verification_code(Pseudonyms(KEY), i, "en") for i in ids]
    theirs = [verification_code(Pseudonyms(b"x" * 32), i, "en") for i in ids]
    assert sum(a == b for a, b in zip(ours, theirs, strict=True)) == 0
    # And calls do not share a code: 50 calls, 50 codes.
    assert len({tuple(c) for c in ours}) == len(ids)


async def test_the_caller_and_the_console_get_the_same_words_once_answered(
    client: Client, operator: Client
) -> None:
    call = await start_call(client, language="ru")
    async with console(operator) as desk, citizen(client, call["token"]) as phone:
        waiting = await phone.call("resume", {"last_seq": 0})
        assert waiting["call"]["verification_code"] == []
        queued = (await desk.call("queue", {}))["calls"]
        assert [c["verification_code"] for c in queued] == [[]]

        accepted = await desk.call("accept", {"call_id": call["call_id"]})
        words = accepted["call"]["verification_code"]
        assert len(words) == 3
        assert set(words) <= set(WORD_LISTS["ru"])
        answered = await phone.next_event("call.state", state="answered")
        assert answered["verification_code"] == words
        # After a reload: the page resumes and gets them again; so does the console's join.
        assert (await phone.call("resume", {"last_seq": 0}))["call"]["verification_code"] == words
        joined = await desk.call("join", {"call_id": call["call_id"], "last_seq": 0})
        assert joined["call"]["verification_code"] == words

        ended = await desk.call(
            "end_call", {"call_id": call["call_id"], "disposition": "advice_given"}
        )
        assert ended["ok"]
        over = await phone.next_event("call.state", state="ended")
        assert over["verification_code"] == []


async def test_the_caller_is_shown_the_operators_display_name_and_badge(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """Set on /admin (a form, with the page's CSRF token); a badge that is not one is refused
    and changes nothing."""
    admin = await another_browser(client)
    await sign_in(admin, await add_account(client, "root", "admin"), clock)
    olga = await _user_id(client, "olga")
    csrf = await page_csrf(admin, "/admin")
    refused = await admin.post(
        f"/admin/users/{olga}/identity",
        data={"csrf_token": csrf, "display_name": "Olga", "badge": "<b>1</b>"},
        allow_redirects=False,
    )
    assert refused.status == 400
    assert 'data-code="invalid_identity"' in await refused.text()
    assert (await _user(client, olga)).badge is None
    saved = await admin.post(
        f"/admin/users/{olga}/identity",
        data={"csrf_token": csrf, "display_name": "  Olga   Nowak ", "badge": "PL-4521"},
        allow_redirects=False,
    )
    assert saved.status == 303
    await admin.close()

    call = await start_call(client)
    async with console(operator) as desk, citizen(client, call["token"]) as phone:
        accepted = await desk.call("accept", {"call_id": call["call_id"]})
        assert accepted["call"]["operator_name"] == "Olga Nowak"
        answered = await phone.next_event("call.state", state="answered")
        assert (answered["operator_name"], answered["operator_badge"]) == ("Olga Nowak", "PL-4521")
        resumed = (await phone.call("resume", {"last_seq": 0}))["call"]
        assert (resumed["operator_name"], resumed["operator_badge"]) == ("Olga Nowak", "PL-4521")


async def test_without_a_display_name_the_caller_is_shown_the_username(
    client: Client, operator: Client
) -> None:
    call = await start_call(client)
    async with console(operator) as desk, citizen(client, call["token"]) as phone:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
        answered = await phone.next_event("call.state", state="answered")
        assert (answered["operator_name"], answered["operator_badge"]) == ("olga", None)


async def _user_id(client: Client, username: str) -> int:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        found = (await session.exec(select(User).where(col(User.username) == username))).one()
    assert found.id is not None
    return found.id


async def _user(client: Client, user_id: int) -> User:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        found = await session.get(User, user_id)
    assert found is not None
    return found
