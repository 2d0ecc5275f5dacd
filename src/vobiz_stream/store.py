"""Calls, their streams, their events and their status callbacks, kept in one SQLite file.

A call (keyed on the carrier's ``callId``) can have several streams: with ``maxRetries`` every
reconnect is a new socket with a new ``streamId`` and the same ``callId`` (protocol.md section 6).
Streams are keyed on a local row id, since a buggy carrier may reuse or omit stream ids.

:class:`CallStore` does each write as one small transaction that reaches rows by key or through
an index, on the caller's thread. The server uses :class:`QueuedCallStore` instead, which hands
its writes to a thread of its own and commits them in batches: a commit (and now and then a WAL
checkpoint) can take tens of milliseconds, which on the event loop would hold up every call's
frames. The database runs in WAL mode with ``synchronous=NORMAL``: a commit does not wait for the
disk; a power cut may lose the last commits but never corrupts the file. Times are stored as
ISO 8601 UTC text of fixed width (:func:`~vobiz_stream.webhooks.format_utc`), so ordering the
text orders the times.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TypedDict, cast

import orjson

from vobiz_stream.closing import Closeable
from vobiz_stream.errors import StoreError
from vobiz_stream.event_budget import NOT_STORED, EventBudget
from vobiz_stream.logtext import loggable
from vobiz_stream.store_reads import CALLS_PAGE, ONE_CALL, CallReader
from vobiz_stream.webhooks import SignatureCheck, StatusCallback, format_utc

__all__ = [
    "SCHEMA_VERSION",
    "CallRecord",
    "CallStatus",
    "CallStore",
    "CallbackRecord",
    "EventKind",
    "EventRecord",
    "QueuedCallStore",
    "StoreBusyError",
    "StreamRecord",
]

log = logging.getLogger("vobiz_stream.store")

SCHEMA_VERSION = 1


class StoreBusyError(StoreError):
    """The store's queue stayed full: a status callback could not be queued in time."""


class CallStatus(StrEnum):
    """Where a call stands, as far as this server knows."""

    ACTIVE = "active"
    """At least one of its streams is open."""
    ENDED = "ended"
    """All its streams closed."""
    INTERRUPTED = "interrupted"
    """A stream was still open when the server stopped without closing it (a crash)."""
    CALLBACKS_ONLY = "callbacks_only"
    """Known only from status callbacks: no stream of it has reached this server."""


class EventKind(StrEnum):
    """The kinds of call event worth keeping; :meth:`CallStore.add_event` accepts others too."""

    START = "start"
    STOP = "stop"
    DTMF = "dtmf"
    CHECKPOINT_PLAYED = "checkpoint_played"
    CLEARED = "cleared"
    """A ``clearAudio`` answered by ``clearedAudio``; the detail holds the round trip."""
    MALFORMED_FRAME = "malformed_frame"
    ERROR = "error"
    BYTE_ORDER = "byte_order"
    """The inbound L16 byte order was decided (detected or configured)."""
    EVENTS_NOT_STORED = NOT_STORED
    """Written when a stream closes: how many events of each kind were counted, not stored
    (past :attr:`QueuedCallStore.EVENTS_PER_KIND` of a kind, or with the store's queue full)."""


# What list_calls and get_call return: JSON-ready dicts (times as ISO 8601 UTC text) whose keys
# are the column names; SQLite builds them (vobiz_stream.store_reads).


class StreamRecord(TypedDict):
    """One socket of a call: ``id`` is the local row id, ``stream_id`` the carrier's id."""

    id: int
    stream_id: str | None
    started_at: str
    ended_at: str | None
    end_reason: str | None
    tracks: list[str]
    encoding: str
    sample_rate: int
    byte_order: str | None
    recording_path: str | None
    frames_received: int
    frames_malformed: int
    frames_sent: int
    error: str | None


class EventRecord(TypedDict):
    """A call event; ``stream_row`` is None for an event of the call as a whole."""

    id: int
    stream_row: int | None
    at: str
    kind: str
    detail: dict[str, object]


class CallbackRecord(TypedDict):
    """A status callback; ``fields`` are all its fields as received."""

    id: int
    received_at: str
    event: str
    stream_id: str | None
    signature: str
    fields: dict[str, str]


