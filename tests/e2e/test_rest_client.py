"""The async REST client over loopback: its whole surface against the local carrier, its retries
against a real flaky server, and its requests side by side with Vobiz's own SDK's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.e2e.carrier_support import AUTH_ID, AUTH_TOKEN, StartCarrier, StreamApp, eventually
from tests.e2e.conftest import serve_app, url_of
from vobiz_stream.rest import RetryPolicy, VobizApiError, VobizClient

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0)


async def test_the_whole_surface_against_the_local_carrier(start_carrier: StartCarrier) -> None:
    carrier = await start_carrier()
    app = StreamApp(answer='<Response><Wait length="20"/></Response>')
    runner = await app.serve()
    try:
        async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=carrier.base) as vobiz:
            placed = await vobiz.place_call("+911", "+912", app.url + "answer")
            call_uuid = placed.request_uuid
            assert placed.message == "call fired" and placed.api_id
            assert await vobiz.live_calls() == (call_uuid,)
            started = await vobiz.start_stream(
                call_uuid,
                app.url.replace("http", "ws") + "stream",
                bidirectional=True,
                content_type="audio/x-l16;rate=8000",
            )
            await eventually(lambda: bool(app.of("media")))
            live = await vobiz.get_live_call(call_uuid)
            assert (live.call_status, live.from_number, live.to_number) == (
                "in-progress",
                "+911",
                "+912",
            )
            assert live.stream_id == started.stream_id
            assert live.session_start is not None and live.direction == "outbound"
            await vobiz.send_digits(call_uuid, "9")
            await eventually(lambda: [m["dtmf"]["digit"] for m in app.of("dtmf")] == ["9"])
            page = await vobiz.list_streams(call_uuid)
            assert page.meta.count == 1 and page.meta.limit == 20 and page.meta.offset == 0
            [stream] = page.streams
            assert (stream.stream_id, stream.status, stream.bidirectional) == (
                started.stream_id, "in-progress", True,
            )  # fmt: skip
            assert (await vobiz.get_stream(call_uuid, started.stream_id)).service_url == (
                app.url.replace("http", "ws") + "stream"
            )
            await vobiz.stop_stream(call_uuid, started.stream_id)
            await eventually(lambda: app.closed == 1)
            await vobiz.stop_streams(call_uuid)  # nothing left: still fine
            stopped = await vobiz.get_stream(call_uuid, started.stream_id)
            assert stopped.status == "stopped"
            assert stopped.start_time is not None and stopped.end_time is not None
            await vobiz.hang_up(call_uuid)
            assert await vobiz.live_calls() == ()
            with pytest.raises(VobizApiError) as refused:
                await vobiz.get_live_call(call_uuid)
            assert refused.value.status == 404 and refused.value.attempts == 1
            assert f"no live call {call_uuid} on this carrier" in str(refused.value)
    finally:
        await runner.cleanup()


async def test_a_wrong_token_fails_once_and_never_shows_the_token(
    start_carrier: StartCarrier,
) -> None:
    carrier = await start_carrier()
    async with VobizClient(AUTH_ID, "secret-wrong-token", base_url=carrier.base) as vobiz:
        with pytest.raises(VobizApiError) as refused:
            await vobiz.live_calls()
    assert refused.value.status == 401 and refused.value.attempts == 1
    assert "secret-wrong-token" not in str(refused.value)


async def test_429_from_the_carrier_is_retried_after_its_retry_after(
    start_carrier: StartCarrier,
) -> None:
    carrier = await start_carrier(max_calls=1)
    app = StreamApp()
    runner = await app.serve()
    try:
        async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=carrier.base, retry=FAST) as vobiz:
            first = await vobiz.place_call("+911", "+912", app.url + "answer")

            async def hang_up_soon() -> None:
                await asyncio.sleep(0.3)
                await vobiz.hang_up(first.request_uuid)

            hanging = asyncio.create_task(hang_up_soon())
            began = time.monotonic()
            second = await vobiz.place_call("+911", "+912", app.url + "answer")
            waited = time.monotonic() - began
            await hanging
            assert second.request_uuid != first.request_uuid
            assert waited >= 0.95  # the carrier's Retry-After: 1, not the 10 ms backoff
            await vobiz.hang_up(second.request_uuid)
    finally:
        await runner.cleanup()


class Flaky:
    """A server that answers each path with the statuses queued for it, then 200."""

    def __init__(self, script: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self.script = script
        self.requests: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        queued = self.script.get(f"{request.method} {request.path}", [])
        if queued:
            status, headers = queued.pop(0)
            body = orjson.dumps({"api_id": "a1", "error": f"flaky {status}"})
            return web.Response(
                body=body, status=status, headers=headers, content_type="application/json"
            )
        body = orjson.dumps({"api_id": "a2", "calls": [], "request_uuid": "r1"})
        return web.Response(body=body, content_type="application/json")


async def serve_flaky(flaky: Flaky) -> tuple[web.AppRunner, str]:
    runner = await serve_app([web.route("*", "/{tail:.*}", flaky.handle)])
    return runner, url_of(runner) + "api/v1"


LIVE = f"/api/v1/Account/{AUTH_ID}/Call/"


async def test_5xx_and_429_retries_are_bounded_and_spare_a_post_that_may_have_acted() -> None:
    flaky = Flaky(
        {
            f"GET {LIVE}": [(500, {}), (502, {}), (503, {"Retry-After": "0"})],
            f"POST {LIVE}": [(503, {}), (429, {"Retry-After": "0.05"}), (500, {})],
            f"DELETE {LIVE}x/": [(503, {})] * 10,
            f"DELETE {LIVE}y/": [(429, {"Retry-After": "60"})],
        }
    )
    runner, base = await serve_flaky(flaky)
    try:
        async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=base, retry=FAST) as vobiz:
            assert await vobiz.live_calls() == ()  # 500, 502, 503 then 200: 4 tries
            with pytest.raises(VobizApiError) as post:
                await vobiz.place_call("+911", "+912", "http://app/answer")
            with pytest.raises(VobizApiError) as always:
                await vobiz.hang_up("x")
            with pytest.raises(VobizApiError) as too_long:
                await vobiz.hang_up("y")
    finally:
        await runner.cleanup()
    tries: dict[tuple[str, str], int] = {}
    for request in flaky.requests:
        tries[request] = tries.get(request, 0) + 1
    assert tries[("GET", LIVE)] == 4
    # 503 and 429 are retried, then the 500 is not: the call may have been placed.
    assert tries[("POST", LIVE)] == 3
    assert (post.value.status, post.value.attempts) == (500, 3)
    assert tries[("DELETE", LIVE + "x/")] == 4  # bounded by the policy
    assert (always.value.status, always.value.attempts) == (503, 4)
    assert "flaky 503" in str(always.value)
    assert tries[("DELETE", LIVE + "y/")] == 1  # asked to wait a minute: the caller decides
    assert too_long.value.retry_after == 60.0


async def test_a_closed_port_is_retried_even_for_a_post_then_named() -> None:
    runner = await serve_app([])
    base = url_of(runner) + "api/v1"
    await runner.cleanup()  # nothing listens there now
    async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=base, retry=FAST) as vobiz:
        with pytest.raises(VobizApiError) as failed:
            await vobiz.place_call("+911", "+912", "http://app/answer")
    assert (failed.value.status, failed.value.attempts) == (0, 4)
    assert "no answer" in str(failed.value)


async def test_requests_have_the_shapes_of_the_vobiz_sdk() -> None:
    """The SDK and the client, asked the same, send the same method, path, query, body fields
    and auth headers."""
    import vobiz  # noqa: PLC0415

    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        raw = await request.read()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": orjson.loads(raw) if raw else None,
                "auth": (request.headers.get("X-Auth-ID"), request.headers.get("X-Auth-Token")),
            }
        )
        body = orjson.dumps({"api_id": "a", "request_uuid": "r", "calls": []})
        return web.Response(body=body, content_type="application/json")

    runner = await serve_app([web.route("*", "/{tail:.*}", record)])
    base = url_of(runner) + "api/v1"
    sdk = vobiz.RestClient(auth_id=AUTH_ID, auth_token=AUTH_TOKEN)
    sdk.base_uri = base + "/Account"
    try:
        await asyncio.to_thread(
            sdk.calls.create, "+911", "+912", "http://a/x", answer_method="POST"
        )
        await asyncio.to_thread(sdk.calls.list_live)
        await asyncio.to_thread(sdk.calls.get_live, "c1")
        await asyncio.to_thread(sdk.calls.send_digits, "c1", "12", "aleg")
        await asyncio.to_thread(sdk.calls.hangup, "c1")
        by_sdk = list(seen)
        seen.clear()
        async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=base) as vobiz:
            await vobiz.place_call("+911", "+912", "http://a/x")
            await vobiz.live_calls()
            await vobiz.get_live_call("c1")
            await vobiz.send_digits("c1", "12")
            await vobiz.hang_up("c1")
    finally:
        await runner.cleanup()
    assert seen == by_sdk
    assert by_sdk[0]["body"] == {
        "from": "+911", "to": "+912", "answer_url": "http://a/x", "answer_method": "POST",
    }  # fmt: skip


async def test_an_answer_over_the_cap_is_refused_unread() -> None:
    sent = 0

    async def huge(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for _ in range(512):  # 32 MiB at most, chunked: no length to refuse it by
                await response.write(b" " * 65536)
                sent += 65536
        except (ConnectionError, RuntimeError):
            pass
        return response

    runner = await serve_app([web.route("*", "/{tail:.*}", huge)])
    try:
        retry = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05)
        async with VobizClient(AUTH_ID, AUTH_TOKEN, base_url=url_of(runner), retry=retry) as vobiz:
            with pytest.raises(VobizApiError) as refused:
                await vobiz.live_calls()
    finally:
        await runner.cleanup()
    assert refused.value.status == 0 and refused.value.attempts == 2
    assert "the answer is over 1048576 bytes: not the Vobiz API" in str(refused.value)
    assert sent < 2 * 8 * 1024 * 1024  # each try stopped reading soon after 1 MiB
