"""Faults of the machine and sockets that only hold resources, against real server processes.

* sockets that never send ``start`` (and connections that never finish their HTTP request) lose
  their call slot after ``start_timeout``, on both media transports;
* one server per data folder: a second ``serve`` on the same folder stops before touching it;
* file descriptors: the soft limit is raised to the hard one, and a ``max_calls`` the limit cannot
  carry is lowered, so the call past the cap gets 503 rather than the process running out.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Carrier, free_port, read_wav
from tests.e2e.test_reliability_crash import RATE, caller_audio, leading_frames, serve
from tests.e2e.test_reliability_overload import upgrade_status
from vobiz_stream.app.fd_limits import calls_within
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.source import CallerSource

START_TIMEOUT = 1.5
SLACK = 1.5
"""Seconds past the timeout a busy machine may take to close a socket."""


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as client, client.get(url) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def stop(process: asyncio.subprocess.Process) -> str:
    """SIGTERM the server; its log."""
    if process.returncode is None:
        process.terminate()
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return stderr.decode()


def transport_flags(transport: str, media_port: int) -> tuple[str, ...]:
    if transport == "picows":
        return ("--media-transport", "picows", "--media-port", str(media_port))
    return ()


# -- idle sockets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_sockets_that_never_start_give_their_slots_back_to_real_calls(
    tmp_path: Path, transport: str
) -> None:
    port, media_port, data = free_port(), free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    socket_port = media_port if transport == "picows" else port
    stream_url = f"ws://127.0.0.1:{socket_port}/stream"
    process = await serve(
        port,
        data,
        "--max-calls",
        "20",
        "--start-timeout",
        str(START_TIMEOUT),
        *transport_flags(transport, media_port),
    )
    async with aiohttp.ClientSession() as client:
        try:
            idle = [await client.ws_connect(stream_url) for _ in range(20)]
            opened = time.monotonic()
            counters = await get_json(base + "/admission")
            assert counters["open_calls"] == 20  # every slot held by a socket that says nothing

            # Each idle socket is closed by the server, with 1008 and a reason that says why.
            closes = await asyncio.wait_for(
                asyncio.gather(*(socket.receive() for socket in idle)), START_TIMEOUT + 10
            )
            waited = time.monotonic() - opened
            for message in closes:
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert {socket.close_code for socket in idle} == {1008}
            assert "no start within 1.5 s (start_timeout)" in closes[0].extra
            assert waited < START_TIMEOUT + SLACK + 2

            counters = await get_json(base + "/admission")
            assert counters["refused"]["start_timeout"] == 20
            for _ in range(100):  # each slot comes back once its stream has ended
                if (await get_json(base + "/admission"))["open_calls"] == 0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the idle sockets' slots did not come back")

            # A real call is admitted, runs to its end and is recorded whole.
            pcm = caller_audio(1, seconds=2.0)
            report = await run_call(base + "/", CallerSource(pcm, RATE), CallOptions(speed=2.0))
            assert report.completed and report.end_reason == "hangup", report.summary()
            calls = (await get_json(base + "/calls"))["calls"]
        finally:
            log = await stop(process)
    [call] = calls  # the idle sockets left no rows: they never were calls
    [stream] = call["streams"]
    recorded = read_wav(Path(stream["recording_path"]))[0][:, 0]
    leading_frames(recorded, pcm)
    assert len(recorded) >= len(pcm)
    lines = log.splitlines()
    ended = [line for line in lines if "stream ended (start_timeout)" in line]
    assert len(ended) == 20  # each socket's end once, as any socket's
    warned = [line for line in lines if "WARNING" in line and "(start_timeout)" in line]
    assert 1 <= len(warned) <= 2, warned  # the reason: a line a second at most, not per socket


async def seconds_until_closed(port: int, request: bytes, limit: float) -> float:
    """Send ``request`` (a request cut short) on a raw TCP connection; the seconds until the
    server closes it. Fails if it is still open after ``limit`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass  # whatever the server answers, the test waits for the end of the stream
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {limit} s") from None
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return time.monotonic() - began


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_half_sent_request_headers_are_dropped_after_start_timeout(
    tmp_path: Path, transport: str
) -> None:
    port, media_port, data = free_port(), free_port(), tmp_path / "data"
    process = await serve(
        port,
        data,
        "--start-timeout",
        str(START_TIMEOUT),
        *transport_flags(transport, media_port),
    )
    try:
        target = media_port if transport == "picows" else port
        half_sent = b"GET /stream HTTP/1.1\r\nHost: x\r\n"
        waited = await seconds_until_closed(target, half_sent, START_TIMEOUT + SLACK)
        assert waited >= START_TIMEOUT - 0.2  # not before its time either
        # The server still serves everyone else.
        assert (await get_json(f"http://127.0.0.1:{port}/healthz"))["status"] == "ok"
    finally:
        await stop(process)


# -- one server per data folder -------------------------------------------------------------------


async def held_call_socket(client: aiohttp.ClientSession, base: str, call_id: str) -> Carrier:
    """A call socket that sent its start and then stays open."""
    url = base.replace("http://", "ws://") + f"/stream?call={call_id}"
    carrier = Carrier(await client.ws_connect(url))
    await carrier.start(call_id=call_id, stream_id=f"stream-{call_id}")
    return carrier


async def held_call(client: aiohttp.ClientSession, base: str, call_id: str) -> Carrier:
    """:func:`held_call_socket`, once the server lists its call as active."""
    carrier = await held_call_socket(client, base, call_id)
    for _ in range(100):
        [call] = (await get_json(base + "/calls"))["calls"] or [None]
        if call is not None and call["status"] == "active":
            return carrier
        await asyncio.sleep(0.05)
    raise AssertionError("the call's stream did not open")


async def test_a_second_server_on_the_same_data_folder_stops_and_leaves_the_first_alone(
    tmp_path: Path,
) -> None:
    first_port, second_port, data = free_port(), free_port(), tmp_path / "data"
    first_base = f"http://127.0.0.1:{first_port}"
    first = await serve(first_port, data)
    try:
        async with aiohttp.ClientSession() as client:
            carrier = await held_call(client, first_base, "held-call")

            second = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "vobiz_stream", "serve", "--port", str(second_port)),
                *("--data-dir", str(data)),
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, stderr = await asyncio.wait_for(second.communicate(), 15)
            except TimeoutError:
                second.kill()
                await second.communicate()
                raise AssertionError("the second server kept running on the data folder") from None
            assert second.returncode == 2
            message = stderr.decode()
            assert f"data folder {data} is in use by another vobiz-stream server" in message
            assert f"pid {first.pid}, port {first_port}" in message
            assert "another --data-dir" in message

            # The first server's call is still open, and still served.
            [call] = (await get_json(first_base + "/calls"))["calls"]
            assert call["status"] == "active"
            assert call["streams"][0]["ended_at"] is None
            assert not carrier.socket.closed
    finally:
        first.kill()  # SIGKILL: no clean-up runs, the kernel alone drops the lock
        await first.wait()

    # The lock died with the process: a new server starts and marks the open stream interrupted.
    third = await serve(second_port, data)
    try:
        [call] = (await get_json(f"http://127.0.0.1:{second_port}/calls"))["calls"]
    finally:
        log = await stop(third)
    assert call["status"] == "interrupted"
    assert call["streams"][0]["end_reason"] == "interrupted"
    assert "marked 1 stream(s) of a previous run as interrupted" in log


# -- file descriptors -----------------------------------------------------------------------------


def descriptor_limit(soft: int, hard: int) -> Callable[[], None]:
    """For the server's process, before it starts: at most ``soft`` open files (``hard`` once
    raised)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


def open_files_limit(pid: int) -> tuple[int, int]:
    """The soft and hard open-file limits of process ``pid``, as the kernel reports them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc/<pid>/limits")


async def test_a_cap_the_descriptor_limit_cannot_carry_is_lowered_and_the_call_past_it_gets_503(
    tmp_path: Path,
) -> None:
    port, data = free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    cap = calls_within(256)
    process = await serve(port, data, "--max-calls", "1000", preexec_fn=descriptor_limit(256, 256))
    try:
        async with aiohttp.ClientSession() as client:
            held = [await held_call_socket(client, base, f"call-{n}") for n in range(cap)]
            assert (await get_json(base + "/admission"))["open_calls"] == cap
            status, _ = await upgrade_status(f"{base.replace('http', 'ws')}/stream?call=one-more")
            assert status == 503
            counters = await get_json(base + "/admission")
            assert (counters["max_calls"], counters["refused"]["at_capacity"]) == (cap, 1)
            assert (await get_json(base + "/healthz"))["status"] == "ok"
            await asyncio.gather(*(carrier.socket.close() for carrier in held))
    finally:
        log = await stop(process)
    assert (
        f"max_calls 1000 needs about 3064 file descriptors but this process may open 256 "
        f"(ulimit -n): serving at most {cap} calls at once"
    ) in log
    assert "Too many open files" not in log
    assert len(list((data / "recordings").glob("*.wav"))) == cap  # every admitted call recorded


async def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    process = await serve(port, data, "--max-calls", "1000", preexec_fn=descriptor_limit(256, 4096))
    try:
        assert open_files_limit(process.pid) == (4096, 4096)
        counters = await get_json(f"http://127.0.0.1:{port}/admission")
        assert counters["max_calls"] == 1000  # 4096 descriptors carry it: not lowered
    finally:
        log = await stop(process)
    assert "file descriptor limit raised from 256 to 4096" in log
    assert "serving at most" not in log
