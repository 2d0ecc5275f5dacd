"""Orders between the workers of one server over PostgreSQL's LISTEN/NOTIFY.

Every worker on a PostgreSQL call store listens on one channel; a worker asked to hang up,
play into or clear a call whose socket another worker holds sends the order there, and the
holder carries it out. The database the workers already share is the only thing between them:
no broker. An order is a small JSON text (``{"hangup": "<call id>"}``, ``{"clear": ...}``,
``{"follow": "<worker>"}`` for the console's live view (:mod:`.live_peers`);
NOTIFY carries up to 8000 bytes, call ids are bounded far below). Audio to play is bigger: it
goes into a row of the store's control audio table and the order (``{"play": ..., "audio": <row>,
"checkpoint": ...}``) names the row; the holder takes the row (and deletes it). Rows nobody took
(the call ended meanwhile) are deleted after :data:`AUDIO_KEPT_SECONDS`.

When the listening connection drops (the database restarts), it is opened again, waiting a
little longer each time up to :data:`MAX_RECONNECT_WAIT`; orders sent meanwhile are lost, and
the API's caller can send the order again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Protocol

import orjson
import psycopg

from vobiz_stream.app.call_control import ApiAudio
from vobiz_stream.core.stream_events import SessionError
from vobiz_stream.logtext import loggable
from vobiz_stream.store.postgres_schema import CONTROL_AUDIO_TABLE

log = logging.getLogger("vobiz_stream.app.server")

CHANNEL = "vobiz_stream_control"
MAX_RECONNECT_WAIT = 5.0
"""Seconds between attempts to open the listening connection again, at most."""
MAX_ORDER_BYTES = 1000
"""Orders longer than this are not ours: ignored, logged once."""
AUDIO_KEPT_SECONDS = 300
"""Audio rows no worker took are deleted when the next one is sent after this long."""


class OrderTaker(Protocol):
    """What carries out the orders on this worker (:class:`~.call_control.CallControl`)."""

    def holds(self, call_id: str) -> bool: ...

    def hang_up_here(self, call_id: str) -> bool: ...

    async def play_here(self, call_id: str, audio: ApiAudio) -> bool: ...

    async def clear_here(self, call_id: str) -> bool: ...


class PostgresControlBus:
    """A worker's end of the channel: ``send_*`` to all, carried out by ``taker`` from all."""

    def __init__(self, url: str, taker: OrderTaker) -> None:
        self._url = url
        self._taker = taker
        self._carrying: set[asyncio.Task[None]] = set()
        self.on_follow: Callable[[str], None] | None = None
        """Called with the worker's name for each ``follow`` order (:mod:`.live_peers`)."""
        self._listener: asyncio.Task[None] | None = None
        self._sender: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._listening = asyncio.Event()
        self._odd_logged = False

    async def start(self) -> None:
        """Listen from now on (returns once the first LISTEN is in place)."""
        self._listener = asyncio.get_running_loop().create_task(self._listen_forever())
        await asyncio.wait_for(self._listening.wait(), 30.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._sender is not None:
            await self._sender.close()

    async def send_hangup(self, call_id: str) -> None:
        """Tell every worker (this one too) to hang up ``call_id`` if it holds its stream."""
        await self.send_order({"hangup": call_id})

    async def send_clear(self, call_id: str) -> None:
        """Tell every worker to clear what ``call_id`` plays if it holds its stream."""
        await self.send_order({"clear": call_id})

    async def send_play(self, call_id: str, audio: ApiAudio) -> None:
        """Store ``audio`` and tell every worker to play it if it holds ``call_id``."""
        await self._execute(
            f"DELETE FROM {CONTROL_AUDIO_TABLE} WHERE sent_at < now() - make_interval(secs => %s)",
            (AUDIO_KEPT_SECONDS,),
        )
        row = await self._execute(
            f"INSERT INTO {CONTROL_AUDIO_TABLE} (call_id, rate, samples)"
            " VALUES (%s, %s, %s) RETURNING id",
            (call_id, audio.rate, audio.samples),
        )
        await self.send_order({"play": call_id, "audio": row, "checkpoint": audio.checkpoint})

    async def send_order(self, order: dict[str, object]) -> None:
        """Send ``order`` (small JSON) to every worker, this one too."""
        await self._execute("SELECT pg_notify(%s, %s)", (CHANNEL, orjson.dumps(order).decode()))

    async def _execute(self, query: str, values: tuple[object, ...]) -> object:
        """Run ``query`` on the sending connection; the first value of its first row, if any.
        A connection the database dropped is opened again, once."""
        try:
            return await self._run(query, values)
        except psycopg.OperationalError:
            if self._sender is not None:
                await self._sender.close()
        return await self._run(query, values)

    async def _run(self, query: str, values: tuple[object, ...]) -> object:
        if self._sender is None or self._sender.closed:
            self._sender = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        cursor = await self._sender.execute(query, values)
        found = await cursor.fetchone() if cursor.description else None
        return None if found is None else found[0]

    async def _listen_forever(self) -> None:
        wait = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    wait = 0.1
                    async for notice in connection.notifies():
                        self._carry_out(notice.payload)
            except psycopg.OperationalError as exc:
                log.warning(
                    "worker orders: lost the database connection (%s); listening again in %.1f s",
                    loggable(str(exc), 200),
                    wait,
                )
            await asyncio.sleep(wait)
            wait = min(MAX_RECONNECT_WAIT, wait * 2)

    def _carry_out(self, payload: str) -> None:
        order: object = None
        if len(payload) <= MAX_ORDER_BYTES:
            with contextlib.suppress(orjson.JSONDecodeError):
                order = orjson.loads(payload)
        match order:
            case {"hangup": str(call_id)}:
                self._taker.hang_up_here(call_id)
            case {"follow": str(worker)}:
                if self.on_follow is not None:
                    self.on_follow(worker[:MAX_ORDER_BYTES])
            case {"clear": str(call_id)}:
                self._start(call_id, self._taker.clear_here(call_id))
            case {"play": str(call_id), "audio": int(row), "checkpoint": str(checkpoint)}:
                if self._taker.holds(call_id):
                    self._start(call_id, self._play(call_id, row, checkpoint[:MAX_ORDER_BYTES]))
            case _:
                if not self._odd_logged:
                    self._odd_logged = True
                    log.warning(
                        "worker orders: ignored a notice that is no order: %s", loggable(payload)
                    )

    def _start(self, call_id: str, work: Coroutine[object, object, object]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(call_id, work))
        self._carrying.add(task)
        task.add_done_callback(self._carrying.discard)

    async def _guarded(self, call_id: str, work: Coroutine[object, object, object]) -> None:
        try:
            await work
        except (psycopg.Error, SessionError) as exc:
            log.warning(
                "call %s: an order from another worker failed: %s",
                loggable(call_id),
                loggable(str(exc), 200),
            )

    async def _play(self, call_id: str, row: int, checkpoint: str) -> None:
        """Take the audio row (no other worker gets it) and play it into the call."""
        async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as db:
            cursor = await db.execute(
                f"DELETE FROM {CONTROL_AUDIO_TABLE}"
                " WHERE id = %s AND call_id = %s RETURNING rate, samples",
                (row, call_id),
            )
            found = await cursor.fetchone()
        if found is not None:
            rate, samples = found
            assert isinstance(rate, int) and isinstance(samples, bytes)
            await self._taker.play_here(call_id, ApiAudio(samples, rate, checkpoint))
