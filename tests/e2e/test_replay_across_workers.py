"""Signed status callbacks replayed across server processes sharing one PostgreSQL call store, as
behind a balancer: a callback captured on its way to one process and sent to another is refused
there as a replay; a callback one process could not keep is accepted when the carrier retries it
on another; and while the database cannot say, a signed callback is refused with 503, then
accepted when sent again."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from tests.e2e.conftest import StartServer, free_port, serve_process
from tests.e2e.test_server_webhooks import callback
from tests.services.postgres import PostgresServer
from vobiz_stream.core.callbacks import sign_v3

TOKEN = "MAUTHTOKEN0123456789"
PUBLIC = "https://calls.example.com"
"""The address the carrier signs, the balancer's: the same whichever process gets the request."""
_NONCES = (f"{number:020d}" for number in itertools.count(7 * 10**15))


def signed(path: str = "/webhook") -> dict[str, str]:
    """V3 headers of one request to the public ``path``, with a fresh nonce."""
    nonce = next(_NONCES)
    return {
        "X-Vobiz-Signature-V3": sign_v3(TOKEN, PUBLIC + path, nonce),
        "X-Vobiz-Signature-V3-Nonce": nonce,
    }


async def post(
    client: aiohttp.ClientSession, base: str, fields: dict[str, str], headers: dict[str, str]
) -> tuple[int, str]:
    """POST a callback to the server at ``base``; its status and text."""
    async with client.post(base + "/webhook", data=fields, headers=headers) as reply:
        return reply.status, await reply.text()


def stored(url: str, call: str) -> list[str]:
    """The events of the callbacks the shared store holds for ``call``."""
    with psycopg.connect(url) as db:
        query = "SELECT event FROM status_callbacks WHERE call_uuid = %s ORDER BY id"
        return [str(row[0]) for row in db.execute(query, (call,))]


async def refusals(client: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with client.get(base + "/stats") as reply:
        counters: dict[str, Any] = (await reply.json())["status_callbacks"]
    return counters


Workers = list[tuple[str, asyncio.subprocess.Process]]


async def two_workers(url: str, tmp_path: Path, *more: str) -> Workers:
    """Two ``vobiz-stream serve`` processes on ``url`` with one auth token and public URL (and
    the flags ``more``): their base URLs and processes."""
    flags = ("--database", url, "--auth-token", TOKEN, "--public-url", PUBLIC, *more)
    workers = []
    for name in "ab":
        port = free_port()
        process = await serve_process(port, tmp_path / f"data-{name}", *flags)
        workers.append((f"http://127.0.0.1:{port}", process))
    return workers


async def stop(workers: Workers) -> list[str]:
    """Stop the workers; their logs."""
    logs = []
    for _, process in workers:
        process.terminate()
        logs.append((await asyncio.wait_for(process.communicate(), 40))[1].decode())
    return logs


async def test_a_callback_replayed_to_another_worker_is_refused(
    postgres_url: str, tmp_path: Path
) -> None:
    (on_a, _), (on_b, _) = workers = await two_workers(postgres_url, tmp_path)
    sent, headers = callback("StartStream", "replayed-call"), signed()
    try:
        async with aiohttp.ClientSession() as client:
            assert await post(client, on_a, sent, headers) == (200, "OK\n")
            for _ in range(2):  # captured on the way to A, sent to B
                status, text = await post(client, on_b, sent, headers)
                assert (status, text) == (403, "nonce already used: a replayed request\n")
            assert (await post(client, on_a, sent, headers))[0] == 403  # and to A itself
            assert (await post(client, on_b, sent, signed()))[0] == 200  # the next callback
            counted = await refusals(client, on_b), await refusals(client, on_a)
    finally:
        log_a, log_b = await stop(workers)
    assert stored(postgres_url, "replayed-call") == ["StartStream"] * 2, "the first and the next"
    assert counted[0]["refused"] == {"replayed": 2} and counted[0]["accepted"] == 1
    assert counted[1]["refused"] == {"replayed": 1} and counted[1]["accepted"] == 1
    for log in (log_a, log_b):  # the same line for a replay, whichever process saw it first
        assert "(1 replayed so far): nonce already used: a replayed request" in log, log


async def test_a_callback_one_worker_could_not_keep_is_accepted_when_retried_on_another(
    postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "data-a").mkdir()
    (tmp_path / "data-a" / "webhook-events.log").symlink_to("/dev/full")  # A's writes fail
    (on_a, _), (on_b, _) = workers = await two_workers(postgres_url, tmp_path)
    sent, headers = callback("StopStream", "retried-call"), signed()
    try:
        async with aiohttp.ClientSession() as client:
            assert (await post(client, on_a, sent, headers))[0] == 503
            assert await post(client, on_b, sent, headers) == (200, "OK\n")  # the retry
            assert (await post(client, on_a, sent, headers))[0] == 403  # now it is a replay
    finally:
        log_a, _ = await stop(workers)
    assert "cannot keep a status callback (answered 503, the carrier retries)" in log_a
    assert stored(postgres_url, "retried-call") == ["StopStream"]


async def test_an_answer_request_replayed_to_another_worker_is_refused(
    postgres_url: str, tmp_path: Path
) -> None:
    (on_a, _), (on_b, _) = workers = await two_workers(
        postgres_url, tmp_path, "--verify-answers", "true"
    )
    answer, headers = {"CallUUID": "answered-call"}, signed("/")
    try:
        async with aiohttp.ClientSession() as client:
            statuses = []
            for base in (on_a, on_b):  # answered by A, then the same request sent to B
                async with client.post(base + "/", data=answer, headers=headers) as reply:
                    statuses.append((reply.status, await reply.text()))
    finally:
        await stop(workers)
    assert statuses[0][0] == 200 and "<Stream" in statuses[0][1]
    assert statuses[1] == (403, "nonce already used: a replayed request\n")


@pytest.fixture
def start_server(start_server: StartServer) -> StartServer:
    async def start_with_token(**overrides: Any) -> Any:
        return await start_server(auth_token=TOKEN, public_url=PUBLIC, **overrides)

    return start_with_token


async def test_while_the_database_cannot_say_a_signed_callback_gets_503_then_is_accepted(
    start_server: StartServer,
    postgres_server: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = postgres_server.new_database()
    running = await start_server(database=url)
    sent, headers = callback("StartStream", "unchecked-call"), signed()
    async with aiohttp.ClientSession() as client:
        first = callback("StartStream", "first-call")
        assert (await post(client, running.base, first, signed()))[0] == 200
        postgres_server.stop()
        try:
            async with client.post(running.base + "/webhook", data=sent, headers=headers) as reply:
                assert reply.status == 503 and reply.headers["Retry-After"] == "1"
                assert "cannot tell whether this request is a replay" in await reply.text()
        finally:
            postgres_server.resume()
        for _ in range(20):  # the carrier retries it as it was, until the database answers
            status, _ = await post(client, running.base, sent, headers)
            if status != 503:
                break
            await asyncio.sleep(0.5)
        assert status == 200
        counters = await refusals(client, running.base)
    assert counters["refused"]["nonce_unchecked"] >= 1 and set(counters["refused"]) == {
        "nonce_unchecked"
    }
    assert stored(url, "unchecked-call") == ["StartStream"]
    assert "cannot claim a nonce" in caplog.text
