"""Admission: stream tokens against an HMAC written out here and a fixed known answer, every
refusal with its status, the caps, the counters, and a log that a flood cannot flood."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.app.admission import (
    Admission,
    Admitted,
    Refusal,
    Refused,
    StreamTokens,
)
from vobiz_stream.app.config import Settings, load_settings
from vobiz_stream.cli import build_parser
from vobiz_stream.errors import ConfigError

SECRET = b"0123456789abcdef-secret"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock | None = None, ttl: int = 60) -> StreamTokens:
    return StreamTokens(SECRET, ttl, clock or Clock())


def expected_token(call_id: str, expires: int, secret: bytes = SECRET) -> str:
    """The documented format, computed here with hmac directly."""
    message = b"vobiz-stream-token/1\n" + call_id.encode() + b"\n" + str(expires).encode()
    signature = base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest())
    return f"{expires}.{signature.rstrip(b'=').decode()}"


SIGNATURE = expected_token("call-1", NOW + 60).partition(".")[2]
OTHER_SECRET = b"another-secret-16b"


def admitted(decision: Admitted | Refused) -> Admitted:
    assert isinstance(decision, Admitted), decision
    return decision


def refused(decision: Admitted | Refused) -> Refused:
    assert isinstance(decision, Refused), decision
    return decision


# --- tokens ----------------------------------------------------------------------------------


def test_issue_matches_the_documented_hmac() -> None:
    assert tokens().issue("call-42") == expected_token("call-42", NOW + 60)


def test_fixed_known_answer() -> None:
    # Derived once with:
    # printf 'vobiz-stream-token/1\ncall-42\n1767225660' \
    #   | openssl dgst -sha256 -hmac '0123456789abcdef-secret' -binary | basenc --base64url
    # (then the trailing "=" dropped)
    assert tokens().issue("call-42") == "1767225660.MXWz8c8euXqX-_l5ClWlZGiOOCSgE5F5bG0tmmkQ41c"


def test_a_fresh_token_admits_its_call_until_it_expires() -> None:
    clock = Clock()
    issuer = tokens(clock)
    token = issuer.issue("call-1")
    assert issuer.check("call-1", token) is None
    clock.now = NOW + 60  # the last second it is valid
    assert issuer.check("call-1", token) is None
    clock.now = NOW + 61
    late = issuer.check("call-1", token)
    assert late is not None and late.reason is Refusal.TOKEN_EXPIRED and late.status == 403
    assert "expired 1 s ago" in late.message


@pytest.mark.parametrize(
    ("call_id", "token", "reason", "status"),
    [
        ("call-1", None, Refusal.TOKEN_MISSING, 401),
        ("call-1", "", Refusal.TOKEN_MISSING, 401),
        ("call-1", "garbage", Refusal.TOKEN_MALFORMED, 401),
        ("call-1", f"{NOW + 60}", Refusal.TOKEN_MALFORMED, 401),
        ("call-1", expected_token("call-1", NOW + 60) + "=", Refusal.TOKEN_MALFORMED, 401),
        ("call-1", " " + expected_token("call-1", NOW + 60), Refusal.TOKEN_MALFORMED, 401),
        ("call-1", "١٢٣." + "A" * 43, Refusal.TOKEN_MALFORMED, 401),  # non-ASCII digits
        ("call-2", expected_token("call-1", NOW + 60), Refusal.TOKEN_INVALID, 403),
        ("call-1", f"{NOW + 999}.{SIGNATURE}", Refusal.TOKEN_INVALID, 403),  # expiry edited
        ("call-1", expected_token("call-1", NOW + 60, OTHER_SECRET), Refusal.TOKEN_INVALID, 403),
        ("call-1", expected_token("call-1", NOW - 1), Refusal.TOKEN_EXPIRED, 403),
    ],
)
def test_refusals(call_id: str, token: str | None, reason: Refusal, status: int) -> None:
    refusal = tokens().check(call_id, token)
    assert refusal is not None
    assert (refusal.reason, refusal.status) == (reason, status)
    assert SECRET.decode() not in refusal.message


def test_the_call_id_and_expiry_cannot_be_shifted_across_the_separator() -> None:
    issuer = tokens()
    token = issuer.issue("a\n1")
    expires, _, signature = token.partition(".")
    assert issuer.check("a", f"1{expires}.{signature}") is not None


@given(st.text(max_size=40), st.text(max_size=80))
def test_any_call_id_and_token_text_is_answered_without_raising(call_id: str, token: str) -> None:
    issuer = tokens()
    own = issuer.check(call_id, issuer.issue(call_id))
    assert own is None if call_id else own is not None and own.reason is Refusal.TOKEN_INVALID
    refusal = issuer.check(call_id, token)
    assert refusal is None or refusal.reason in set(Refusal)


def test_repr_never_shows_the_secret() -> None:
    assert SECRET.decode() not in repr(tokens())
    settings = replace(Settings(), stream_secret="s" * 20, auth_token="t" * 20)
    assert "s" * 20 not in repr(settings) and "t" * 20 not in repr(settings)


def test_a_short_secret_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        StreamTokens(b"short", 60)


# --- admission -------------------------------------------------------------------------------


def test_without_tokens_or_caps_everything_is_admitted() -> None:
    admission = Admission()
    assert admission.stream_query("c-1") == {"call": "c-1"}
    assert admission.stream_query(None) == {}
    decisions = [admitted(admission.admit({}, "10.0.0.1")) for _ in range(50)]
    assert admission.open_calls == 50
    for decision in decisions:
        decision.release()
    assert admission.open_calls == 0


def test_the_stream_query_carries_a_token_that_admits_it() -> None:
    admission = Admission(tokens())
    query = admission.stream_query("call-7")
    assert query == {"call": "call-7", "token": expected_token("call-7", NOW + 60)}
    decision = admitted(admission.admit(query, "10.0.0.1"))
    assert decision.call_id == "call-7"
    assert (
        refused(admission.admit({"call": "call-8", "token": query["token"]}, "10.0.0.1")).status
        == 403
    )
    assert refused(admission.admit({"call": "call-7"}, "10.0.0.1")).status == 401


def test_an_answer_without_a_call_id_gets_a_url_that_admits_nothing() -> None:
    admission = Admission(tokens())
    assert admission.stream_query(None) == {}
    assert refused(admission.admit({}, "10.0.0.1")).reason is Refusal.TOKEN_MISSING
    no_call = {"token": tokens().issue("")}  # as an earlier version served: refused too
    assert refused(admission.admit(no_call, "10.0.0.1")).reason is Refusal.TOKEN_INVALID


def test_a_start_of_another_call_is_refused_counted_and_logged_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admission = Admission(tokens())
    held = admitted(admission.admit(admission.stream_query("c-1"), "10.0.0.1"))
    assert held.bound and held.call_id == "c-1"
    assert not admitted(Admission().admit({"call": "c-1"}, "10.0.0.1")).bound  # no tokens
    with caplog.at_level(logging.WARNING, logger="vobiz_stream.app.admission"):
        refusal = admission.refuse_start(held, "c-2\nforged line")
    assert refusal.reason is Refusal.CALL_MISMATCH
    assert admission.counters()["refused"]["call_mismatch"] == 1  # type: ignore[index]
    [record] = caplog.records
    assert "\n" not in record.getMessage() and "c-2\\x0aforged line" in record.getMessage()


def test_the_cap_refuses_with_503_and_frees_on_release() -> None:
    admission = Admission(max_calls=2)
    first = admitted(admission.admit({}, "10.0.0.1"))
    admitted(admission.admit({}, "10.0.0.2"))
    third = refused(admission.admit({}, "10.0.0.3"))
    assert (third.reason, third.status) == (Refusal.AT_CAPACITY, 503)
    first.release()
    first.release()  # a second release changes nothing
    assert admission.open_calls == 1
    admitted(admission.admit({}, "10.0.0.3"))
    assert refused(admission.admit({}, "10.0.0.4")).status == 503


def test_the_per_ip_cap_refuses_with_429_per_address() -> None:
    admission = Admission(max_calls_per_ip=2)
    one = [admitted(admission.admit({}, "10.0.0.1")) for _ in range(2)]
    denied = refused(admission.admit({}, "10.0.0.1"))
    assert (denied.reason, denied.status) == (Refusal.PEER_LIMIT, 429)
    assert "10.0.0.1" in denied.message
    admitted(admission.admit({}, "10.0.0.2"))  # another address is not affected
    one[0].release()
    admitted(admission.admit({}, "10.0.0.1"))


def test_tokens_are_checked_before_capacity() -> None:
    """A socket without a token learns nothing about the load and takes no slot."""
    admission = Admission(tokens(), max_calls=1)
    admitted(admission.admit(admission.stream_query("c-1"), "10.0.0.1"))
    assert refused(admission.admit({"call": "c-2"}, "10.0.0.1")).reason is Refusal.TOKEN_MISSING
    full = refused(admission.admit(admission.stream_query("c-2"), "10.0.0.1"))
    assert full.reason is Refusal.AT_CAPACITY


def test_counters_count_every_decision_and_the_peer_table_empties() -> None:
    admission = Admission(tokens(), max_calls=1, max_calls_per_ip=1)
    held = admitted(admission.admit(admission.stream_query("c-1"), "10.0.0.1"))
    refused(admission.admit({"call": "c-2"}, "10.0.0.2"))
    refused(admission.admit({"call": "c-2", "token": "x"}, "10.0.0.2"))
    refused(admission.admit(admission.stream_query("c-2"), "10.0.0.2"))
    counters = admission.counters()
    assert counters == {
        "open_calls": 1,
        "max_calls": 1,
        "max_calls_per_ip": 1,
        "tokens": True,
        "admitted": 1,
        "refused": {
            "token_missing": 1,
            "token_malformed": 1,
            "token_invalid": 0,
            "token_expired": 0,
            "at_capacity": 1,
            "peer_limit": 0,
            "call_mismatch": 0,
            "start_timeout": 0,
        },
    }
    held.release()
    assert admission._per_ip == {}  # no entry left behind per address ever seen


def test_a_flood_of_refusals_logs_one_line_per_second_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monotonic = Clock(100.0)
    admission = Admission(tokens(), monotonic=monotonic)
    with caplog.at_level(logging.WARNING, logger="vobiz_stream.app.admission"):
        for _ in range(1000):
            admission.admit({"call": "c\nforged line"}, "10.0.0.9")
        monotonic.now += 1.5
        admission.admit({"call": "c"}, "10.0.0.9")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "with 401" in lines[0] and "\n" not in lines[0] and "c\\x0aforged line" in lines[0]
    assert "and 999 more" in lines[1]
    assert admission.counters()["refused"]["token_missing"] == 1001  # type: ignore[index]


# --- settings --------------------------------------------------------------------------------


def test_settings_build_the_admission(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        {"stream_secret": "x" * 16, "token_ttl": "30", "max_calls": "5", "max_calls_per_ip": "2"},
        environ={},
    )
    admission = Admission.from_settings(settings)
    assert admission.tokens is not None and admission.tokens.ttl == 30
    assert (admission.max_calls, admission.max_calls_per_ip) == (5, 2)
    assert Admission.from_settings(Settings()).tokens is None


def test_auto_secret_is_random_per_process() -> None:
    settings = replace(Settings(), stream_secret="auto")
    one, two = Admission.from_settings(settings), Admission.from_settings(settings)
    query = one.stream_query("c-1")
    assert isinstance(one.admit(query, "x"), Admitted)
    assert refused(two.admit(query, "x")).reason is Refusal.TOKEN_INVALID


def test_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {},
        environ={
            "VOBIZ_STREAM_STREAM_SECRET": "e" * 32,
            "VOBIZ_STREAM_MAX_CALLS": "7",
            "VOBIZ_STREAM_HEARTBEAT": "0",
            "VOBIZ_STREAM_SEND_TIMEOUT": "2.5",
        },
    )
    assert (settings.stream_secret, settings.max_calls) == ("e" * 32, 7)
    assert (settings.heartbeat, settings.send_timeout) == (0.0, 2.5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"stream_secret": "tooshort"}, "stream_secret has 8 characters"),
        ({"token_ttl": 0}, "token_ttl must be at least 1"),
        ({"max_calls": -1}, "max_calls must be 0"),
        ({"max_calls_per_ip": -2}, "max_calls_per_ip must be 0"),
        ({"heartbeat": -1.0}, "heartbeat must be 0"),
        ({"send_timeout": float("nan")}, "send_timeout must be 0"),
    ],
)
def test_bad_settings_are_refused(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings(flags, environ={})
    assert "tooshort" not in str(raised.value)  # a secret is never echoed


def test_serve_flags_reach_the_settings() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            *("--stream-secret", "f" * 20, "--token-ttl", "90", "--max-calls", "5"),
            *("--max-calls-per-ip", "3", "--heartbeat", "2.5", "--send-timeout", "4"),
        ]
    )
    flags = {key: value for key, value in vars(args).items() if key not in {"command", "config"}}
    settings = load_settings(flags, environ={})
    assert (settings.stream_secret, settings.token_ttl) == ("f" * 20, 90)
    assert (settings.max_calls, settings.max_calls_per_ip) == (5, 3)
    assert (settings.heartbeat, settings.send_timeout) == (2.5, 4.0)
