"""The call store's write queue, over any engine: writes that never wait, reads that see them.

Every write method turns its arguments into a write value (:mod:`~vobiz_stream.store.writes`)
and hands it to :meth:`QueuedStore.submit`, the one path to the writer thread
(:class:`~vobiz_stream.store.writer.Writer`), where the engine's ``apply_batch`` does it. So an
engine (:class:`~vobiz_stream.store.interface.StoreEngine`) gets the queue, its bounds, the event
budgets and the hold while the disk is full without a line of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from vobiz_stream.closing import Closeable
from vobiz_stream.core.callbacks import SignatureCheck, StatusCallback
from vobiz_stream.store.event_budget import NOT_STORED, EventBudget
from vobiz_stream.store.interface import (
    CallQuery,
    CallRecord,
    StoreBusyError,
    StoreEngine,
    call_from_json,
    calls_from_json,
)
from vobiz_stream.store.read_thread import CallReader
from vobiz_stream.store.writer import Writer
from vobiz_stream.store.writes import (
    AddEvent,
    AddStatusCallback,
    CloseStreamRow,
    OpenStreamRow,
    UpdateStreamRow,
    Write,
)

__all__ = ["QueuedStore"]

log = logging.getLogger("vobiz_stream.store")


class QueuedStore(Closeable):
    """A store engine whose writes never wait: a thread of its own commits them in order.

    ``open_engine`` opens a connection to the engine; it is called three times (this thread, the
    writer thread, the reading thread). ``where`` names the store in log lines and errors;
    ``full_hint`` says what to do when the database has no room.

    Write methods queue the write and return at once (:meth:`open_stream` hands out the row id
    itself, as the only writer of the store); the writer thread gathers writes for ``gather``
    seconds after the first, and commits them (up to ``max_batch``) in one transaction (the
    engine's ``apply_batch``: a write that fails is undone alone). A write that fails is logged
    with its call id (there is no caller left to raise it to). Reads (:meth:`list_calls`,
    :meth:`get_call`) first wait until every write queued before them is committed, so they see
    them; :meth:`settled` waits the same way without blocking a loop. Opening raises
    :class:`StoreError` as the engine does.

    The queue is bounded, so a flood cannot grow the server's memory: a stream keeps the first
    ``events_per_kind`` events of each kind as rows and counts the rest (:mod:`event_budget`), and
    past ``max_pending`` writes waiting, events are counted rather than queued. Stream rows are
    always queued (there are as many as sockets, which admission caps); a status callback waits
    up to :attr:`CALLBACK_WAIT` seconds for room (:meth:`queue_status_callback`), then raises
    :class:`StoreBusyError` so the carrier is told to retry.
    """

    EVENTS_PER_KIND = 100
    """Events of one kind stored per stream by default; the rest are counted."""
    MAX_PENDING = 10_000
    """Writes waiting for the writer (about 10 MB) past which events are counted, not queued."""
    CALLBACK_WAIT = 1.0
    """Seconds a status callback waits for room in a full queue before :class:`StoreBusyError`."""

    def __init__(
        self,
        open_engine: Callable[[], StoreEngine],
        where: str,
        full_hint: str,
        *,
        max_batch: int = 500,
        gather: float = 0.05,
        max_pending: int = MAX_PENDING,
        events_per_kind: int = EVENTS_PER_KIND,
    ) -> None:
        self.where = where
        self._reader = open_engine()
        self.worker = self._reader.register_worker(
            socket.gethostname(), os.getpid(), datetime.now(UTC)
        )
        """This server process's id in the store: its streams are stored with it."""
        self._next_row = self._reader.last_stream_row() + 1
        self.max_pending = max_pending
        self._budget = EventBudget(events_per_kind)
        self._behind_logged = False
        self._reads = CallReader(open_engine)
        self._writer = Writer(open_engine, where, full_hint, max_batch=max_batch, gather=gather)

    # --- writes (queued) ---------------------------------------------------------------------

    def submit(self, write: Write) -> None:
        """Queue ``write`` for the writer thread; a failure is logged with its call id."""
        self._writer.put(write)

    def submit_awaited(self, write: Write) -> concurrent.futures.Future[None]:
        """:meth:`submit`, with a future settled once ``write`` is committed (or failed)."""
        stored: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer.put(write, stored)
        return stored

    def open_stream(
        self,
        *,
        call_id: str,
        stream_id: str | None,
        started_at: datetime,
        tracks: Sequence[str],
        encoding: str,
        sample_rate: int,
        recording_path: Path | str | None,
        from_number: str | None = None,
        to_number: str | None = None,
        direction: str | None = None,
        account_id: str | None = None,
        byte_order: str | None = None,
    ) -> int:
        """:class:`OpenStreamRow`, queued; returns the row id the stream gets."""
        row_id = self._new_stream_row()
        self.submit(
            OpenStreamRow(
                call_id=call_id,
                stream_id=stream_id,
                started_at=started_at,
                tracks=tuple(tracks),
                encoding=encoding,
                sample_rate=sample_rate,
                recording_path=recording_path,
                from_number=from_number,
                to_number=to_number,
                direction=direction,
                account_id=account_id,
                row_id=row_id,
                worker=self.worker,
                byte_order=byte_order,
            )
        )
        return row_id

    def _new_stream_row(self) -> int:
        """The row id of a new stream: the next after the engine's last (this queue is the
        only writer of its store; an engine shared by several processes hands out its own)."""
        row_id = self._next_row
        self._next_row += 1
        return row_id

    def close_stream(
        self,
        row_id: int,
        *,
        ended_at: datetime,
        end_reason: str,
        frames_received: int,
        frames_malformed: int,
        frames_sent: int,
        error: str | None = None,
        call_id: str | None = None,
    ) -> None:
        """:class:`CloseStreamRow`, queued (``call_id`` names the call in a failure's log line),
        then the stream's ``events_not_stored`` row if it had events only counted."""
        self.submit(
            CloseStreamRow(
                row_id,
                ended_at=ended_at,
                end_reason=end_reason,
                frames_received=frames_received,
                frames_malformed=frames_malformed,
                frames_sent=frames_sent,
                error=error,
                call_id=call_id,
            )
        )
        not_stored = self._budget.settle(row_id)
        if not_stored is not None:
            owner, counts = not_stored
            self.submit(AddEvent(owner, row_id, NOT_STORED, counts, at=ended_at))

    def update_stream(
        self, row_id: int, *, byte_order: str | None = None, call_id: str | None = None
    ) -> None:
        """:class:`UpdateStreamRow` of what a stream learns as it runs, queued."""
        self.submit(UpdateStreamRow(row_id, byte_order=byte_order, call_id=call_id))

    def add_event(
        self,
        call_id: str,
        stream_row: int | None,
        kind: str,
        detail: Mapping[str, object],
        *,
        at: datetime,
    ) -> None:
        """:class:`AddEvent`, queued; or only counted, past the stream's budget or with the
        queue full (the count is stored when the stream closes)."""
        if stream_row is not None and not self._budget.take(stream_row, call_id, kind):
            return
        if self._pending() >= self.max_pending:
            self._note_behind()
            if stream_row is not None:
                self._budget.skip(stream_row, call_id, kind, "arriving with the store behind")
            return
        self.submit(AddEvent(call_id, stream_row, kind, dict(detail), at=at))

    def add_status_callback(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> concurrent.futures.Future[None]:
        """:class:`AddStatusCallback`, queued; the future says whether it was committed (after
        :meth:`settled`, it is done unless the writer is far behind)."""
        return self.submit_awaited(AddStatusCallback(callback, received_at, signature))

    async def queue_status_callback(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> concurrent.futures.Future[None]:
        """:meth:`add_status_callback` once the queue has room (:meth:`wait_for_room`)."""
        await self.wait_for_room()
        return self.add_status_callback(callback, received_at, signature)

    async def wait_for_room(self) -> None:
        """Return once the queue has room; :class:`StoreBusyError` if it still has none after
        :attr:`CALLBACK_WAIT` seconds (a status callback is then answered 503: the carrier
        retries)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.CALLBACK_WAIT
        while self._pending() >= self.max_pending:
            self._note_behind()
            if loop.time() >= deadline:
                raise StoreBusyError(
                    f"call store {self.where}: {self._pending()} writes are waiting for the"
                    f" disk; the callback was not stored, send it again"
                )
            await asyncio.sleep(0.02)

    def mark_interrupted(self, now: datetime) -> int:
        """The engine's ``mark_interrupted``, done now (once, at start, before any stream)."""
        self.flush()
        return self._reader.mark_interrupted(now)

    @property
    def pending_writes(self) -> int:
        """Writes queued and not yet committed: the queue's depth (for ``/metrics``)."""
        return self._writer.pending

    def _pending(self) -> int:
        """Writes queued and not yet finished by the writer."""
        pending = self._writer.pending
        if pending < self.max_pending // 2:
            self._behind_logged = False  # caught up: the next fill is logged again
        return pending

    def _note_behind(self) -> None:
        """Log once each time the queue fills up."""
        if not self._behind_logged:
            self._behind_logged = True
            log.warning(
                "store %s: %d writes are waiting for the disk; call events are counted instead"
                " of stored until it catches up",
                self.where,
                self._pending(),
            )

    # --- waiting for the writer, and reads ---------------------------------------------------

    def flush(self) -> None:
        """Block until every write queued so far is committed (or failed)."""
        self._writer.flush()

    async def settled(self) -> None:
        """Wait, without blocking the event loop, until every write queued so far is done."""
        await self._writer.settled()

    def list_calls(self, limit: int = 100, offset: int = 0) -> list[CallRecord]:
        """The engine's ``list_calls``, once the writes queued before it are committed."""
        self.flush()
        return calls_from_json(self._reader.calls_json(limit, offset)[0])

    async def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]:
        """The engine's ``calls_json`` once the writes queued before it are committed, read on
        the reading thread: the event loop goes on meanwhile."""
        await self.settled()
        return await self._reads.read(lambda engine: engine.calls_json(limit, offset))

    async def call_json(self, call_id: str) -> str | None:
        """The engine's ``call_json``, as :meth:`calls_json` reads."""
        await self.settled()
        return await self._reads.read(lambda engine: engine.call_json(call_id))

    async def search_calls_json(self, query: CallQuery) -> tuple[str, bool]:
        """The engine's ``search_calls_json``, as :meth:`calls_json` reads."""
        await self.settled()
        return await self._reads.read(lambda engine: engine.search_calls_json(query))

    def get_call(self, call_id: str) -> CallRecord | None:
        """The engine's ``get_call``, once the writes queued before it are committed."""
        self.flush()
        return call_from_json(self._reader.call_json(call_id))

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the engine; safe to call twice."""
        self._writer.close()
        self._reads.close()
        self._reader.close()
