"""``/metrics``: real calls over loopback, read back in the Prometheus text format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Carrier, StartServer

ADMIN = "metrics-admin-token-0123456789"
FIRST_FRAME_MS = 1778574097426
"""The timestamp :meth:`Carrier.media` gives chunk 0 (its ``time_ms`` counts from there)."""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(base: str, token: str | None = ADMIN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as client,
        client.get(base + "/metrics", headers=headers) as reply,
    ):
        return reply.status, await reply.text()


async def send_live_frames(carrier: Carrier, count: int) -> None:
    """``count`` media frames stamped with the moment they are sent (due now)."""
    for chunk in range(count):
        now_ms = int(time.time() * 1000)
        await carrier.media(b"\x00\x01" * 160, chunk, time_ms=now_ms - FIRST_FRAME_MS)


async def test_metrics_count_calls_frames_latency_and_refusals(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    running = await start_server(admin_token=ADMIN, max_calls=1)
    status, _ = await scrape(running.base, token=None)
    assert status == 401  # call figures are the admin's

    carrier = await connect(running.ws_url)
    await carrier.start(call_id="metrics-call")
    await send_live_frames(carrier, 50)
    with pytest.raises(aiohttp.WSServerHandshakeError):  # over max_calls: refused, counted
        await connect(running.ws_url)

    _, page = await scrape(running.base)
    live = samples(page)
    assert live[("vobiz_active_calls", ())] == 1
    assert live[("vobiz_admission_refusals_total", (("reason", "at_capacity"),))] == 1

    await carrier.send({"event": "stop", "sequenceNumber": 60, "stop": {}})
    await carrier.socket.close()
    await running.wait_idle()

    _, page = await scrape(running.base)
    ended = samples(page)
    assert ended[("vobiz_active_calls", ())] == 0
    assert ended[("vobiz_frames_in_total", ())] == 50
    assert ended[("vobiz_frames_out_total", ())] == 0
    reasons = {
        labels: value
        for (name, labels), value in ended.items()
        if name == "vobiz_calls_ended_total"
    }
    assert sum(reasons.values()) == 1, reasons
    assert ended[("vobiz_frame_handling_seconds_count", ())] == 50
    assert ended[("vobiz_frame_handling_seconds_bucket", (("le", "+Inf"),))] == 50
    # Frames recorded as they arrived over loopback: far under a second each, on any machine.
    assert ended[("vobiz_frame_handling_seconds_bucket", (("le", "1.0"),))] == 50
    assert 0 < ended[("vobiz_frame_handling_seconds_sum", ())] < 50.0
    assert ended[("vobiz_store_queue_depth", ())] >= 0

    # A second scrape adds nothing: folds count what changed, once.
    await asyncio.sleep(0)
    _, page = await scrape(running.base)
    assert samples(page)[("vobiz_frames_in_total", ())] == 50
    assert samples(page)[("vobiz_frame_handling_seconds_count", ())] == 50


async def test_upload_hooks_show_on_the_page(start_server: StartServer) -> None:
    running = await start_server(admin_token=ADMIN)
    running.server.metrics.upload_pending(3)
    running.server.metrics.upload_failed()
    _, page = await scrape(running.base)
    found = samples(page)
    assert found[("vobiz_upload_backlog", ())] == 3
    assert found[("vobiz_upload_failures_total", ())] == 1
