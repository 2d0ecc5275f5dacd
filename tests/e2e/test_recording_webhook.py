"""``recording.saved`` notices posted to a real local receiver: signed, retried, bounded."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import serve_app, url_of
from vobiz_stream.core.signatures import sign_v3
from vobiz_stream.recordings.notify import SavedNotices


async def test_a_notice_is_retried_until_taken_and_signed(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.Response(status=500 if len(seen) < 3 else 200)

    receiver = await serve_app([web.post("/saved", flaky)])
    url = url_of(receiver) + "saved"
    notices = SavedNotices(url, "token", first_retry=0.01)
    try:
        with caplog.at_level(logging.INFO, "vobiz_stream.recordings"):
            notices.post({"event": "recording.saved", "call_id": "c1"})
            await notices.close(grace=10.0)
    finally:
        await receiver.cleanup()
    assert len(seen) == 3 and notices.posted == 1 and notices.failed == 0
    for headers, body in seen:
        assert orjson.loads(body) == {"event": "recording.saved", "call_id": "c1"}
        nonce = headers["X-Vobiz-Signature-V3-Nonce"]
        assert headers["X-Vobiz-Signature-V3"] == sign_v3("token", url, nonce)
    assert len({headers["X-Vobiz-Signature-V3-Nonce"] for headers, _ in seen}) == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_receiver_that_always_fails_gets_bounded_attempts_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0

    async def broken(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        return web.Response(status=503)

    receiver = await serve_app([web.post("/saved", broken)])
    notices = SavedNotices(url_of(receiver) + "saved", None, attempts=3, first_retry=0.01)
    try:
        with caplog.at_level(logging.INFO, "vobiz_stream.recordings"):
            notices.post({"n": 1})
            notices.post({"n": 2})
            await notices.close(grace=10.0)
    finally:
        await receiver.cleanup()
    assert attempts == 6 and notices.failed == 2 and notices.posted == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "answered 503" in errors[0] and "after 3 attempts" in errors[0]


async def test_past_max_pending_notices_are_dropped_and_counted() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    receiver = await serve_app([web.post("/saved", slow)])
    notices = SavedNotices(url_of(receiver) + "saved", None, max_pending=2)
    try:
        for number in range(5):
            notices.post({"n": number})
        assert notices.dropped == 3
        release.set()
        await notices.close(grace=10.0)
    finally:
        await receiver.cleanup()
    assert notices.posted == 2
