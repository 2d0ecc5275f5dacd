"""The admin guard's pieces: which hosts are loopback, the bearer comparison, and the start-up
lines (the guard itself is tested over real sockets in tests/e2e/test_security_access.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vobiz_stream.app.config import Settings
from vobiz_stream.app.guard import OPEN_PATHS, _bearer_matches, is_loopback, unsafe_settings

TOKEN = b"admin-token-0123456789"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.0.2.2", "10.0.0.1", "example.com", "::ffff:1.2.3.4", "*"]
)
def test_everything_else_is_beyond_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ("Bearer admin-token-0123456789", True),
        ("bearer admin-token-0123456789", True),  # the scheme is case-insensitive
        ("  Bearer   admin-token-0123456789  ", True),
        ("Basic admin-token-0123456789", False),
        ("admin-token-0123456789", False),
        ("Bearer admin-token-012345678", False),
        ("Bearer admin-token-01234567890", False),
        ("Bearer ADMIN-TOKEN-0123456789", False),
        ("Bearer ", False),
        ("", False),
        ("Bearer admin-token-0123456789\udcff", False),  # undecodable bytes, as aiohttp passes
    ],
)
def test_the_bearer_comparison(header: str, matches: bool) -> None:
    assert _bearer_matches(header, TOKEN) is matches


def test_the_open_paths_are_the_carriers_and_the_probe() -> None:
    assert sorted(OPEN_PATHS) == ["/", "/healthz", "/stream", "/webhook"]


def test_a_safe_configuration_says_nothing() -> None:
    settings = replace(Settings(), stream_secret="s" * 16, auth_token="auth", admin_token="a" * 16)
    assert unsafe_settings(settings) == []


def test_each_unsafe_setting_names_its_flag() -> None:
    lines = unsafe_settings(replace(Settings(), host="0.0.0.0"))
    assert len(lines) == 4
    for line, flag in zip(
        lines, ("--stream-secret", "--auth-token", "--admin-token", "--public-url"), strict=True
    ):
        assert flag in line
    assert "403 on 0.0.0.0" in lines[2] and lines[3].startswith("listening on 0.0.0.0")