class CallRecord(TypedDict):
    """A call with its streams, events and status callbacks, each oldest first."""

    call_id: str
    status: str
    first_seen: str
    last_seen: str
    from_number: str | None
    to_number: str | None
    direction: str | None
    account_id: str | None
    streams: list[StreamRecord]
    events: list[EventRecord]
    status_callbacks: list[CallbackRecord]


_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        from_number TEXT,
        to_number TEXT,
        direction TEXT,
        account_id TEXT,
        status TEXT NOT NULL
    )""",
    "CREATE INDEX calls_by_first_seen ON calls (first_seen)",
    """CREATE TABLE streams (
        id INTEGER PRIMARY KEY,
        stream_id TEXT,
        call_id TEXT NOT NULL REFERENCES calls (call_id),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        end_reason TEXT,
        tracks TEXT NOT NULL,
        encoding TEXT NOT NULL,
        sample_rate INTEGER NOT NULL,
        byte_order TEXT,
        recording_path TEXT,
        frames_received INTEGER NOT NULL DEFAULT 0,
        frames_malformed INTEGER NOT NULL DEFAULT 0,
        frames_sent INTEGER NOT NULL DEFAULT 0,
        error TEXT
    )""",
    "CREATE INDEX streams_by_call ON streams (call_id)",
    # Only open streams are in this index: closing a stream and the restart sweep stay quick
    # however many closed streams the table holds.
    "CREATE INDEX open_streams_by_call ON streams (call_id) WHERE ended_at IS NULL",
    """CREATE TABLE call_events (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls (call_id),
        stream_row INTEGER REFERENCES streams (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX call_events_by_call ON call_events (call_id)",
    """CREATE TABLE status_callbacks (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        event TEXT NOT NULL,
        call_uuid TEXT REFERENCES calls (call_id),
        stream_id TEXT,
        signature TEXT NOT NULL,
        fields TEXT NOT NULL
    )""",
    "CREATE INDEX status_callbacks_by_call ON status_callbacks (call_uuid)",
)

# A stream opening makes its call active; a status callback records the call without changing
# the status of a call already known.
_UPSERT_CALL = """
    INSERT INTO calls (call_id, first_seen, last_seen, from_number, to_number, direction,
                       account_id, status)
    VALUES (:call_id, :seen, :seen, :from_number, :to_number, :direction, :account_id, :status)
    ON CONFLICT (call_id) DO UPDATE SET
        first_seen = min(calls.first_seen, excluded.first_seen),
        last_seen = max(calls.last_seen, excluded.last_seen),
        from_number = coalesce(excluded.from_number, calls.from_number),
        to_number = coalesce(excluded.to_number, calls.to_number),
        direction = coalesce(excluded.direction, calls.direction),
        account_id = coalesce(excluded.account_id, calls.account_id),
        status = CASE WHEN excluded.status = 'active' THEN 'active' ELSE calls.status END
"""


class CallStore(Closeable):
    """The call history of a server, in the SQLite file at ``path`` (created on first open).

    Every method raises :class:`StoreError` and nothing else when the database fails. Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = _connect(path)

    # --- streams -----------------------------------------------------------------------------

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
        row_id: int | None = None,
    ) -> int:
        """Record a new stream of ``call_id`` and make the call active; returns the stream row id.

        Call details given here fill in or replace what the store knew; None leaves them as they
        are. ``row_id`` chooses the row id (:class:`QueuedCallStore` hands ids out before the
        write); None lets SQLite choose.
        """
        started = format_utc(started_at)
        with self._write(f"open a stream of call {call_id!r}"):
            self._db.execute(
                _UPSERT_CALL,
                {
                    "call_id": call_id,
                    "seen": started,
                    "from_number": from_number,
                    "to_number": to_number,
                    "direction": direction,
                    "account_id": account_id,
                    "status": CallStatus.ACTIVE.value,
                },
            )
            cursor = self._db.execute(
                "INSERT INTO streams (id, stream_id, call_id, started_at, tracks, encoding,"
                " sample_rate, recording_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row_id,
                    stream_id,
                    call_id,
                    started,
                    orjson.dumps([str(track) for track in tracks]).decode(),
                    str(encoding),
                    sample_rate,
                    None if recording_path is None else str(recording_path),
                ),
            )
        # After a successful INSERT, lastrowid is the new row's id.
        return cast(int, cursor.lastrowid)

    def update_stream(
        self,
        row_id: int,
        *,
        byte_order: str | None = None,
        frames_received: int | None = None,
        frames_malformed: int | None = None,
        frames_sent: int | None = None,
        error: str | None = None,
    ) -> None:
        """Set what is known so far of an open or closed stream; None leaves a column as it is."""
        with self._write(f"update stream row {row_id}"):
            cursor = self._db.execute(
                "UPDATE streams SET byte_order = coalesce(?, byte_order),"
                " frames_received = coalesce(?, frames_received),"
                " frames_malformed = coalesce(?, frames_malformed),"
                " frames_sent = coalesce(?, frames_sent),"
                " error = coalesce(?, error)"
                " WHERE id = ?",
                (byte_order, frames_received, frames_malformed, frames_sent, error, row_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"call store {self.path}: there is no stream row {row_id}")

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
    ) -> bool:
        """Record the end of a stream; the call ends when none of its streams is open any more.

        Returns False, changing nothing, when the stream was already closed: the first close
        wins. ``error=None`` keeps an error already set by :meth:`update_stream`.
        """
        ended = format_utc(ended_at)
        with self._write(f"close stream row {row_id}"):
            row = self._db.execute(
                "SELECT call_id, ended_at FROM streams WHERE id = ?", (row_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"call store {self.path}: there is no stream row {row_id}")
            call_id, already_ended = row
            if already_ended is not None:
                return False
            self._db.execute(
                "UPDATE streams SET ended_at = ?, end_reason = ?, frames_received = ?,"
                " frames_malformed = ?, frames_sent = ?, error = coalesce(?, error)"
                " WHERE id = ?",
                (ended, end_reason, frames_received, frames_malformed, frames_sent, error, row_id),
            )
            self._db.execute(
                "UPDATE calls SET last_seen = max(last_seen, ?),"
                " status = CASE WHEN EXISTS (SELECT 1 FROM streams"
                "   WHERE streams.call_id = calls.call_id AND ended_at IS NULL)"
                " THEN status ELSE ? END"
                " WHERE call_id = ?",
                (ended, CallStatus.ENDED.value, call_id),
            )
        return True

    def mark_interrupted(self, now: datetime) -> int:
        """Close every stream a previous run left open; returns how many.

        Call it once at server start, before any stream opens. Those streams end at ``now`` (when
        the interruption was noticed; the true end is unknown) with end reason ``interrupted``,
        and their calls become interrupted. Their counters keep the last values stored.
        """
        noticed = format_utc(now)
        with self._write("mark the streams of a previous run interrupted"):
            self._db.execute(
                "UPDATE calls SET status = ?, last_seen = max(last_seen, ?)"
                " WHERE call_id IN (SELECT call_id FROM streams WHERE ended_at IS NULL)",
                (CallStatus.INTERRUPTED.value, noticed),
            )
            cursor = self._db.execute(
                "UPDATE streams SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL",
                (noticed, CallStatus.INTERRUPTED.value),
            )
        return cursor.rowcount

    # --- events and callbacks ----------------------------------------------------------------

    def add_event(
        self,
        call_id: str,
        stream_row: int | None,
        kind: str,
        detail: Mapping[str, object],
        *,
        at: datetime,
    ) -> int:
        """Keep an event of a known call (see :class:`EventKind`); returns its id.

        ``detail`` must be JSON-serialisable by orjson.
        """
        with self._write(f"add a {kind!r} event to call {call_id!r}"):
            cursor = self._db.execute(
                "INSERT INTO call_events (call_id, stream_row, at, kind, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (call_id, stream_row, format_utc(at), str(kind), orjson.dumps(detail).decode()),
            )
        return cast(int, cursor.lastrowid)

    def add_status_callback(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> int:
        """Keep a status callback, whatever its event; returns its id.

        A callback naming a call the store does not know yet records that call, so the call list
        shows calls known only from their callbacks.
        """
        received = format_utc(received_at)
        with self._write(f"add a {callback.event!r} status callback"):
            if callback.call_uuid is not None:
                self._db.execute(
                    _UPSERT_CALL,
                    {
                        "call_id": callback.call_uuid,
                        "seen": received,
                        "from_number": callback.from_number,
                        "to_number": callback.to,
                        "direction": None,
                        "account_id": None,
                        "status": CallStatus.CALLBACKS_ONLY.value,
                    },
                )
            cursor = self._db.execute(
                "INSERT INTO status_callbacks (received_at, event, call_uuid, stream_id,"
                " signature, fields) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    received,
                    callback.event,
                    callback.call_uuid,
                    callback.stream_id,
                    signature.value,
                    orjson.dumps(callback.fields).decode(),
                ),
            )
        return cast(int, cursor.lastrowid)

    # --- reading -----------------------------------------------------------------------------

    def list_calls(self, limit: int = 100, offset: int = 0) -> list[CallRecord]:
        """The ``limit`` newest calls (by first seen) after the ``offset`` newest, newest first,
        JSON-ready.

        Each call holds its ``streams``, ``events`` and ``status_callbacks``, oldest first.
        """
        return cast(list[CallRecord], orjson.loads(self.calls_json(limit, offset)[0]))

    def get_call(self, call_id: str) -> CallRecord | None:
        """One call shaped as in :meth:`list_calls`, or None when the store does not know it."""
        text = self.call_json(call_id)
        return None if text is None else cast(CallRecord, orjson.loads(text))

    def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]:
        """:meth:`list_calls` as JSON text, and whether more calls follow this page."""
        with self._read("list calls"):
            (text,) = self._db.execute(CALLS_PAGE, (limit, offset)).fetchone()
            more = self._db.execute(
                "SELECT 1 FROM calls LIMIT 1 OFFSET ?", (offset + limit,)
            ).fetchone()
        return text, more is not None

    def call_json(self, call_id: str) -> str | None:
        """:meth:`get_call` as JSON text."""
        with self._read(f"read call {call_id!r}"):
            row = self._db.execute(ONE_CALL, (call_id,)).fetchone()
        return None if row is None else cast(str, row[0])

    def last_stream_row(self) -> int:
        """The highest stream row id so far (0 in a new store)."""
        with self._read("read the last stream row"):
            row = self._db.execute("SELECT coalesce(max(id), 0) FROM streams").fetchone()
        return int(row[0])

    # --- transactions and lifetime -----------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around several writes: each write in it is a savepoint, so a write
        that fails is undone alone and the others commit together at the end of the block."""
        with self._write("commit a batch of writes"):
            yield

    @contextmanager
    def _write(self, what: str) -> Iterator[None]:
        with self._failing_as_store_error(what), _transaction(self._db, "BEGIN IMMEDIATE"):
            yield

    @contextmanager
    def _read(self, what: str) -> Iterator[None]:
        with self._failing_as_store_error(what), _transaction(self._db, "BEGIN"):
            yield

    @contextmanager
    def _failing_as_store_error(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"call store {self.path}: cannot {what}: {exc}") from exc

    def close(self) -> None:
        self._db.close()


@contextmanager
def _transaction(db: sqlite3.Connection, begin: str) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back when it (or the commit) fails.

    Inside a transaction already open (:meth:`CallStore.batch`), a savepoint of it instead.
    """
    if db.in_transaction:
        db.execute("SAVEPOINT one_write")
        try:
            yield
            db.execute("RELEASE one_write")
        except BaseException:
            db.execute("ROLLBACK TO one_write")
            db.execute("RELEASE one_write")
            raise
        return
    db.execute(begin)
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


# --- writes off the caller's thread -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Write:
    """A write for the writer thread: what it does (for the log) and doing it."""

    call_id: str | None
    what: str
    apply: Callable[[CallStore], object]
    stored: concurrent.futures.Future[None] | None = None
    """Resolved once the write is committed, with the :class:`StoreError` when it is not."""


@dataclass(frozen=True, slots=True)
class _Mark:
    """Reached by the writer once everything queued before it is committed (or failed)."""

    reached: Callable[[], None]


class QueuedCallStore(Closeable):
    """A :class:`CallStore` whose writes never wait: a thread of its own commits them in order.

    Write methods queue the write and return at once (:meth:`open_stream` hands out the row id
    itself, as the only writer of the file); the writer thread gathers writes for ``gather``
    seconds after the first, and commits them (up to ``max_batch``) in one transaction, each in
    a savepoint of its own.
    A write that fails is logged with its call id (there is no caller left to raise it to).
    Reads (:meth:`list_calls`, :meth:`get_call`) first wait until every write queued before them
    is committed, so they see them; :meth:`settled` waits the same way without blocking a loop.
    Opening raises :class:`StoreError` as :class:`CallStore` does.

    The queue is bounded, so a flood cannot grow the server's memory: a stream keeps the first
    ``events_per_kind`` events of each kind as rows and counts the rest (:mod:`event_budget`), and
    past ``max_pending`` writes waiting, events are counted rather than queued. Stream rows are
    always queued (there are as many as sockets, which admission caps); a status callback waits
    up to :attr:`CALLBACK_WAIT` seconds for room (:meth:`queue_status_callback`), then raises
    :class:`StoreBusyError` so the carrier is told to retry.
    """

    MARK_TIMEOUT = 10.0
    """Seconds a read or :meth:`settled` waits for the writer before going on without it."""
    EVENTS_PER_KIND = 100
    """Events of one kind stored per stream by default; the rest are counted."""
    MAX_PENDING = 10_000
    """Writes waiting for the writer (about 10 MB) past which events are counted, not queued."""
    CALLBACK_WAIT = 1.0
    """Seconds a status callback waits for room in a full queue before :class:`StoreBusyError`."""
    FULL_RETRY = 1.0
    """Seconds between two tries to commit the writes held while the disk is full."""
    MOST_HELD = 100_000
    """Most writes held while the disk is full (about a minute of 1000 calls' events); a batch
    past that is lost, and logged."""

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 500,
        gather: float = 0.05,
        max_pending: int = MAX_PENDING,
        events_per_kind: int = EVENTS_PER_KIND,
    ) -> None:
        self.path = path
        self._reader = CallStore(path)
        self._next_row = self._reader.last_stream_row() + 1
        self._max_batch = max_batch
        self._gather = gather
        self.max_pending = max_pending
        self._budget = EventBudget(events_per_kind)
        self._queued = 0
        """Writes queued so far; only the threads that queue change it."""
        self._done = 0
        """Writes the writer has finished so far; only the writer thread changes it."""
        self._behind_logged = False
        self._reads = CallReader(lambda: CallStore(path))
        self._hurry = threading.Event()
        """Set by whoever waits for the writer: the batch being gathered is committed at once."""
        self._queue: queue.SimpleQueue[_Write | _Mark | None] = queue.SimpleQueue()
        self._held: list[_Write] = []
        """Writes whose batch failed for a full disk, committed first once there is room."""
        self._thread = threading.Thread(target=self._run, name="vobiz-stream-store", daemon=True)
        self._thread.start()

    # --- writes (queued) ---------------------------------------------------------------------

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
    ) -> int:
        """:meth:`CallStore.open_stream`, queued; returns the row id the stream gets."""
        row_id = self._next_row
        self._next_row += 1
        tracks = list(tracks)
        self._put(
            call_id,
            "store the stream",
            lambda store: store.open_stream(
                call_id=call_id,
                stream_id=stream_id,
                started_at=started_at,
                tracks=tracks,
                encoding=encoding,
                sample_rate=sample_rate,
                recording_path=recording_path,
                from_number=from_number,
                to_number=to_number,
                direction=direction,
                account_id=account_id,
                row_id=row_id,
            ),
        )
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
        """:meth:`CallStore.close_stream`, queued (``call_id`` names the call in a failure's
        log line), with the stream's ``events_not_stored`` row if it had events only counted."""
        not_stored = self._budget.settle(row_id)

        def close(store: CallStore) -> None:
            store.close_stream(
                row_id,
                ended_at=ended_at,
                end_reason=end_reason,
                frames_received=frames_received,
                frames_malformed=frames_malformed,
                frames_sent=frames_sent,
                error=error,
            )
            if not_stored is not None:
                owner, counts = not_stored
                store.add_event(owner, row_id, NOT_STORED, counts, at=ended_at)

        self._put(call_id, f"store the end of stream row {row_id}", close)

    def update_stream(
        self, row_id: int, *, byte_order: str | None = None, call_id: str | None = None
    ) -> None:
        """:meth:`CallStore.update_stream` of what a stream learns as it runs, queued."""
        self._put(
            call_id,
            f"store what is known of stream row {row_id}",
            lambda store: store.update_stream(row_id, byte_order=byte_order),
        )

    def add_event(
        self,
        call_id: str,
        stream_row: int | None,
        kind: str,
        detail: Mapping[str, object],
        *,
        at: datetime,
    ) -> None:
        """:meth:`CallStore.add_event`, queued; or only counted, past the stream's budget or
        with the queue full (the count is stored when the stream closes)."""
        if stream_row is not None and not self._budget.take(stream_row, call_id, kind):
            return
        if self._pending() >= self.max_pending:
            self._note_behind()
            if stream_row is not None:
                self._budget.skip(stream_row, call_id, kind, "arriving with the store behind")
            return
        detail = dict(detail)
        self._put(
            call_id,
            f"store a {kind} event",
            lambda store: store.add_event(call_id, stream_row, kind, detail, at=at),
        )

    def add_status_callback(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> concurrent.futures.Future[None]:
        """:meth:`CallStore.add_status_callback`, queued; the future says whether it was
        committed (after :meth:`settled`, it is done unless the writer is far behind)."""
        stored: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._put(
            callback.call_uuid,
            f"store a {callback.event!r} status callback",
            lambda store: store.add_status_callback(callback, received_at, signature),
            stored,
        )
        return stored

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
                    f"call store {self.path}: {self._pending()} writes are waiting for the disk;"
                    f" the callback was not stored, send it again"
                )
            await asyncio.sleep(0.02)

    def mark_interrupted(self, now: datetime) -> int:
        """:meth:`CallStore.mark_interrupted`, done now (once, at start, before any stream)."""
        self.flush()
        return self._reader.mark_interrupted(now)

    def _put(
        self,
        call_id: str | None,
        what: str,
        apply: Callable[[CallStore], object],
        stored: concurrent.futures.Future[None] | None = None,
    ) -> None:
        self._queued += 1
        self._queue.put(_Write(call_id, what, apply, stored))

    def _pending(self) -> int:
        """Writes queued and not yet finished by the writer."""
        pending = self._queued - self._done
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
                self.path,
                self._pending(),
            )

    # --- waiting for the writer, and reads ---------------------------------------------------

    def flush(self) -> None:
        """Block until every write queued so far is committed (or failed)."""
        reached = threading.Event()
        self._queue.put(_Mark(reached.set))
        self._hurry.set()
        if not reached.wait(self.MARK_TIMEOUT):
            log.warning("store %s: the writer is %.0f s behind", self.path, self.MARK_TIMEOUT)

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
            log.warning("store %s: the writer is %.0f s behind", self.path, self.MARK_TIMEOUT)

    def list_calls(self, limit: int = 100, offset: int = 0) -> list[CallRecord]:
        """:meth:`CallStore.list_calls`, once the writes queued before it are committed."""
        self.flush()
        return self._reader.list_calls(limit, offset)

    async def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]:
        """:meth:`CallStore.calls_json` once the writes queued before it are committed, read
        on the reading thread: the event loop goes on meanwhile."""
        await self.settled()
        return await self._reads.read(lambda store: store.calls_json(limit, offset))

    async def call_json(self, call_id: str) -> str | None:
        """:meth:`CallStore.call_json`, as :meth:`calls_json` reads."""
        await self.settled()
        return await self._reads.read(lambda store: store.call_json(call_id))

    def get_call(self, call_id: str) -> CallRecord | None:
        """:meth:`CallStore.get_call`, once the writes queued before it are committed."""
        self.flush()
        return self._reader.get_call(call_id)

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            store = CallStore(self.path)
        except StoreError as exc:
            log.error("%s; nothing more will be stored", exc)
            store = None
        try:
            while self._take(store):
                pass
        finally:
            if self._held:
                log.error(
                    "store %s: still no room at stop: %d held writes lost (the next start marks "
                    "their open streams interrupted)",
                    self.path,
                    len(self._held),
                )
            if store is not None:
                store.close()

    def _take(self, store: CallStore | None) -> bool:
        """Commit one batch of what is queued; False once :meth:`close` asked to stop.

        After the first write of a batch the writer waits ``gather`` seconds for more (each
        wake-up of this thread takes the interpreter lock from the event loop, so it should come
        once per batch, not once per write), unless someone waits for the writes (:meth:`flush`,
        :meth:`settled`): then at once.
        """
        try:
            first = self._queue.get(timeout=self.FULL_RETRY if self._held else None)
        except queue.Empty:  # nothing new: try the held writes again
            first = _Mark(lambda: None)
        batch = [first]
        if isinstance(first, _Write):
            self._hurry.wait(self._gather)
        self._hurry.clear()
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        writes = self._held + [item for item in batch if isinstance(item, _Write)]
        if writes and store is not None:
            try:
                with store.batch():
                    for write in writes:
                        self._apply(store, write)
            except StoreError as exc:
                self._hold_or_lose(exc, writes)
            else:
                if self._held:
                    log.warning(
                        "store %s: room again: stored %d held writes", self.path, len(writes)
                    )
                self._held = []
                _settle(writes, None)
                self._done += len(writes)
        elif writes:
            _settle(writes, StoreError(f"store {self.path} is closed"))
            self._done += len(writes)
        for item in batch:
            if isinstance(item, _Mark):
                item.reached()
        return None not in batch

    def _hold_or_lose(self, exc: StoreError, writes: list[_Write]) -> None:
        """A batch failed: held for the next try if the disk is full (logged once, when it
        fills), else lost (logged)."""
        if _disk_full(exc) and len(writes) <= self.MOST_HELD:
            if not self._held:
                log.error(
                    "%s: holding the writes until there is room (free space on the disk of %s)",
                    exc,
                    self.path.parent,
                )
            # Someone waits on a status callback: it is answered 503 and the carrier sends it
            # again, so it is not held (and not stored twice).
            awaited = [write for write in writes if write.stored is not None]
            _settle(awaited, exc)
            self._done += len(awaited)
            self._held = [write for write in writes if write.stored is None]
            return
        log.error("%s: %d writes lost", exc, len(writes))
        _settle(writes, exc)
        self._done += len(writes)
        self._held = []

    @staticmethod
    def _apply(store: CallStore, write: _Write) -> None:
        """One write of a batch; a failure undoes it alone and is logged, never raised (but a
        full disk fails the batch, to be tried again whole)."""
        try:
            write.apply(store)
        except StoreError as exc:
            if _disk_full(exc):
                raise
            log.error("call %s: cannot %s: %s", loggable(write.call_id or "-"), write.what, exc)
            _settle([write], exc)
        except Exception as exc:  # a bug in one write must not stop the writer (nor later ones)
            log.exception("call %s: cannot %s", loggable(write.call_id or "-"), write.what)
            _settle([write], StoreError(f"cannot {write.what}: {exc!r}"))

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the file; safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._hurry.set()
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                log.error("store %s: the writer did not finish in 30 s", self.path)
        self._reads.close()
        self._reader.close()


