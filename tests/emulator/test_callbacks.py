"""The emulator's status callback fields, requests and signatures (no server needed)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from vobiz_stream.core.answer import CallbackMethod
from vobiz_stream.core.callbacks import (
    SignatureCheck,
    parse_status_callback,
    sign_v2,
    sign_v3,
    verify_signature,
)
from vobiz_stream.emulator.callbacks import (
    CallbackContext,
    CallbackEvent,
    CallbackSender,
    SignatureVersion,
    callback_fields,
    callback_request,
    callback_timestamp,
    new_nonce,
)

CONTEXT = CallbackContext(
    call_uuid="call-1",
    from_number="+919876543210",
    to_number="+918045678901",
    account_id="500025",
    extra_headers=(("sessionId", "abc 123"), ("agentId", "john")),
)
MOMENT = datetime(2026, 5, 12, 9, 30, 15, 999000, tzinfo=UTC)


def test_fields_carry_the_common_set_then_the_extra_then_the_headers() -> None:
    fields = callback_fields(
        CallbackEvent.START,
        CONTEXT,
        "stream-1",
        moment=MOMENT,
        extra={"ServiceURL": "wss://app.example/s?a=1&b=2"},
    )
    assert list(fields) == [
        "Event",
        "CallUUID",
        "StreamID",
        "From",
        "To",
        "Timestamp",
        "ParentAuthID",
        "Error",
        "ServiceURL",
        "X-VH-sessionId",
        "X-VH-agentId",
    ]
    assert fields["Event"] == "StartStream"
    assert fields["Timestamp"] == "2026-05-12 09:30:15"
    assert fields["Error"] == ""
    assert fields["ParentAuthID"] == "500025"
    assert fields["X-VH-sessionId"] == "abc 123"
    # What the server's parser reads back.
    parsed = parse_status_callback(fields)
    assert parsed.service_url == "wss://app.example/s?a=1&b=2"
    assert parsed.extra_headers == {"sessionId": "abc 123", "agentId": "john"}
    assert parsed.timestamp_utc == MOMENT.replace(microsecond=0)


def test_timestamp_is_utc_and_needs_a_zone() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    assert callback_timestamp(datetime(2026, 5, 12, 15, 0, 15, tzinfo=india)) == (
        "2026-05-12 09:30:15"
    )
    with pytest.raises(ValueError, match="time zone"):
        callback_timestamp(datetime(2026, 5, 12, 9, 30, 15))


def test_nonces_are_twenty_random_digits() -> None:
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(nonce) == 20 and nonce.isdigit() for nonce in nonces)


def test_post_is_form_fields_signed_over_the_url() -> None:
    fields = callback_fields(CallbackEvent.STOP, CONTEXT, "stream-1", moment=MOMENT)
    url = "https://app.example/webhook?tenant=7"
    request = callback_request(url, CallbackMethod.POST, fields, auth_token="token", nonce="42")
    assert request.url == url
    assert request.body == fields
    assert request.headers["X-Vobiz-Signature-V3-Nonce"] == "42"
    form = tuple(fields.items())  # the SDK's reading signs the form's fields with the URL
    assert verify_signature("token", url, request.headers, form=form) is SignatureCheck.VALID
    assert verify_signature("token", url, request.headers) is SignatureCheck.INVALID
    assert verify_signature("other", url, request.headers, form=form) is SignatureCheck.INVALID


def test_v2_signs_url_and_nonce_with_its_own_headers() -> None:
    fields = callback_fields(CallbackEvent.START, CONTEXT, "stream-1", moment=MOMENT)
    url = "https://app.example/webhook"
    request = callback_request(
        url,
        CallbackMethod.POST,
        fields,
        auth_token="token",
        nonce="42",
        signature=SignatureVersion.V2,
    )
    assert set(request.headers) == {"X-Vobiz-Signature-V2", "X-Vobiz-Signature-V2-Nonce"}
    assert request.headers["X-Vobiz-Signature-V2"] == sign_v2("token", url, "42")
    assert request.headers["X-Vobiz-Signature-V2"] != sign_v3("token", url, "42")
    assert verify_signature("token", url, request.headers) is SignatureCheck.VALID
    assert verify_signature("other", url, request.headers) is SignatureCheck.INVALID


def test_get_puts_the_fields_in_the_query_and_signs_the_whole_url() -> None:
    fields = callback_fields(
        CallbackEvent.PLAYED, CONTEXT, "stream-1", moment=MOMENT, extra={"Name": "turn 3/4&x"}
    )
    request = callback_request(
        "https://app.example/webhook?tenant=7", CallbackMethod.GET, fields, auth_token="token"
    )
    assert request.body is None
    parts = urlsplit(request.url)
    assert parts.path == "/webhook"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert query.pop("tenant") == "7"
    assert query == fields  # every field, exactly, special characters included
    assert verify_signature("token", request.url, request.headers) is SignatureCheck.VALID
    base_only = "https://app.example/webhook?tenant=7"
    assert verify_signature("token", base_only, request.headers) is SignatureCheck.INVALID


def test_get_without_a_query_starts_one() -> None:
    request = callback_request(
        "http://127.0.0.1:9/webhook", CallbackMethod.GET, {"Event": "StopStream"}
    )
    assert request.url == "http://127.0.0.1:9/webhook?Event=StopStream"
    assert request.headers == {}  # no token: unsigned


def test_a_url_that_needs_encoding_is_signed_as_sent() -> None:
    request = callback_request(
        "http://127.0.0.1:9/hook path/ü", CallbackMethod.POST, {}, auth_token="t", nonce="1"
    )
    assert request.url == "http://127.0.0.1:9/hook%20path/%C3%BC"
    assert verify_signature("t", request.url, request.headers) is SignatureCheck.VALID


async def test_sender_records_failures_in_order_and_never_raises() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    heard: list[str] = []
    async with aiohttp.ClientSession() as http:
        sender = CallbackSender(
            http,
            f"http://127.0.0.1:{port}/webhook",
            CallbackMethod.POST,
            CONTEXT,
            clock=lambda: 1.5,
            timeout=2.0,
            on_sent=lambda sent: heard.append(sent.event),
        )
        sender.send(CallbackEvent.START, "s-1", extra={"ServiceURL": "ws://x/"})
        sender.send(CallbackEvent.DROPPED, "s-1", error="the app closed the socket")
        await sender.close()
        with pytest.raises(RuntimeError, match="closed"):
            sender.send(CallbackEvent.STOP, "s-1")
    assert heard == ["StartStream", "DroppedStream"]
    assert [sent.event for sent in sender.sent] == heard
    for sent in sender.sent:
        assert sent.status is None and not sent.ok
        assert sent.error is not None and "Connect" in sent.error
        assert sent.at == 1.5 and sent.stream_id == "s-1"


async def test_closing_a_sender_that_sent_nothing_returns_at_once() -> None:
    async with aiohttp.ClientSession() as http:
        sender = CallbackSender(
            http, "http://127.0.0.1:9/", CallbackMethod.POST, CONTEXT, clock=lambda: 0.0
        )
        await sender.close()
    assert sender.sent == []
