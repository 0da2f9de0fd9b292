"""The three-word code of an answered call, against fraudsters posing as police.

The caller's page and the operator's console show the same three words; the operator reads
them aloud, so a caller phoned by someone who claims to be police and cannot say the words
on their screen knows it is not us. The words are a keyed hash of the call's id (the
deployment's pseudonym key, under a kind of its own), so nobody can work them out from the
call id, while every node of a deployment gets the same words for the same call.

Each language has its own list of 128 short, common, unambiguous words (``words/<lang>.txt``,
one a line, the same things in the same order in every language); a code is three different
words of the call's language: 128 x 127 x 126, about two million codes.
"""

from __future__ import annotations

from pathlib import Path

from config.settings import LANGUAGES
from server.security.pseudonyms import Pseudonyms

WORDS_DIR = Path(__file__).resolve().parent / "words"
WORDS_PER_LIST = 128
CODE_WORDS = 3
CODE_KIND = "verification-code"


def load_word_lists(directory: Path = WORDS_DIR) -> dict[str, tuple[str, ...]]:
    """Every language's list, checked: a list that is short, long or repeats a word would make
    codes easier to guess or to mishear."""
    lists: dict[str, tuple[str, ...]] = {}
    for language in LANGUAGES:
        lines = (directory / f"{language}.txt").read_text(encoding="utf-8").splitlines()
        words = tuple(line.strip() for line in lines if line.strip())
        if len(words) != WORDS_PER_LIST or len(set(words)) != WORDS_PER_LIST:
            raise ValueError(f"{language}: {WORDS_PER_LIST} different words needed")
        lists[language] = words
    return lists


WORD_LISTS = load_word_lists()


def code_indices(pseudonyms: Pseudonyms, call_id: str) -> tuple[int, ...]:
    """Three different positions in a list, from the call's keyed hash (two bytes each; 128
    divides 65,536, so every word is as likely)."""
    digest = bytes.fromhex(pseudonyms.of(CODE_KIND, call_id))
    chosen: list[int] = []
    for at in range(0, len(digest) - 1, 2):
        index = int.from_bytes(digest[at : at + 2], "big") % WORDS_PER_LIST
        if index not in chosen:
            chosen.append(index)
        if len(chosen) == CODE_WORDS:
            return tuple(chosen)
    raise AssertionError("a SHA-256 digest always holds three different positions")


def verification_code(pseudonyms: Pseudonyms, call_id: str, language: str) -> list[str]:
    """The call's three words in ``language`` (the call's own: the caller's)."""
    words = WORD_LISTS.get(language, WORD_LISTS["en"])
    return [words[i] for i in code_indices(pseudonyms, call_id)]
