"""The SQLite call store's file: opening it, its tables, and the version it is at.

A new file gets the tables of :data:`SCHEMA_VERSION`; a file of another version, or a SQLite
database that is not a call store, is refused with an error that says what to do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vobiz_stream.errors import StoreError

__all__ = ["SCHEMA_VERSION", "connect", "transaction"]

SCHEMA_VERSION = 1

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
    """Create the tables in a new database; refuse a database that is not a store of ours."""
    with transaction(db, "BEGIN IMMEDIATE"):
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
