"""The live calls, as Server-Sent Events: ``GET /api/live``.

One task takes a snapshot of the open streams every :data:`TICK` seconds, while anyone follows,
and hands the same bytes to every follower: per call its numbers, elapsed time, the level of each
direction over the last 100 ms (:meth:`~vobiz_stream.keeper.StreamKeeper.levels`, computed here
from the recording's buffer, not per frame) and its last events. A follower that reads slowly
skips snapshots rather than queueing them; followers are capped at :data:`MAX_FOLLOWERS`.

With several workers (``serve --workers``, PostgreSQL) the feed's :class:`LivePeers` bring the
other workers' snapshots (:mod:`vobiz_stream.app.live_peers`), merged into one: every worker's
calls, still at most :data:`MAX_SHOWN`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypedDict

import orjson
from aiohttp import web

from vobiz_stream.app.console.timeline import describe_event
from vobiz_stream.logtext import loggable

if TYPE_CHECKING:
    from vobiz_stream.app.media_socket import OpenStream

__all__ = [
    "MAX_FOLLOWERS",
    "MAX_SHOWN",
    "TICK",
    "LiveCallView",
    "LiveFeed",
    "LivePeers",
    "LiveSnapshot",
    "live_snapshot",
    "merged_snapshot",
]

TICK = 0.25
MAX_SHOWN = 50
"""Live calls a snapshot shows (the oldest first); the rest are counted."""
MAX_FOLLOWERS = 20
EVENTS_SHOWN = 5


class LiveEvent(TypedDict):
    at: str
    kind: str
    text: str


class LiveCallView(TypedDict):
    call_id: str
    from_number: str | None
    to_number: str | None
    elapsed: float
    level_caller: float | None
    """dBFS of the caller's last 100 ms (None: no audio yet)."""
    level_heard: float | None
    """dBFS of what the caller heard in the last 100 ms (None: not recorded)."""
    events: list[LiveEvent]


def _dbfs(rms: float | None) -> float | None:
    if rms is None:
        return None
    return round(max(-90.0, 20 * math.log10(rms)) if rms > 0 else -90.0, 1)


def _live_call(stream: OpenStream, now: datetime) -> LiveCallView | None:
    keeper = stream.keeper
    if keeper.started_at is None:
        return None  # no start yet: nothing to show
    caller, heard = keeper.levels()
    from_number, to_number = keeper.numbers
    return {
        "call_id": loggable(keeper.call_id, 128),
        "from_number": loggable(from_number, 40) if from_number else None,
        "to_number": loggable(to_number, 40) if to_number else None,
        "elapsed": round((now - keeper.started_at).total_seconds(), 1),
        "level_caller": _dbfs(caller),
        "level_heard": _dbfs(heard),
        "events": [
            {"at": at.isoformat(), "kind": loggable(kind, 40), "text": describe_event(kind, detail)}
            for at, kind, detail in list(keeper.recent_events)[-EVENTS_SHOWN:]
        ],
    }


class LiveSnapshot(TypedDict):
    calls: list[LiveCallView]
    """At most :data:`MAX_SHOWN`, the oldest first."""
    more: int
    """Live calls left out."""
    at: str


def live_snapshot(streams: Collection[OpenStream]) -> LiveSnapshot:
    """The open streams: ``calls`` (at most :data:`MAX_SHOWN`, oldest first) and ``more``
    (how many are left out)."""
    now = datetime.now(UTC)
    started = [stream for stream in streams if stream.keeper.started_at is not None]
    # Only the calls shown are measured: with hundreds open, the rest cost a count.
    oldest = heapq.nsmallest(MAX_SHOWN, started, key=lambda stream: stream.keeper.started_at or now)
    shown = [call for stream in oldest if (call := _live_call(stream, now)) is not None]
    return {"calls": shown, "more": len(started) - len(shown), "at": now.isoformat()}


def merged_snapshot(own: LiveSnapshot, others: Sequence[LiveSnapshot]) -> LiveSnapshot:
    """``own`` and the other workers' snapshots as one: the oldest :data:`MAX_SHOWN` calls of
    all, the rest counted in ``more``."""
    calls = [call for part in (own, *others) for call in part["calls"]]
    shown = heapq.nlargest(MAX_SHOWN, calls, key=lambda call: call["elapsed"])
    more = sum(part["more"] for part in (own, *others)) + len(calls) - len(shown)
    return {"calls": shown, "more": more, "at": own["at"]}


class LivePeers(Protocol):
    """The other workers' live calls, for a feed that has followers."""

    async def snapshots(self) -> list[LiveSnapshot]:
        """Their latest snapshots (asking them to keep publishing while this feed is
        followed)."""
        ...


class LiveFeed:
    """Snapshots of ``open_streams()`` for every follower, while there are followers."""

    def __init__(self, open_streams: Callable[[], Collection[OpenStream]]) -> None:
        self._open_streams = open_streams
        self.peers: LivePeers | None = None
        """The other workers, with several on one database; None: this process alone."""
        self._followers: set[asyncio.Queue[bytes | None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while self._followers:
            own = live_snapshot(self._open_streams())
            others = await self.peers.snapshots() if self.peers is not None else []
            data = orjson.dumps(merged_snapshot(own, others) if others else own)
            for queue in self._followers:
                if queue.full():
                    queue.get_nowait()  # a slow reader gets the newest snapshot, not a backlog
                queue.put_nowait(data)
            await asyncio.sleep(TICK)
        self._ticker = None

    async def follow(self) -> AsyncIterator[bytes]:
        """Snapshots as they are taken, until :meth:`close`."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        self._followers.add(queue)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        try:
            while (data := await queue.get()) is not None:
                yield data
        finally:
            self._followers.discard(queue)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/live``: the snapshots as Server-Sent Events (``data: {json}``)."""
        if len(self._followers) >= MAX_FOLLOWERS:
            return web.Response(
                status=503,
                text=f"{MAX_FOLLOWERS} live feeds are open already; close one and retry\n",
                headers={"Retry-After": "5"},
            )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):
            async for data in self.follow():
                await response.write(b"data: " + data + b"\n\n")
        return response

    def close(self) -> None:
        """End every follower's feed (the server is stopping)."""
        for queue in self._followers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        if self._ticker is not None:
            self._ticker.cancel()
