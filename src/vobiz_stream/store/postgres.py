"""Calls, their streams, their events and their status callbacks, kept in PostgreSQL.

For several server processes (or machines) sharing one call store: a status callback that
reaches another process than the call's media socket still joins its call, and each process's
writes read back in time order. :class:`PostgresEngine` is the
:class:`~vobiz_stream.store.interface.StoreEngine` (psycopg 3, connections from a psycopg_pool
pool); :class:`QueuedPostgresStore` is the write queue over it that the server uses, as
:class:`~vobiz_stream.store.sqlite.QueuedCallStore` is for SQLite: writes never wait, a thread
of the store commits them in batches (one transaction each, sent in one pipeline: one round
trip per batch), and the queue's bounds hold as they do for SQLite.

What sharing asks of the engine: stream row ids come from a sequence (each process reserves a
block at a time); each process registers as a ``workers`` row and holds an advisory lock on
its id for as long as it runs, so a process starting up marks interrupted only the open streams
of processes whose lock is gone (killed, crashed), never those of one still running; and
closing a stream locks its call's row first, so two processes closing the last two streams of a
call at once still leave it ended. A database that cannot be reached, or has no room, makes the
queue hold its writes and try again (:class:`~vobiz_stream.store.interface.StoreFullError`).
PostgreSQL text cannot hold the NUL character: one in a value from outside is stored as U+FFFD.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import StrBinaryDumper, StrDumper
from psycopg_pool import ConnectionPool, PoolTimeout

from vobiz_stream.errors import StoreError
from vobiz_stream.store.batch import each_alone
from vobiz_stream.store.interface import CallQuery, CallStatus, StoreFullError
from vobiz_stream.store.postgres_alive import AliveLock
from vobiz_stream.store.postgres_reads import POSTGRES_CALLS_PAGE, POSTGRES_ONE_CALL
from vobiz_stream.store.postgres_schema import LOCK_CLASS, connect_postgres, ensure_schema
from vobiz_stream.store.postgres_search import postgres_search_page
from vobiz_stream.store.postgres_writes import Answer, Connection, send_write, to_ms, write_on
from vobiz_stream.store.queue import QueuedStore
from vobiz_stream.store.writes import Write

__all__ = ["PostgresEngine", "QueuedPostgresStore", "postgres_where"]

log = logging.getLogger("vobiz_stream.store")

_LIVE_WORKERS = f"""
    SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
    AND classid = ({LOCK_CLASS})::oid
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

_MARK_INTERRUPTED = f"""
    WITH gone AS (
        UPDATE streams SET ended_at = %(now)s, end_reason = %(reason)s
        WHERE ended_at IS NULL AND (worker IS NULL OR worker::oid NOT IN ({_LIVE_WORKERS}))
        RETURNING call_id
    ), calls_gone AS (
        UPDATE calls SET status = %(reason)s, last_seen = greatest(last_seen, %(now)s)
        WHERE call_id IN (SELECT call_id FROM gone)
    )
    SELECT count(*) FROM gone
"""

_HELD_ERRORS = ("08", "40", "53", "57")
"""SQLSTATE classes of failures that pass (connection, a deadlock, no room, a server restart):
the queue holds the writes and tries them again."""


class _NulFreeStr(StrDumper):
    """Text for PostgreSQL, which cannot store NUL: it becomes U+FFFD."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


class _NulFreeBinaryStr(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


def _configure(connection: Connection) -> None:
    connection.adapters.register_dumper(str, _NulFreeStr)
    connection.adapters.register_dumper(str, _NulFreeBinaryStr)


def postgres_where(url: str) -> str:
    """``url`` as shown in log lines and errors: no password; raises :class:`StoreError`."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(
            f"--database {url.rsplit('@', maxsplit=1)[-1]!r} is not a PostgreSQL URL: {exc}"
        ) from exc
    host, port = parts.get("host", "localhost"), parts.get("port", "5432")
    return f"postgresql://{parts.get('user', '')}@{host}:{port}/{parts.get('dbname', '')}"


