"""The SQLite call store's file: opening it, its tables, and the version it is at.

A new file gets the tables of :data:`~vobiz_stream.store.migrations.SCHEMA_VERSION`, and a file
of an older version is brought up to it (:mod:`~vobiz_stream.store.migrations`); a file of a
newer version, or a SQLite database that is not a call store, is refused with an error that says
what to do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vobiz_stream.errors import StoreError
from vobiz_stream.store.migrations import steps_after

__all__ = ["SQLITE_STEPS", "connect", "transaction"]

_VERSION_1 = (
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

_VERSION_2 = (
    """CREATE TABLE workers (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL
    )""",
    "ALTER TABLE streams ADD COLUMN worker INTEGER REFERENCES workers (id)",
    # A call's events and callbacks are read back in time order.
    "DROP INDEX call_events_by_call",
    "CREATE INDEX call_events_by_call ON call_events (call_id, at, id)",
    "DROP INDEX status_callbacks_by_call",
    "CREATE INDEX status_callbacks_by_call ON status_callbacks (call_uuid, received_at, id)",
)

_VERSION_3 = (
    # The call search (sqlite_search.py). A version-2 file may have them already: the code of
    # that version added them when it opened a file that lacked them.
    "CREATE INDEX IF NOT EXISTS calls_by_status ON calls (status, first_seen)",
    "CREATE INDEX IF NOT EXISTS calls_by_numbers ON calls (first_seen, from_number, to_number)",
)

_VERSION_4 = ()
"""Version 4 adds only what server processes sharing a PostgreSQL database share (nonces of signed
requests, audio for calls another process holds, live calls): one process on a SQLite file keeps
its nonces in memory and has nothing to share."""

SQLITE_STEPS = {1: _VERSION_1, 2: _VERSION_2, 3: _VERSION_3, 4: _VERSION_4}
"""The schema steps by version (:func:`~vobiz_stream.store.migrations.steps_after`)."""


def connect(path: Path) -> sqlite3.Connection:
    if not path.parent.is_dir():
        raise StoreError(
            f"cannot open call store {path}: directory {path.parent} does not exist;"
            " create it or choose another path"
        )
    try:
        # Autocommit mode: transaction() issues BEGIN and COMMIT itself.
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
    """Create the tables in a new database, bring an older store up to date (in one
    transaction); refuse a database that is not a store of ours."""
    with transaction(db, "BEGIN IMMEDIATE"):
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        found: int | None = None
        if "schema_version" in tables:
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                raise StoreError(f"call store {path} has no schema version: choose another path")
            found = int(row[0])
        elif tables:
            raise StoreError(
                f"{path} is a SQLite database but not a vobiz-stream call store (its tables:"
                f" {', '.join(sorted(tables))}): choose another path"
            )
        steps = steps_after(found, SQLITE_STEPS, str(path))
        for _, statements in steps:
            for statement in statements:
                db.execute(statement)
        if steps:
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (steps[-1][0],))


@contextmanager
def transaction(db: sqlite3.Connection, begin: str) -> Iterator[None]:
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
