"""What the load generator pays per media frame: the send, and the wake-up to send it.

    .venv/bin/python bench/bench_emulator.py

Two side-by-side comparisons on this machine's event loop (uvloop when installed), in CPU
microseconds per frame of the benchmark process:

* **send**: one text frame of a live-shape 8 kHz media message (about 600 bytes) from the carrier
  side to an aiohttp server on 127.0.0.1 that reads and drops it: aiohttp's ``send_str`` (a
  coroutine per frame) against the picows :class:`~vobiz_stream.emulator.socket.CarrierSocket`
  (one synchronous call);
* **wake**: ``CALLS`` calls each due every 20 ms for ``SECONDS`` seconds, doing nothing but being
  woken: a task per call sleeping to each deadline against one
  :class:`~vobiz_stream.frame_clock.FrameClock` for all of them.

The server runs in the same process (one core does both): the send figures include its reading,
the same for both clients. Runs in about 15 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import resource
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from vobiz_stream.emulator.socket import CarrierSocket
from vobiz_stream.frame_clock import FrameClock
from vobiz_stream.loop import run

FRAMES = 20_000
CALLS = 1000
SECONDS = 4.0
STEP = 0.02
MEDIA = (
    '{"event":"media","media":{"track":"inbound","timestamp":"1732170000000","chunk":1,'
    f'"payload":"{base64.b64encode(bytes(320)).decode()}"}},"sequenceNumber":1,'
    '"streamId":"b5e0f1c2-0000-4000-8000-000000000000","extra_headers":"{}"}'
)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sink(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    async for _ in socket:
        pass
    return socket


async def per_frame_us(send_all: Callable[[], Awaitable[None]]) -> float:
    began = cpu()
    await send_all()
    return (cpu() - began) / FRAMES * 1e6


async def bench_send(url: str) -> tuple[float, float]:
    async with aiohttp.ClientSession() as http:
        socket = await http.ws_connect(url)

        async def with_aiohttp() -> None:
            for _ in range(FRAMES):
                await socket.send_str(MEDIA)
            await asyncio.sleep(0.2)  # let the server drain what is in flight

        aiohttp_us = await per_frame_us(with_aiohttp)
        await socket.close()
    carrier = await CarrierSocket.connect(url, timeout=5)

    async def with_picows() -> None:
        for n in range(FRAMES):
            carrier.send_text(MEDIA)
            if n % 50 == 0:
                await asyncio.sleep(0)  # as the clock does: the loop gets its turn
        await asyncio.sleep(0.2)

    picows_us = await per_frame_us(with_picows)
    await carrier.close()
    return aiohttp_us, picows_us


async def bench_wake() -> tuple[float, float, float, float]:
    """CPU us per wake-up and mean lateness (ms) for tasks that sleep, then for the clock."""
    frames = CALLS * int(SECONDS / STEP)
    lateness: list[float] = []

    async def sleeper(start: float) -> None:
        for n in range(int(SECONDS / STEP)):
            due = start + n * STEP
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(time.monotonic() - due)

    began, base = cpu(), time.monotonic() + 0.1
    await asyncio.gather(*(sleeper(base + i * STEP / CALLS) for i in range(CALLS)))
    tasks_us, tasks_late = (cpu() - began) / frames * 1e6, sum(lateness) / len(lateness)

    lateness.clear()
    done = asyncio.Event()
    remaining = CALLS
    clock = FrameClock.current()

    def action_for(start: float) -> Callable[[], float | None]:
        n = 0

        def action() -> float | None:
            nonlocal n, remaining
            lateness.append(time.monotonic() - (start + n * STEP))
            n += 1
            if n == int(SECONDS / STEP):
                remaining -= 1
                if not remaining:
                    done.set()
                return None
            return start + n * STEP

        return action

    began, base = cpu(), time.monotonic() + 0.1
    for i in range(CALLS):
        start = base + i * STEP / CALLS
        clock.schedule(start, action_for(start))
    await done.wait()
    clock_us, clock_late = (cpu() - began) / frames * 1e6, sum(lateness) / len(lateness)
    return tasks_us, clock_us, tasks_late * 1000, clock_late * 1000


async def main() -> None:
    application = web.Application()
    application.router.add_get("/stream", sink)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"ws://127.0.0.1:{runner.addresses[0][1]}/stream"
    aiohttp_us, picows_us = await bench_send(url)
    await runner.cleanup()
    tasks_us, clock_us, tasks_late, clock_late = await bench_wake()
    print(f"send one media frame ({len(MEDIA)} bytes), CPU us per frame incl. the server's read:")
    print(f"  aiohttp send_str      {aiohttp_us:6.1f}")
    print(f"  picows CarrierSocket  {picows_us:6.1f}   ({aiohttp_us / picows_us:.1f}x less)")
    print(f"wake {CALLS} calls every 20 ms for {SECONDS:g}s, CPU us per wake, mean lateness:")
    print(f"  a task per call       {tasks_us:6.1f}   {tasks_late:.2f} ms")
    print(f"  one FrameClock        {clock_us:6.1f}   {clock_late:.2f} ms")


if __name__ == "__main__":
    run(main())