def _error_class(exc: Exception) -> type[StoreError]:
    if isinstance(exc, PoolTimeout):
        return StoreFullError
    state = getattr(exc, "sqlstate", None)
    if state is None and isinstance(exc, psycopg.OperationalError):
        return StoreFullError  # the connection was lost
    return StoreFullError if state is not None and state[:2] in _HELD_ERRORS else StoreError


class PostgresEngine:
    """The call store in the PostgreSQL database of ``pool``; ``where`` names it in errors.

    Each write (:meth:`apply`) is a transaction of its own, a batch of them (:meth:`apply_batch`)
    one transaction sent in one pipeline; each read a connection from the pool for its time.
    """

    def __init__(
        self, pool: ConnectionPool[Connection], where: str, *, owns_pool: bool = False
    ) -> None:
        self.where = where
        self._pool = pool
        self._owns_pool = owns_pool
        self._batch: Connection | None = None
        """The connection of the batch done write by write (:meth:`apply_batch`), if any."""
        self._kept: Connection | None = None
        """The connection of :meth:`apply_batch`, kept from one batch to the next (taking one
        from the pool costs a round trip, its check); given back when a batch fails whole."""

    @classmethod
    def open(cls, url: str) -> PostgresEngine:
        """An engine with a pool of its own on the database at ``url`` (schema checked and
        upgraded), for use without the write queue; :meth:`close` closes the pool."""
        where = postgres_where(url)
        with connect_postgres(url, where) as db:
            ensure_schema(db, where)
        return cls(_open_pool(url, where, 2), where, owns_pool=True)

    def __enter__(self) -> PostgresEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _failing_as_store_error(self, what: str) -> Iterator[None]:
        try:
            yield
        except (psycopg.Error, PoolTimeout) as exc:
            error = _error_class(exc)
            raise error(f"call store {self.where}: cannot {what}: {exc}".strip()) from exc

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        """The connection for one write outside a batch: a transaction of its own."""
        with (
            self._failing_as_store_error(what),
            self._pool.connection() as db,
            db.transaction(),
        ):
            yield db

    def apply_batch(self, writes: Sequence[Write]) -> list[StoreError | None]:
        """``writes`` in one transaction; a write that fails is undone alone and logged.

        Writes rarely fail, so they are first all sent in one pipeline, without waiting for any
        result: one round trip for the batch, and one for its commit. Their answers are read
        after that; one that says its stream row does not exist changed nothing, and fails
        alone. When the database refuses a statement, the transaction is rolled back and every
        write is done again in the careful path, each in a savepoint of its own
        (:meth:`_each_alone`), which finds the failing one.
        """
        try:
            try:
                db, answers = self._send_batch(writes)
            except StoreFullError:
                raise
            except Exception as exc:  # a write was refused: find which, each in a savepoint
                db = self._kept_connection()
                log.debug("store %s: a batch failed, done again write by write: %s",
                          self.where, exc)  # fmt: skip
                with self._failing_as_store_error("commit a batch of writes"):
                    db.rollback()
                return self._each_alone(db, writes)
            with self._failing_as_store_error("commit a batch of writes"):
                db.commit()
        except BaseException:
            self._let_go()  # the pool checks it, and replaces it if it is broken
            raise
        # Committed: each answer is its write's outcome (each_alone reads them in order).
        unread = iter(answers)
        return each_alone(lambda _: next(unread)(), writes)

    def _send_batch(self, writes: Sequence[Write]) -> tuple[Connection, list[Answer]]:
        """The connection kept for batches, and ``writes`` sent on it in one pipeline. A kept
        connection found lost (the database restarted since the last batch, say: nothing was
        committed on it) is replaced once, and the writes are sent again on the new one."""
        with self._failing_as_store_error("commit a batch of writes"):
            kept = self._kept is not None
            db = self._kept_connection()
        try:
            return db, self._pipelined(db, writes)
        except StoreFullError:
            if not (kept and db.broken):
                raise
        self._let_go()
        with self._failing_as_store_error("commit a batch of writes"):
            db = self._kept_connection()
        return db, self._pipelined(db, writes)

    def _kept_connection(self) -> Connection:
        if self._kept is None:
            self._kept = self._pool.getconn()
        return self._kept

    def _let_go(self) -> None:
        """Give the connection kept for batches back to the pool."""
        kept, self._kept = self._kept, None
        if kept is not None:
            self._pool.putconn(kept)

    def _pipelined(self, db: Connection, writes: Sequence[Write]) -> list[Answer]:
        """Every write of ``writes`` sent in one pipeline, in the transaction it opens; raises
        the first error the database answered."""
        with self._failing_as_store_error("commit a batch of writes"), db.pipeline():
            return [send_write(db, write, self.where) for write in writes]

    def _each_alone(self, db: Connection, writes: Sequence[Write]) -> list[StoreError | None]:
        self._batch = db
        try:
            failures = each_alone(self.apply, writes)
        finally:
            self._batch = None
        with self._failing_as_store_error("commit a batch of writes"):
            db.commit()
        return failures

    def _read(self, what: str, query: bytes | str, params: Sequence[object]) -> Any:
        with self._failing_as_store_error(what), self._pool.connection() as db:
            row = db.execute(query.encode() if isinstance(query, str) else query, params)
            found = row.fetchone()
        return None if found is None else found[0]

    # --- the writes --------------------------------------------------------------------------

    def apply(self, write: Write) -> object:
        """Do ``write`` (:func:`~vobiz_stream.store.postgres_writes.write_on`) in a transaction
        of its own; in the careful path of :meth:`apply_batch`, in a savepoint of its own."""
        db = self._batch
        if db is None:
            with self._write(write.what) as own:
                return self._do(own, write)
        return self._in_savepoint(db, write)

    def _do(self, db: Connection, write: Write) -> object:
        with self._failing_as_store_error(write.what):
            return write_on(db, write, self.where)

    def _in_savepoint(self, db: Connection, write: Write) -> object:
        with self._failing_as_store_error(write.what):
            db.execute("SAVEPOINT one_write")
        try:
            result = self._do(db, write)
        except StoreFullError:
            raise
        except StoreError:
            with self._failing_as_store_error(write.what):
                db.execute("ROLLBACK TO SAVEPOINT one_write")
            raise
        with self._failing_as_store_error(write.what):
            db.execute("RELEASE SAVEPOINT one_write")
        return result

    # --- the rest of the engine --------------------------------------------------------------

    def register_worker(self, host: str, pid: int, started_at: datetime) -> int:
        """A ``workers`` row for this server process; returns its id."""
        with self._write("register this server process") as db:
            row = db.execute(
                "INSERT INTO workers (host, pid, started_at) VALUES (%s, %s, %s) RETURNING id",
                (host, pid, to_ms(started_at)),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def reserve_stream_rows(self, count: int) -> list[int]:
        """``count`` stream row ids no other process will use."""
        with self._failing_as_store_error("reserve stream row ids"), self._pool.connection() as db:
            rows = db.execute(
                "SELECT nextval('stream_rows') FROM generate_series(1, %s)", (count,)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def last_stream_row(self) -> int:
        return int(
            self._read("read the last stream row", "SELECT coalesce(max(id), 0) FROM streams", ())
        )

    def mark_interrupted(self, now: datetime) -> int:
        """Close every stream left open by a server process that no longer runs (its lock is
        gone), ending at ``now``; returns how many. Streams of live processes are left alone."""
        params = {"now": to_ms(now), "reason": CallStatus.INTERRUPTED.value}
        with self._write("mark the streams of stopped processes interrupted") as db:
            row = db.execute(_MARK_INTERRUPTED, params).fetchone()
        assert row is not None
        return int(row[0])

    def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]:
        text = self._read("list calls", POSTGRES_CALLS_PAGE, (limit, offset))
        more = self._read("list calls", "SELECT 1 FROM calls LIMIT 1 OFFSET %s", (offset + limit,))
        return str(text), more is not None

    def call_json(self, call_id: str) -> str | None:
        text = self._read(f"read call {call_id!r}", POSTGRES_ONE_CALL, (call_id,))
        return None if text is None else str(text)

    def search_calls_json(self, query: CallQuery) -> tuple[str, bool]:
        """The calls ``query`` finds, newest first, as a JSON array of
        :class:`~vobiz_stream.store.CallSummary`, and whether more follow (one statement:
        :mod:`~vobiz_stream.store.postgres_search`)."""
        statement, parameters = postgres_search_page(query)
        with self._failing_as_store_error("search calls"), self._pool.connection() as db:
            # Never prepared: a prepared statement soon gets a plan made without the values,
            # which walks the whole date index for a part of a number (90 ms on 100k calls,
            # against 1.5 ms planned for the values given).
            row = db.execute(statement.encode(), parameters, prepare=False).fetchone()
        assert row is not None
        return str(row[0]), bool(row[1])

    def close(self) -> None:
        """Give back the connection kept for batches; close the pool if it is the engine's own
        (else it belongs to the store)."""
        self._let_go()
        if self._owns_pool:
            self._pool.close()


class QueuedPostgresStore(QueuedStore):
    """The write queue over a :class:`PostgresEngine` on the database at ``url``
    (``postgresql://user:password@host:port/database``): the server's store when several
    processes share one database. Opening checks and upgrades the schema and raises
    :class:`StoreError` with what to do when the database cannot be reached or is not ours."""

    ROWS_PER_RESERVATION = 100
    """Stream row ids reserved at a time (one round trip per this many streams)."""

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 500,
        gather: float = 0.05,
        max_pending: int = QueuedStore.MAX_PENDING,
        events_per_kind: int = QueuedStore.EVENTS_PER_KIND,
        pool_size: int = 4,
    ) -> None:
        where = postgres_where(url)
        first = connect_postgres(url, where)
        try:
            ensure_schema(first, where)
            self._pool = _open_pool(url, where, pool_size)
        except BaseException:
            first.close()
            raise
        self._alive = AliveLock(url, where, first)
        """Held while this store is open: says this process is alive."""
        self._rows: deque[int] = deque()
        super().__init__(
            lambda: PostgresEngine(self._pool, where),
            where,
            f"check that PostgreSQL at {where} is running, reachable and has free disk space",
            max_batch=max_batch,
            gather=gather,
            max_pending=max_pending,
            events_per_kind=events_per_kind,
        )
        self._alive.take(self.worker)

    def _new_stream_row(self) -> int:
        if not self._rows:
            self._rows.extend(self._reader_engine().reserve_stream_rows(self.ROWS_PER_RESERVATION))
        return self._rows.popleft()

    def _reader_engine(self) -> PostgresEngine:
        engine = self._reader
        assert isinstance(engine, PostgresEngine)
        return engine

    def close(self) -> None:
        """Commit what is queued, then let go of the database (and of this process's lock)."""
        super().close()
        self._pool.close()
        self._alive.close()


def _open_pool(url: str, where: str, size: int) -> ConnectionPool[Connection]:
    """A pool of up to ``size`` connections to ``url``, with one open already; each is checked
    as it is taken, so one a database restart ended is replaced, not used."""
    pool: ConnectionPool[Connection] = ConnectionPool(
        url, min_size=1, max_size=size, timeout=5.0, configure=_configure,
        check=ConnectionPool.check_connection, name="vobiz-stream-store", open=False,
    )  # fmt: skip
    try:
        pool.open(wait=True, timeout=10.0)
    except PoolTimeout as exc:
        pool.close()
        raise StoreError(f"cannot open call store {where}: no connection in 10 s") from exc
    return pool
