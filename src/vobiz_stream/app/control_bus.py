"""Orders between the workers of one server over PostgreSQL's LISTEN/NOTIFY.

Every worker on a PostgreSQL call store listens on one channel; a worker asked to hang up a
call whose socket another worker holds sends the order there, and the holder carries it out.
The database the workers already share is the only thing between them: no broker. An order is a
small JSON text (``{"hangup": "<call id>"}``; NOTIFY carries up to 8000 bytes, call ids are
bounded far below). When the listening connection drops (the database restarts), it is opened
again, waiting a little longer each time up to :data:`MAX_RECONNECT_WAIT`; orders sent meanwhile
are lost, and the API's caller can send the hang-up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import orjson
import psycopg

from vobiz_stream.logtext import loggable

log = logging.getLogger("vobiz_stream.app.server")

CHANNEL = "vobiz_stream_control"
MAX_RECONNECT_WAIT = 5.0
"""Seconds between attempts to open the listening connection again, at most."""
MAX_ORDER_BYTES = 1000
"""Orders longer than this are not ours: ignored, logged once."""


class PostgresControlBus:
    """A worker's end of the channel: :meth:`send_hangup` to all, ``on_hangup`` from all."""

    def __init__(self, url: str, on_hangup: Callable[[str], object]) -> None:
        self._url = url
        self._on_hangup = on_hangup
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
        payload = orjson.dumps({"hangup": call_id}).decode()
        for attempt in range(2):  # a connection the database dropped is opened again, once
            if self._sender is None or self._sender.closed:
                self._sender = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            try:
                await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                return
            except psycopg.OperationalError:
                await self._sender.close()
                if attempt:
                    raise

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
        call_id = None
        if len(payload) <= MAX_ORDER_BYTES:
            with contextlib.suppress(orjson.JSONDecodeError):
                order = orjson.loads(payload)
                if isinstance(order, dict) and isinstance(order.get("hangup"), str):
                    call_id = order["hangup"]
        if call_id is None:
            if not self._odd_logged:
                self._odd_logged = True
                log.warning(
                    "worker orders: ignored a notice that is no order: %s", loggable(payload)
                )
            return
        self._on_hangup(call_id)
