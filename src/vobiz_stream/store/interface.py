"""What the app writes to and reads from the call store, whatever database keeps it.

Two interfaces: :class:`CallHistory` is what the server, the keeper and the calls API call (the
queued store, :class:`~vobiz_stream.store.queue.QueuedStore`, is it); :class:`StoreEngine` is what
a database implements to be one (SQLite: :class:`~vobiz_stream.store.sqlite.CallStore`). An engine
applies the write values of :mod:`~vobiz_stream.store.writes` and answers the reads; the queue,
the event budgets and the hold while the disk is full come with the queue, written once.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypedDict, cast

import orjson

from vobiz_stream.core.callbacks import SignatureCheck, StatusCallback
from vobiz_stream.core.kinds import EventKind
from vobiz_stream.errors import StoreError
from vobiz_stream.store.writes import Write

__all__ = [
    "CallHistory",
    "CallQuery",
    "CallRecord",
    "CallStatus",
    "CallSummary",
    "CallbackRecord",
    "EventKind",
    "EventRecord",
    "StoreBusyError",
    "StoreEngine",
    "StoreFullError",
    "StreamRecord",
    "call_from_json",
    "calls_from_json",
]


class StoreBusyError(StoreError):
    """The store's queue stayed full: a status callback could not be queued in time."""


class StoreFullError(StoreError):
    """The database has no room left (a full disk), or cannot be reached for now (a database
    server restarting): the write may succeed later, as it was."""


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


# What list_calls and get_call return: JSON-ready dicts (times as ISO 8601 UTC text) whose keys
# are the column names; the engine builds them (SQLite: vobiz_stream.store.sqlite_reads).


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


class CallSummary(TypedDict):
    """A call as a search finds it: a :class:`CallRecord` without its events and callbacks."""

    call_id: str
    status: str
    first_seen: str
    last_seen: str
    from_number: str | None
    to_number: str | None
    direction: str | None
    account_id: str | None
    streams: list[StreamRecord]


@dataclass(frozen=True, slots=True)
class CallQuery:
    """Which calls a search wants, newest first (by first seen); None leaves a filter out.

    ``number`` is matched as a part of the From or the To number (as typed, no wildcards);
    ``since`` is inclusive, ``until`` exclusive; ``limit`` calls from the ``offset`` newest.
    """

    number: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: CallStatus | None = None
    limit: int = 50
    offset: int = 0


def calls_from_json(text: str) -> list[CallRecord]:
    """The calls of a :meth:`StoreEngine.calls_json` page as Python objects."""
    return cast(list[CallRecord], orjson.loads(text))


def call_from_json(text: str | None) -> CallRecord | None:
    """The call of :meth:`StoreEngine.call_json` as Python objects (None when unknown)."""
    return None if text is None else cast(CallRecord, orjson.loads(text))


class StoreEngine(Protocol):
    """A database keeping the call history, used by one thread at a time.

    Every method raises :class:`StoreError` and nothing else when the database fails, and
    :class:`StoreFullError` when it fails for want of room (the queue then holds the writes and
    tries them again).
    """

    def apply(self, write: Write) -> object:
        """Do one write, in a transaction of its own; returns what it returns."""
        ...

    def apply_batch(self, writes: Sequence[Write]) -> list[StoreError | None]:
        """Do ``writes`` in one transaction: a write that fails is undone alone and logged, and
        its error is at its place in the list returned (None for each write done). Raises
        :class:`StoreError` when the batch fails whole, and then nothing is done
        (:class:`StoreFullError`: it may succeed later, as it was)."""
        ...

    def last_stream_row(self) -> int:
        """The highest stream row id so far (0 in a new store)."""
        ...

    def register_worker(self, host: str, pid: int, started_at: datetime) -> int:
        """Record the server process now opening the store; returns its id (stored with each
        stream it opens)."""
        ...

    def mark_interrupted(self, now: datetime) -> int:
        """Close every stream a previous run left open, ending at ``now``; returns how many.
        (A store shared by several processes closes only those of processes that are gone.)"""
        ...

    def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]:
        """The ``limit`` newest calls after ``offset`` as a JSON array of :class:`CallRecord`,
        and whether more follow."""
        ...

    def call_json(self, call_id: str) -> str | None:
        """One call as a JSON :class:`CallRecord`, or None when it is unknown."""
        ...

    def search_calls_json(self, query: CallQuery) -> tuple[str, bool]:
        """The calls ``query`` finds as a JSON array of :class:`CallSummary`, and whether more
        follow; fast on a large store (the filters and the order use indexes)."""
        ...

    def close(self) -> None: ...


class CallHistory(Protocol):
    """The call store as the app sees it: writes that never wait, reads that see them."""

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
        """Record a new stream of ``call_id``; returns its row id at once. ``byte_order`` is
        the L16 byte order when it is known at the start (configured, not detected)."""
        ...

    def update_stream(
        self, row_id: int, *, byte_order: str | None = None, call_id: str | None = None
    ) -> None: ...

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
    ) -> None: ...

    def add_event(
        self,
        call_id: str,
        stream_row: int | None,
        kind: str,
        detail: Mapping[str, object],
        *,
        at: datetime,
    ) -> None: ...

    def add_status_callback(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> concurrent.futures.Future[None]:
        """Queue a status callback; the future is settled once it is committed or failed."""
        ...

    async def wait_for_room(self) -> None:
        """Return once the queue has room, else raise :class:`StoreBusyError`."""
        ...

    async def settled(self) -> None:
        """Wait until every write queued so far is committed (or failed)."""
        ...

    def mark_interrupted(self, now: datetime) -> int: ...

    async def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]: ...

    async def call_json(self, call_id: str) -> str | None: ...

    async def search_calls_json(self, query: CallQuery) -> tuple[str, bool]: ...

    def close(self) -> None: ...
