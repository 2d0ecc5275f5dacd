"""The call store's two databases as the store tests use them, so each test runs on both.

:class:`Backend` makes a store on a real SQLite file or a real PostgreSQL database (from the
``postgres_url`` fixture), reads it with a connection of its own (as another program would) and
can hold the database's write lock from outside. :class:`Plain` is an engine used without the
write queue: its keyword methods are the write values of :mod:`vobiz_stream.store.writes`
handed to the engine's ``apply``, the one way the server writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from vobiz_stream.core.callbacks import SignatureCheck, StatusCallback
from vobiz_stream.errors import StoreError
from vobiz_stream.store import CallRecord, QueuedCallStore, QueuedStore, StoreEngine
from vobiz_stream.store.interface import call_from_json, calls_from_json
from vobiz_stream.store.postgres import PostgresEngine, QueuedPostgresStore
from vobiz_stream.store.sqlite import CallStore
from vobiz_stream.store.writes import (
    AddEvent,
    AddStatusCallback,
    CloseStreamRow,
    OpenStreamRow,
    UpdateStreamRow,
    Write,
)

STORE_TABLES = ("calls", "streams", "call_events", "status_callbacks", "workers")


class Plain:
    """A store engine without the queue, with the keyword methods the tests call."""

    def __init__(self, engine: StoreEngine) -> None:
        self.engine = engine

    def open_stream(self, *, tracks: Sequence[str], **fields: Any) -> int:
        return int(self.engine.apply(OpenStreamRow(tracks=tuple(tracks), **fields)))  # type: ignore[call-overload]

    def update_stream(self, row_id: int, **fields: Any) -> None:
        self.engine.apply(UpdateStreamRow(row_id, **fields))

    def close_stream(self, row_id: int, **fields: Any) -> bool:
        return bool(self.engine.apply(CloseStreamRow(row_id, **fields)))

    def add_event(
        self,
        call_id: str,
        stream_row: int | None,
        kind: str,
        detail: Mapping[str, object],
        *,
        at: datetime,
    ) -> int:
        return int(self.engine.apply(AddEvent(call_id, stream_row, kind, detail, at)))  # type: ignore[call-overload]

    def add_status_callback(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> int:
        return int(self.engine.apply(AddStatusCallback(callback, received_at, signature)))  # type: ignore[call-overload]

    def register_worker(self, host: str, pid: int, started_at: datetime) -> int:
        return self.engine.register_worker(host, pid, started_at)

    def get_call(self, call_id: str) -> CallRecord | None:
        return call_from_json(self.engine.call_json(call_id))

    def list_calls(self, limit: int = 100, offset: int = 0) -> list[CallRecord]:
        return calls_from_json(self.engine.calls_json(limit, offset)[0])

    def mark_interrupted(self, now: datetime) -> int:
        return self.engine.mark_interrupted(now)

    def last_stream_row(self) -> int:
        return self.engine.last_stream_row()

    def apply_batch(self, writes: Sequence[Write]) -> list[StoreError | None]:
        return self.engine.apply_batch(writes)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Plain:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Backend:
    """One database for a test: ``name`` is ``sqlite`` or ``postgresql``; ``url`` as given to
    ``--database``."""

    name: str
    url: str

    def plain(self) -> Plain:
        raise NotImplementedError

    def queued(self, **options: Any) -> QueuedStore:
        raise NotImplementedError

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """``query`` run and committed with a connection of its own (plain SQL both databases
        take), and the rows it returns."""
        raise NotImplementedError

    def hold_writes(self) -> AbstractContextManager[None]:
        """Another connection holds the store's write lock until the block ends."""
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def plain(self) -> Plain:
        return Plain(CallStore(self.path))

    def queued(self, **options: Any) -> QueuedStore:
        return QueuedCallStore(self.path, **options)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path)) as db, db:
            return db.execute(query).fetchall()

    @contextmanager
    def hold_writes(self) -> Iterator[None]:
        with closing(sqlite3.connect(self.path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("COMMIT")


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def plain(self) -> Plain:
        return Plain(PostgresEngine.open(self.url))

    def queued(self, **options: Any) -> QueuedStore:
        return QueuedPostgresStore(self.url, **options)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as db:
            cursor = db.execute(query.encode())
            return cursor.fetchall() if cursor.description is not None else []

    @contextmanager
    def hold_writes(self) -> Iterator[None]:
        with psycopg.connect(self.url) as other:
            other.execute(f"LOCK TABLE {', '.join(STORE_TABLES)} IN EXCLUSIVE MODE".encode())
            yield
            other.commit()


def backend_of(database: str | None, data_dir: Path) -> Backend:
    """The store a server with this ``database`` setting and ``data_dir`` uses."""
    if database is None:
        return SqliteBackend(data_dir / "vobiz-stream.db")
    return PostgresBackend(database)
