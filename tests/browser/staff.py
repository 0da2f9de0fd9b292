"""Staff for browser tests: accounts made with the CLI on the server's own database, and a
sign-in through the real login page with a TOTP code computed by pyotp."""

from __future__ import annotations

import subprocess
import sys

import pyotp
from playwright.sync_api import Page

from tests.browser.conftest import RunningServer

STAFF_PASSWORD = "Sturdy violet 93 harbour"


def add_staff(server: RunningServer, name: str, role: str) -> str:
    """``users add NAME --role ROLE --password-stdin``; returns the printed TOTP secret."""
    done = subprocess.run(
        [sys.executable, "-m", "server", "users", "add", name, "--role", role, "--password-stdin"],
        input=f"{STAFF_PASSWORD}\n",
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"users add {name} failed: {done.stdout}{done.stderr}"
    uris = [line[len("totp: ") :] for line in done.stdout.splitlines() if line.startswith("totp: ")]
    assert len(uris) == 1, f"users add printed no otpauth URI: {done.stdout}"
    secret: str = pyotp.parse_uri(uris[0]).secret
    return secret


def sign_in(page: Page, base: str, username: str, secret: str, home: str) -> None:
    """Sign in through /login and wait for the role's home page."""
    page.goto(f"{base}/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(STAFF_PASSWORD)
    page.locator("input[name=totp]").fill(pyotp.TOTP(secret).now())
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{base}{home}")