def _settle(writes: Sequence[_Write], error: StoreError | None) -> None:
    """Resolve the futures of ``writes`` not resolved yet: committed, or failed with ``error``."""
    for write in writes:
        if write.stored is not None and not write.stored.done():
            if error is None:
                write.stored.set_result(None)
            else:
                write.stored.set_exception(error)


def _disk_full(exc: StoreError) -> bool:
    """Whether SQLite failed for want of disk space (SQLITE_FULL)."""
    cause = exc.__cause__
    return isinstance(cause, sqlite3.Error) and cause.sqlite_errorcode == sqlite3.SQLITE_FULL


# --- opening ---------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    if not path.parent.is_dir():
        raise StoreError(
            f"cannot open call store {path}: directory {path.parent} does not exist;"
            " create it or choose another path"
        )
    try:
        # Autocommit mode: _transaction issues BEGIN and COMMIT itself.
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open call store {path}: {exc}; {_access_hint(path)}") from exc
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        _ensure_schema(db, path)
    except sqlite3.Error as exc:
        db.close()
        hint = (
            "move it away or choose another path"
            if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB
            else _access_hint(path)
        )
        raise StoreError(f"cannot open call store {path}: {exc}; {hint}") from exc
    except StoreError:
        db.close()
        raise
    return db


def _access_hint(path: Path) -> str:
    return (
        f"check that {path} and its directory are readable and writable by this user"
        f" (SQLite also creates {path.name}-wal and {path.name}-shm beside it)"
    )


def _ensure_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a new database; refuse a database that is not a store of ours."""
    with _transaction(db, "BEGIN IMMEDIATE"):
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" in tables:
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                raise StoreError(
                    f"call store {path} has schema version {None if row is None else row[0]},"
                    f" this vobiz-stream reads version {SCHEMA_VERSION}: open it with the"
                    " vobiz-stream that made it, or choose another path"
                )
        elif tables:
            raise StoreError(
                f"{path} is a SQLite database but not a vobiz-stream call store (its tables:"
                f" {', '.join(sorted(tables))}): choose another path"
            )
        else:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
