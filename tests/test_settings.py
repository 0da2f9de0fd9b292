"""Settings: safe defaults, and a bad value stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import Settings, SettingsError, load_settings

# One pass: no store.
pytestmark = pytest.mark.one_pass

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LIFELINE_"):
            monkeypatch.delenv(name)
    settings = Settings(DATA_DIR=tmp_path)
    assert settings.database_url == f"sqlite+aiosqlite:///{(tmp_path / 'lifeline.db').resolve()}"
    assert not settings.scale_out
    assert settings.REQUIRE_TOTP
    assert settings.ICE_SERVERS == []
    assert settings.HOST == "127.0.0.1"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "eighty", "LIFELINE_PORT"),
        ("PORT", "70000", "LIFELINE_PORT"),
        ("REQUIRE_TOTP", "maybe", "LIFELINE_REQUIRE_TOTP"),
        ("DATABASE_URL", "mysql://x/y", "LIFELINE_DATABASE_URL"),
        ("REDIS_URL", "localhost:6379", "LIFELINE_REDIS_URL"),
        ("MEDIA_ADDRESSES", "127.0.0.1,not-an-ip", "LIFELINE_MEDIA_ADDRESSES"),
        ("MEDIA_PEER_NETWORKS", "10.0.0.0/33", "LIFELINE_MEDIA_PEER_NETWORKS"),
        ("ICE_SERVERS", "[{", "LIFELINE_ICE_SERVERS"),
        ("ICE_SERVERS", '[{"urls": "http://x"}]', "LIFELINE_ICE_SERVERS"),
        ("PUBLIC_URL", "lifeline.example", "LIFELINE_PUBLIC_URL"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"LIFELINE_{name}", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected + ":")
    assert "\n" not in message


def test_lists_parse_from_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFELINE_MEDIA_ADDRESSES", "127.0.0.1, ::1")
    monkeypatch.setenv("LIFELINE_MEDIA_PEER_NETWORKS", "127.0.0.0/8,::1/128")
    monkeypatch.setenv("LIFELINE_ICE_SERVERS", '[{"urls": ["stun:127.0.0.1:3478"]}]')
    settings = load_settings()
    assert settings.MEDIA_ADDRESSES == ["127.0.0.1", "::1"]
    assert settings.MEDIA_PEER_NETWORKS == ["127.0.0.0/8", "::1/128"]
    assert settings.ICE_SERVERS == [{"urls": ["stun:127.0.0.1:3478"]}]


def test_the_cli_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "LIFELINE_PORT": "eighty", "LIFELINE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "server", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: LIFELINE_PORT: Input should be a valid integer, unable to parse string as an "
        "integer"
    ]
    assert not (tmp_path / "lifeline.db").exists(), "nothing may be created before the check"
