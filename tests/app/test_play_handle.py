"""PlayHandle: a play's mark that a handler can await (and several can)."""

from __future__ import annotations

import asyncio

from vobiz_stream.app.play_handle import PlayHandle
from vobiz_stream.core.playback import PlayOutcome


async def test_handle_resolves_once_and_wakes_its_waiter() -> None:
    handle = PlayHandle("h")
    assert not handle.done
    assert handle.outcome is None
    assert "pending" in repr(handle)
    waiter = asyncio.ensure_future(handle.wait())
    await asyncio.sleep(0)
    assert not waiter.done()

    assert handle.resolve(PlayOutcome.CLEARED) is True
    assert await asyncio.wait_for(waiter, 1.0) is PlayOutcome.CLEARED
    assert handle.resolve(PlayOutcome.PLAYED) is False
    assert handle.outcome is PlayOutcome.CLEARED
    assert handle.done
    assert await handle is PlayOutcome.CLEARED  # awaiting after the fact returns at once
    assert "cleared" in repr(handle)


async def test_handle_awaited_directly_by_several_waiters() -> None:
    handle = PlayHandle("h")

    async def wait() -> PlayOutcome:
        return await handle

    waiters = [asyncio.ensure_future(wait()) for _ in range(3)]
    await asyncio.sleep(0)
    handle.resolve(PlayOutcome.LOST)
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1.0) == [PlayOutcome.LOST] * 3
