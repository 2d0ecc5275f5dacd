"""Calls, their streams, their events and their status callbacks, kept in one SQLite file.

A call (keyed on the carrier's ``callId``) can have several streams: with ``maxRetries`` every
reconnect is a new socket with a new ``streamId`` and the same ``callId`` (protocol.md section 6).
Streams are keyed on a local row id, since a buggy carrier may reuse or omit stream ids.

:class:`CallStore` does each write as one small transaction that reaches rows by key or through
an index, on the caller's thread. The server uses :class:`QueuedCallStore` instead, the write
queue (:mod:`~vobiz_stream.store.queue`) over a :class:`CallStore`, which hands its writes to a
thread of its own and commits them in batches: a commit (and now and then a WAL checkpoint) can
take tens of milliseconds, which on the event loop would hold up every call's frames. The
database runs in WAL mode with ``synchronous=NORMAL``: a commit does not wait for the disk; a
power cut may lose the last commits but never corrupts the file. Times are stored as ISO 8601
UTC text of fixed width (:func:`format_utc`), so ordering the text orders
the times.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import cast

import orjson

from vobiz_stream.core.callbacks import SignatureCheck, StatusCallback, format_utc
from vobiz_stream.core.kinds import EndReason
from vobiz_stream.errors import StoreError
from vobiz_stream.store.batch import each_alone
from vobiz_stream.store.interface import CallStatus
from vobiz_stream.store.queue import QueuedStore
from vobiz_stream.store.sqlite_reads import SqliteFile
from vobiz_stream.store.writes import (
    AddEvent,
    AddStatusCallback,
    CloseStreamRow,
    OpenStreamRow,
    UpdateStreamRow,
    Write,
)

__all__ = ["CallStore", "QueuedCallStore"]


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


class CallStore(SqliteFile):
    """The call history of a server, in the SQLite file at ``path`` (created on first open): the
    reads of :class:`SqliteFile` and the writes, each its own transaction (or a savepoint of
    :meth:`batch`). A :class:`~vobiz_stream.store.interface.StoreEngine`.
    """

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
        worker: int | None = None,
        byte_order: str | None = None,
    ) -> int:
        """Record a new stream of ``call_id`` and make the call active; returns the stream row id.

        Call details given here fill in or replace what the store knew; None leaves them as they
        are. ``row_id`` chooses the row id (:class:`QueuedCallStore` hands ids out before the
        write); None lets SQLite choose. ``worker`` is the server process holding the stream
        (:meth:`register_worker`); ``byte_order`` the L16 byte order, when known at the start.
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
                " sample_rate, recording_path, worker, byte_order)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row_id,
                    stream_id,
                    call_id,
                    started,
                    orjson.dumps([str(track) for track in tracks]).decode(),
                    str(encoding),
                    sample_rate,
                    None if recording_path is None else str(recording_path),
                    worker,
                    byte_order,
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
                (noticed, EndReason.INTERRUPTED.value),
            )
        return cursor.rowcount

    def register_worker(self, host: str, pid: int, started_at: datetime) -> int:
        """A ``workers`` row for the server process opening this file; returns its id."""
        with self._write("register this server process"):
            cursor = self._db.execute(
                "INSERT INTO workers (host, pid, started_at) VALUES (?, ?, ?)",
                (host, pid, format_utc(started_at)),
            )
        return cast(int, cursor.lastrowid)

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

    # --- the writes as values (the queue's writer thread) -----------------------------------------

    def apply(self, write: Write) -> object:
        """Do ``write`` with the method that takes it; returns what that method returns."""
        match write:
            case OpenStreamRow():
                return self.open_stream(
                    call_id=write.call_id,
                    stream_id=write.stream_id,
                    started_at=write.started_at,
                    tracks=write.tracks,
                    encoding=write.encoding,
                    sample_rate=write.sample_rate,
                    recording_path=write.recording_path,
                    from_number=write.from_number,
                    to_number=write.to_number,
                    direction=write.direction,
                    account_id=write.account_id,
                    row_id=write.row_id,
                    worker=write.worker,
                    byte_order=write.byte_order,
                )
            case UpdateStreamRow():
                self.update_stream(
                    write.row_id,
                    byte_order=write.byte_order,
                    frames_received=write.frames_received,
                    frames_malformed=write.frames_malformed,
                    frames_sent=write.frames_sent,
                    error=write.error,
                )
                return None
            case CloseStreamRow():
                return self.close_stream(
                    write.row_id,
                    ended_at=write.ended_at,
                    end_reason=write.end_reason,
                    frames_received=write.frames_received,
                    frames_malformed=write.frames_malformed,
                    frames_sent=write.frames_sent,
                    error=write.error,
                )
            case AddEvent():
                return self.add_event(
                    write.call_id, write.stream_row, write.kind, write.detail, at=write.at
                )
            case AddStatusCallback():
                return self.add_status_callback(write.callback, write.received_at, write.signature)

    # --- transactions and lifetime -----------------------------------------------------------

    def apply_batch(self, writes: Sequence[Write]) -> list[StoreError | None]:
        """``writes`` in one transaction (:meth:`batch`), each in a savepoint of its own: one
        that fails is undone alone, logged, and its error listed at its place."""
        with self.batch():
            return each_alone(self.apply, writes)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around several writes: each write in it is a savepoint, so a write
        that fails is undone alone and the others commit together at the end of the block."""
        with self._write("commit a batch of writes"):
            yield


class QueuedCallStore(QueuedStore):
    """The write queue over a :class:`CallStore` in the SQLite file at ``path``: the server's
    store. Opening raises :class:`StoreError` as :class:`CallStore` does."""

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 500,
        gather: float = 0.05,
        max_pending: int = QueuedStore.MAX_PENDING,
        events_per_kind: int = QueuedStore.EVENTS_PER_KIND,
    ) -> None:
        self.path = path
        super().__init__(
            lambda: CallStore(path),
            str(path),
            f"free space on the disk of {path.parent}",
            max_batch=max_batch,
            gather=gather,
            max_pending=max_pending,
            events_per_kind=events_per_kind,
        )
