"""Waiting on an async page condition.

Playwright's ``wait_for_function`` takes an async predicate's Promise for a truthy answer and
returns at once, so a check written that way cannot fail. ``page.evaluate`` awaits the Promise:
poll with it.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page

POLL_MS = 250


def wait_true(page: Page, js: str, arg: Any, timeout_ms: float, what: str) -> float:
    """Evaluate ``js(arg)`` until it is true; returns the seconds it took. Fails after the
    timeout, naming ``what``."""
    started = time.monotonic()
    deadline = started + timeout_ms / 1000
    while not page.evaluate(js, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms / 1000:.0f} s waiting for {what}")
        page.wait_for_timeout(POLL_MS)
    return time.monotonic() - started
