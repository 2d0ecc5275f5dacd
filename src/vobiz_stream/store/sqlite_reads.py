"""Reading the SQLite call store as JSON, built by SQLite itself.

``GET /calls`` must not stall the event loop, which carries every call's frames. So reads run on
a thread of their own (:class:`~vobiz_stream.store.read_thread.CallReader`), and SQLite builds
the JSON text itself (:data:`CALLS_PAGE`, :data:`ONE_CALL`): ``sqlite3`` lets go of the
interpreter lock while SQLite works, so the loop keeps running while a page is read, instead of
waiting for thousands of rows to become Python objects on the reading thread.

The JSON has the shape of :class:`~vobiz_stream.store.CallRecord`: a call with its ``streams``,
``events`` and ``status_callbacks``, each oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import orjson

from vobiz_stream.closing import Closeable
from vobiz_stream.errors import StoreError
from vobiz_stream.store.interface import (
    CallQuery,
    CallRecord,
    StoreFullError,
    call_from_json,
    calls_from_json,
)
from vobiz_stream.store.sqlite_schema import connect, transaction
from vobiz_stream.store.sqlite_search import search_sql

__all__ = ["CALLS_PAGE", "CALL_SUMMARIES", "ONE_CALL", "SqliteFile"]


def _list_of(table: str, key: str, order: str, fields: str) -> str:
    """The rows of ``table`` whose ``key`` is the call's id, in ``order`` (oldest first by
    their time, then id), as one JSON array."""
    return (
        f"json((SELECT json_group_array(json_object({fields}))"
        f" FROM (SELECT * FROM {table} WHERE {key} = c.call_id ORDER BY {order})))"
    )


_STREAM = (
    "'id', id, 'stream_id', stream_id, 'started_at', started_at, 'ended_at', ended_at,"
    " 'end_reason', end_reason, 'tracks', json(tracks), 'encoding', encoding,"
    " 'sample_rate', sample_rate, 'byte_order', byte_order, 'recording_path', recording_path,"
    " 'frames_received', frames_received, 'frames_malformed', frames_malformed,"
    " 'frames_sent', frames_sent, 'error', error"
)
_EVENT = "'id', id, 'stream_row', stream_row, 'at', at, 'kind', kind, 'detail', json(detail)"
_CALLBACK = (
    "'id', id, 'received_at', received_at, 'event', event, 'stream_id', stream_id,"
    " 'signature', signature, 'fields', json(fields)"
)


def _calls_as_json(calls: str) -> str:
    """One JSON object per row of the ``calls`` query ``calls``, with its children."""
    return f"""
        SELECT json_object(
            'call_id', c.call_id, 'status', c.status, 'first_seen', c.first_seen,
            'last_seen', c.last_seen, 'from_number', c.from_number, 'to_number', c.to_number,
            'direction', c.direction, 'account_id', c.account_id,
            'streams', {_list_of("streams", "call_id", "started_at, id", _STREAM)},
            'events', {_list_of("call_events", "call_id", "at, id", _EVENT)},
            'status_callbacks', {
        _list_of("status_callbacks", "call_uuid", "received_at, id", _CALLBACK)
    }
        ) AS call
        FROM ({calls}) AS c
    """


CALLS_PAGE = f"""
    SELECT json_group_array(json(call)) FROM ({
    _calls_as_json("SELECT * FROM calls ORDER BY first_seen DESC, rowid DESC LIMIT ? OFFSET ?")
})
"""
"""A JSON array of ``limit`` calls from ``offset`` (parameters in that order), newest first."""

ONE_CALL = _calls_as_json("SELECT * FROM calls WHERE call_id = ?")
"""The call whose id is the parameter as a JSON object; no row when it is unknown."""

CALL_SUMMARIES = f"""
    SELECT json_group_array(json_object(
        'call_id', c.call_id, 'status', c.status, 'first_seen', c.first_seen,
        'last_seen', c.last_seen, 'from_number', c.from_number, 'to_number', c.to_number,
        'direction', c.direction, 'account_id', c.account_id,
        'streams', {_list_of("streams", "call_id", "started_at, id", _STREAM)}
    ))
    FROM (SELECT calls.* FROM json_each(?) AS page JOIN calls ON calls.rowid = page.value
          ORDER BY page.key) AS c
"""
"""Call summaries (no events, no callbacks) as one JSON array, of the calls whose row ids are
the parameter (a JSON array), in its order."""


class SqliteFile(Closeable):
    """A connection to the call store's SQLite file at ``path`` (created on first open), and its
    reads; :class:`~vobiz_stream.store.sqlite.CallStore` adds the writes.

    Every method raises :class:`StoreError` and nothing else when the database fails
    (:class:`StoreFullError` when the disk is full). Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path)

    def list_calls(self, limit: int = 100, offset: int = 0) -> list[CallRecord]:
        """The ``limit`` newest calls (by first seen) after the ``offset`` newest, newest first,
        JSON-ready.

        Each call holds its ``streams``, ``events`` and ``status_callbacks``, oldest first.
        """
        return calls_from_json(self.calls_json(limit, offset)[0])

    def get_call(self, call_id: str) -> CallRecord | None:
        """One call shaped as in :meth:`list_calls`, or None when the store does not know it."""
        return call_from_json(self.call_json(call_id))

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

    def search_calls_json(self, query: CallQuery) -> tuple[str, bool]:
        """The calls ``query`` finds, newest first, as a JSON array of
        :class:`~vobiz_stream.store.CallSummary`, and whether more follow."""
        calls, parameters = search_sql(query)
        with self._read("search calls"):
            rows = [row[0] for row in self._db.execute(calls, parameters)]
            page = orjson.dumps(rows[: query.limit]).decode()
            (text,) = self._db.execute(CALL_SUMMARIES, (page,)).fetchone()
        return cast(str, text), len(rows) > query.limit

    def last_stream_row(self) -> int:
        """The highest stream row id so far (0 in a new store)."""
        with self._read("read the last stream row"):
            row = self._db.execute("SELECT coalesce(max(id), 0) FROM streams").fetchone()
        return int(row[0])

    @contextmanager
    def _write(self, what: str) -> Iterator[None]:
        with self._failing_as_store_error(what), transaction(self._db, "BEGIN IMMEDIATE"):
            yield

    @contextmanager
    def _read(self, what: str) -> Iterator[None]:
        with self._failing_as_store_error(what), transaction(self._db, "BEGIN"):
            yield

    @contextmanager
    def _failing_as_store_error(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            error = StoreFullError if exc.sqlite_errorcode == sqlite3.SQLITE_FULL else StoreError
            raise error(f"call store {self.path}: cannot {what}: {exc}") from exc

    def close(self) -> None:
        self._db.close()
