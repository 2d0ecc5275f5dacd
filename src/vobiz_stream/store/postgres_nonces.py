"""The nonces of signed requests, claimed in the PostgreSQL call store by every server process
sharing it, so a signed request replayed to another process than the one that took it is refused.

Each process checks a nonce in its own memory first (:class:`~vobiz_stream.core.nonces.
NonceWindow`); one it has not seen is then claimed here, in one statement: its digest goes into
``used_nonces`` with the time it expires and the process that claimed it, unless a live row
holds it already (another process took it). The database's clock decides expiry, so the
machines' clocks need not agree. A claim also deletes the expired rows, once every
:attr:`PostgresNonceClaims.purge_every` seconds (a tenth of the window) per process, so the
table holds at most the nonces claimed in the last window and a tenth: at 166 signed requests
a second, 55 000 rows, 7 to 9 MB with its indexes.

Forgetting a nonce (its callback could not be stored, so the carrier's retry must be accepted)
deletes its row, if this process claimed it. A claim that fails (the database did not answer)
may still have landed, and is forgotten the same way. If the database cannot be reached for
that, the row is deleted once it can be (tried every :attr:`PostgresNonceClaims.FORGET_RETRY`
seconds until it expires anyway): a retry reaching another process meanwhile is refused as a
replay; one reaching this process is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from vobiz_stream.core.nonces import NONCE_WINDOW, nonce_digest
from vobiz_stream.errors import StoreError
from vobiz_stream.logtext import loggable

__all__ = ["CLAIM_TIMEOUT", "PostgresNonceClaims"]

log = logging.getLogger("vobiz_stream.store")

CLAIM_TIMEOUT = 3.0
"""Seconds a claim or a forget may take, waiting for a connection included."""

_CLAIM = """
    WITH purged AS (
        DELETE FROM used_nonces WHERE %(purge)s AND expires_at <= now() AND digest <> %(digest)s
    )
    INSERT INTO used_nonces (digest, expires_at, claimed_by)
    VALUES (%(digest)s, now() + make_interval(secs => %(window)s), %(owner)s)
    ON CONFLICT (digest) DO UPDATE
        SET expires_at = excluded.expires_at, claimed_by = excluded.claimed_by
        WHERE used_nonces.expires_at <= now()
            OR (%(again)s AND used_nonces.claimed_by = excluded.claimed_by)
    RETURNING 1
"""
"""Claim a digest: a row back when it was free (never seen, or its row expired; with ``again``,
or held by this process, which was to forget it), none when a live row holds it; with
``purge``, the expired rows of other digests go in the same statement."""

_FORGET = "DELETE FROM used_nonces WHERE digest = ANY(%s) AND claimed_by = %s"


class PostgresNonceClaims:
    """The nonces claimed by the server processes sharing the call store at ``url`` (named
    ``where`` in errors), each refused again for ``window`` seconds after it was claimed.

    A pool of up to two connections of its own, opened at the first claim, on the event loop
    (async psycopg): a claim is one round trip (0.3 ms on loopback) and waits for nothing else
    the store does.
    """

    FORGET_RETRY = 1.0
    """Seconds between two tries to delete the rows of nonces forgotten while the database was
    away."""

    def __init__(
        self,
        url: str,
        where: str,
        window: float = NONCE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.where = where
        self.window = window
        self.purge_every = window / 10
        """Seconds between two deletions of expired rows by this process."""
        self._clock = clock
        self._next_purge = clock()
        self._owner = secrets.randbits(63)
        """This process's mark on the rows it claims: it forgets only those."""
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            url, min_size=1, max_size=2, open=False, timeout=CLAIM_TIMEOUT,
            kwargs={"autocommit": True, "connect_timeout": int(CLAIM_TIMEOUT)},
            name="vobiz-stream-nonces",
        )  # fmt: skip
        self._opened = False
        self._unforgotten: dict[bytes, float] = {}
        """Digests to forget once the database answers -> when their claim expires anyway."""
        self._retrying: asyncio.Task[None] | None = None
        self._forgetting = asyncio.Lock()
        """Held while held forgets are done: a claim of one of them waits for it."""

    async def claim(self, nonce: str) -> bool:
        """True if ``nonce`` is now claimed by this process; False if a process sharing the
        store claimed it within the window: a replay. Raises :class:`StoreError` when the
        database does not answer within :data:`CLAIM_TIMEOUT` seconds (the claim, if it landed,
        is then forgotten)."""
        digest = nonce_digest(nonce)
        if digest in self._unforgotten:  # the carrier's retry of a request refused here
            async with self._forgetting:  # not while a held forget of it is under way
                return await self._claim(digest)
        return await self._claim(digest)

    async def _claim(self, digest: bytes) -> bool:
        now = self._clock()
        purge = now >= self._next_purge
        again = self._unforgotten.pop(digest, None) is not None  # held by us, to forget
        params = {"digest": digest, "window": self.window, "purge": purge,
                  "owner": self._owner, "again": again}  # fmt: skip
        try:
            row = await self._run("claim a nonce", _CLAIM, params)
        except StoreError:
            self._forget_later(digest)
            raise
        if purge:
            self._next_purge = now + self.purge_every
        return row is not None

    async def forget(self, nonce: str) -> None:
        """Let ``nonce`` be claimed again if this process claimed it (its request was refused
        after all); when the database cannot be reached, as soon as it can be."""
        digest = nonce_digest(nonce)
        try:
            await self._run("forget a nonce", _FORGET, ([digest], self._owner))
        except StoreError as exc:
            if self._retrying is None or self._retrying.done():
                log.warning(
                    "%s; a retry of that request reaching another server process is refused as"
                    " a replay until this one reaches the database",
                    loggable(str(exc), 300),
                )
            self._forget_later(digest)

    def _forget_later(self, digest: bytes) -> None:
        """Delete the row of ``digest``, if this process has one, once the database answers."""
        self._unforgotten[digest] = self._clock() + self.window
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._forget_held())

    async def _forget_held(self) -> None:
        """Try every :attr:`FORGET_RETRY` seconds to delete the rows :meth:`_forget_later` holds,
        until they are deleted or expired."""
        while self._unforgotten:
            await asyncio.sleep(self.FORGET_RETRY)
            async with self._forgetting:
                now = self._clock()
                self._unforgotten = {d: end for d, end in self._unforgotten.items() if end > now}
                digests = list(self._unforgotten)
                if not digests:  # all expired: their rows go with the next purge
                    return
                with contextlib.suppress(StoreError):
                    await self._run("forget nonces", _FORGET, (digests, self._owner))
                    for digest in digests:
                        self._unforgotten.pop(digest, None)

    async def _run(
        self, what: str, query: str, params: Sequence[object] | Mapping[str, object]
    ) -> object:
        """The first value of the first row ``query`` gives, None without one; raises
        :class:`StoreError` when the database does not answer in :data:`CLAIM_TIMEOUT` s."""
        try:
            if not self._opened:
                await self._pool.open()  # on the running loop, at the first use
                self._opened = True
            async with asyncio.timeout(CLAIM_TIMEOUT), self._pool.connection() as db:
                cursor = await db.execute(query.encode(), params)
                row = await cursor.fetchone() if cursor.description else None
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            reason = str(exc).strip() or f"no answer in {CLAIM_TIMEOUT:g} s"
            raise StoreError(f"call store {self.where}: cannot {what}: {reason}") from exc
        return None if row is None else row[0]

    async def close(self) -> None:
        """Stop forgetting held nonces and close the connections; safe to call twice."""
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        await self._pool.close()
