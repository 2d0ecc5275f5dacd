"""The thread that does the store's writes, in order, in batches, whatever the engine.

Each write is a value (:mod:`~vobiz_stream.store.writes`) the engine's ``apply_batch`` does; so
this loop is the one path of every write: gathered into a batch, committed in one transaction
(one that fails is undone and logged alone), its future settled, and held and tried again while
the database has no room (:class:`StoreFullError`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vobiz_stream.errors import StoreError
from vobiz_stream.store.interface import StoreEngine, StoreFullError
from vobiz_stream.store.writes import Write

__all__ = ["Writer"]

log = logging.getLogger("vobiz_stream.store")


@dataclass(frozen=True, slots=True)
class _Queued:
    """A write waiting for the writer thread."""

    write: Write
    stored: concurrent.futures.Future[None] | None = None
    """Resolved once the write is committed, with the :class:`StoreError` when it is not."""


@dataclass(frozen=True, slots=True)
class _Mark:
    """Reached by the writer once everything queued before it is committed (or failed)."""

    reached: Callable[[], None]


class Writer:
    """A thread of its own applying queued writes to the engine ``open_engine`` opens on it.

    After the first write of a batch the thread waits ``gather`` seconds for more (each wake-up
    of this thread takes the interpreter lock from the event loop, so it should come once per
    batch, not once per write), unless someone waits for the writes (:meth:`flush`,
    :meth:`settled`): then at once. ``where`` names the store in log lines; ``full_hint`` says
    what to do when it has no room.
    """

    MARK_TIMEOUT = 10.0
    """Seconds a read or :meth:`settled` waits for the writer before going on without it."""
    FULL_RETRY = 1.0
    """Seconds between two tries to commit the writes held while the disk is full."""
    MOST_HELD = 100_000
    """Most writes held while the disk is full (about a minute of 1000 calls' events); a batch
    past that is lost, and logged."""

    def __init__(
        self,
        open_engine: Callable[[], StoreEngine],
        where: str,
        full_hint: str,
        *,
        max_batch: int,
        gather: float,
    ) -> None:
        self._open_engine = open_engine
        self._where = where
        self._full_hint = full_hint
        self._max_batch = max_batch
        self._gather = gather
        self._queued = 0
        """Writes queued so far; only the threads that queue change it."""
        self._done = 0
        """Writes the writer has finished so far; only the writer thread changes it."""
        self._hurry = threading.Event()
        """Set by whoever waits for the writer: the batch being gathered is committed at once."""
        self._queue: queue.SimpleQueue[_Queued | _Mark | None] = queue.SimpleQueue()
        self._held: list[_Queued] = []
        """Writes whose batch failed for a full disk, committed first once there is room."""
        self._thread = threading.Thread(target=self._run, name="vobiz-stream-store", daemon=True)
        self._thread.start()

    def put(self, write: Write, stored: concurrent.futures.Future[None] | None = None) -> None:
        """Queue ``write``; ``stored`` is settled once it is committed or failed."""
        self._queued += 1
        self._queue.put(_Queued(write, stored))

    @property
    def pending(self) -> int:
        """Writes queued and not yet finished."""
        return self._queued - self._done

    def flush(self) -> None:
        """Block until every write queued so far is committed (or failed)."""
        reached = threading.Event()
        self._queue.put(_Mark(reached.set))
        self._hurry.set()
        if not reached.wait(self.MARK_TIMEOUT):
            log.warning("store %s: the writer is %.0f s behind", self._where, self.MARK_TIMEOUT)

    async def settled(self) -> None:
        """Wait, without blocking the event loop, until every write queued so far is done."""
        loop = asyncio.get_running_loop()
        reached = loop.create_future()

        def resolve() -> None:
            if not reached.done():
                reached.set_result(None)

        def mark() -> None:
            loop.call_soon_threadsafe(resolve)

        self._queue.put(_Mark(mark))
        self._hurry.set()
        try:
            await asyncio.wait_for(reached, self.MARK_TIMEOUT)
        except TimeoutError:
            log.warning("store %s: the writer is %.0f s behind", self._where, self.MARK_TIMEOUT)

    def close(self) -> None:
        """Commit what is queued and stop the thread; safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._hurry.set()
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                log.error("store %s: the writer did not finish in 30 s", self._where)

    # --- on the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        engine: StoreEngine | None
        try:
            engine = self._open_engine()
        except StoreError as exc:
            log.error("%s; nothing more will be stored", exc)
            engine = None
        try:
            while self._take(engine):
                pass
        finally:
            if self._held:
                log.error(
                    "store %s: still no room at stop: %d held writes lost (the next start marks "
                    "their open streams interrupted)",
                    self._where,
                    len(self._held),
                )
            if engine is not None:
                engine.close()

    def _take(self, engine: StoreEngine | None) -> bool:
        """Commit one batch of what is queued; False once :meth:`close` asked to stop."""
        try:
            first = self._queue.get(timeout=self.FULL_RETRY if self._held else None)
        except queue.Empty:  # nothing new: try the held writes again
            first = _Mark(lambda: None)
        batch = [first]
        if isinstance(first, _Queued):
            self._hurry.wait(self._gather)
        self._hurry.clear()
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        writes = self._held + [item for item in batch if isinstance(item, _Queued)]
        if writes and engine is not None:
            try:
                failures = engine.apply_batch([queued.write for queued in writes])
            except StoreError as exc:
                self._hold_or_lose(exc, writes)
            else:
                if self._held:
                    log.warning(
                        "store %s: room again: stored %d held writes", self._where, len(writes)
                    )
                self._held = []
                for queued, failure in zip(writes, failures, strict=True):
                    _settle([queued], failure)
                self._done += len(writes)
        elif writes:
            _settle(writes, StoreError(f"store {self._where} is closed"))
            self._done += len(writes)
        for item in batch:
            if isinstance(item, _Mark):
                item.reached()
        return None not in batch

    def _hold_or_lose(self, exc: StoreError, writes: list[_Queued]) -> None:
        """A batch failed: held for the next try if the disk is full (logged once, when it
        fills), else lost (logged)."""
        if isinstance(exc, StoreFullError) and len(writes) <= self.MOST_HELD:
            if not self._held:
                log.error("%s: holding the writes until there is room (%s)", exc, self._full_hint)
            # Someone waits on a status callback: it is answered 503 and the carrier sends it
            # again, so it is not held (and not stored twice).
            awaited = [queued for queued in writes if queued.stored is not None]
            _settle(awaited, exc)
            self._done += len(awaited)
            self._held = [queued for queued in writes if queued.stored is None]
            return
        log.error("%s: %d writes lost", exc, len(writes))
        _settle(writes, exc)
        self._done += len(writes)
        self._held = []


def _settle(writes: Sequence[_Queued], error: StoreError | None) -> None:
    """Resolve the futures of ``writes`` not resolved yet: committed, or failed with ``error``."""
    for queued in writes:
        if queued.stored is not None and not queued.stored.done():
            if error is None:
                queued.stored.set_result(None)
            else:
                queued.stored.set_exception(error)
