"""The console's live view across workers: each worker's live calls, shared through PostgreSQL
only while someone follows the feed.

A worker whose ``/api/live`` has followers sends a ``follow`` order over the workers' bus (the
:class:`~vobiz_stream.app.control_bus.PostgresControlBus`) at most every :data:`RENEW` seconds.
Every other worker that hears it publishes its live snapshot (the :data:`~.console.live.MAX_SHOWN`
oldest calls, a few events each: some kilobytes) into one row of the store's ``LIVE_TABLE`` every
:data:`~.console.live.TICK` seconds, for :data:`FOLLOWED_FOR` seconds after the last
``follow``, then deletes its row. The following worker reads the fresh rows (younger than
:data:`FRESH`, so a worker that died drops out) and merges them into its feed. Nobody follows:
no worker writes or reads anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import cast

import orjson
import psycopg

from vobiz_stream.app.console.live import MAX_SHOWN, TICK, LiveSnapshot
from vobiz_stream.app.control_bus import PostgresControlBus
from vobiz_stream.logtext import loggable
from vobiz_stream.store.postgres_schema import LIVE_TABLE

__all__ = ["FOLLOWED_FOR", "FRESH", "RENEW", "PostgresLivePeers"]

log = logging.getLogger("vobiz_stream.console")

RENEW = 1.0
"""Seconds between a followed worker's ``follow`` orders."""
FOLLOWED_FOR = 3.0
"""Seconds a worker keeps publishing after the last ``follow`` it heard."""
FRESH = 2.0
"""Snapshots older than this (seconds) are left out: their worker stopped or died."""
MAX_PEERS = 64
"""Other workers' snapshots read at most."""


class PostgresLivePeers:
    """This worker's side of the shared live view: it publishes its ``local`` snapshot while
    another worker follows, and reads the others' for its own followers."""

    def __init__(
        self, url: str, bus: PostgresControlBus, local: Callable[[], LiveSnapshot]
    ) -> None:
        self._url = url
        self._bus = bus
        self._local = local
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._db: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._followed_until = 0.0
        self._renewed_at = -RENEW
        self._publisher: asyncio.Task[None] | None = None
        self._failure_logged = False

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        if self._db is not None:
            await self._db.close()

    # -- the worker that has followers ------------------------------------------------------

    async def snapshots(self) -> list[LiveSnapshot]:
        """The other workers' fresh snapshots; asks them to publish (at most every
        :data:`RENEW` s). A database that cannot be reached gives none (logged once)."""
        now = asyncio.get_running_loop().time()
        try:
            if now - self._renewed_at >= RENEW:
                self._renewed_at = now
                await self._bus.send_order({"follow": self.worker})
            db = await self._connection()
            cursor = await db.execute(
                f"SELECT snapshot FROM {LIVE_TABLE} WHERE worker <> %s"
                " AND at > now() - make_interval(secs => %s) ORDER BY worker LIMIT %s",
                (self.worker, FRESH, MAX_PEERS),
            )
            rows = await cursor.fetchall()
        except psycopg.Error as exc:
            self._log_failure(exc)
            return []
        return [snapshot for (text,) in rows if (snapshot := _snapshot(text)) is not None]

    # -- the workers asked to publish -------------------------------------------------------

    def followed(self, worker: str) -> None:
        """Another worker's feed is followed: publish for :data:`FOLLOWED_FOR` seconds more
        (the bus calls this for each ``follow`` order)."""
        if worker == self.worker:
            return
        self._followed_until = asyncio.get_running_loop().time() + FOLLOWED_FOR
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < self._followed_until:
                try:
                    db = await self._connection()
                    await db.execute(
                        f"INSERT INTO {LIVE_TABLE} (worker, snapshot, at) VALUES (%s, %s, now())"
                        " ON CONFLICT (worker) DO UPDATE SET snapshot = EXCLUDED.snapshot,"
                        " at = EXCLUDED.at",
                        (self.worker, orjson.dumps(self._local()).decode()),
                    )
                except psycopg.Error as exc:
                    self._log_failure(exc)
                await asyncio.sleep(TICK)
            with contextlib.suppress(psycopg.Error):
                db = await self._connection()
                await db.execute(f"DELETE FROM {LIVE_TABLE} WHERE worker = %s", (self.worker,))
        finally:
            self._publisher = None

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._db is None or self._db.closed:
            self._db = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        return self._db

    def _log_failure(self, exc: psycopg.Error) -> None:
        if self._db is not None and self._db.broken:
            self._db = None  # opened again next time
        if not self._failure_logged:
            self._failure_logged = True
            log.warning(
                "live view across workers: the database failed (%s); other workers' calls are"
                " left out until it answers",
                loggable(str(exc), 200),
            )


def _snapshot(text: object) -> LiveSnapshot | None:
    """A row's snapshot, its calls cut to :data:`MAX_SHOWN`; None if it is not one (a row the
    feed cannot use is skipped, never the feed's end)."""
    with contextlib.suppress(orjson.JSONDecodeError, TypeError):
        found = orjson.loads(cast(str, text))
        if not isinstance(found, dict) or not isinstance(found.get("more"), int):
            return None
        calls = found.get("calls")
        if not isinstance(calls, list):
            return None
        found["calls"] = [
            call
            for call in calls[:MAX_SHOWN]
            if isinstance(call, dict) and isinstance(call.get("elapsed"), int | float)
        ]
        return cast(LiveSnapshot, found)
    return None
