"""Reading the call store as JSON, built by SQLite, on a thread of its own.

``GET /calls`` must not stall the event loop, which carries every call's frames. So reads run on
one thread of their own with a connection of their own (:class:`CallReader`), and SQLite builds
the JSON text itself (:data:`CALLS_PAGE`, :data:`ONE_CALL`): ``sqlite3`` lets go of the
interpreter lock while SQLite works, so the loop keeps running while a page is read, instead of
waiting for thousands of rows to become Python objects on the reading thread.

The JSON has the shape of :class:`~vobiz_stream.store.CallRecord`: a call with its ``streams``,
``events`` and ``status_callbacks``, each oldest first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from vobiz_stream.closing import Closeable

if TYPE_CHECKING:
    from vobiz_stream.store import CallStore

__all__ = ["CALLS_PAGE", "ONE_CALL", "CallReader"]

_Result = TypeVar("_Result")


def _list_of(table: str, key: str, fields: str) -> str:
    """The rows of ``table`` whose ``key`` is the call's id, oldest first, as one JSON array."""
    return (
        f"json((SELECT json_group_array(json_object({fields}))"
        f" FROM (SELECT * FROM {table} WHERE {key} = c.call_id ORDER BY id)))"
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
            'streams', {_list_of("streams", "call_id", _STREAM)},
            'events', {_list_of("call_events", "call_id", _EVENT)},
            'status_callbacks', {_list_of("status_callbacks", "call_uuid", _CALLBACK)}
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


class CallReader(Closeable):
    """Runs reads of a call store on one thread, with a :class:`CallStore` of that thread's own
    (opened by ``open_store`` at the first read): reads never wait on the event loop's thread
    nor hold it up, and they run one at a time, in order."""

    def __init__(self, open_store: Callable[[], CallStore]) -> None:
        self._open_store = open_store
        self._store: CallStore | None = None
        """Used on the reading thread only (a SQLite connection belongs to its thread)."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vobiz-stream-reads")

    async def read(self, read: Callable[[CallStore], _Result]) -> _Result:
        """``read(store)`` on the reading thread; raises what it raises (:class:`StoreError`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._on_thread, read)

    def _on_thread(self, read: Callable[[CallStore], _Result]) -> _Result:
        if self._store is None:
            self._store = self._open_store()
        return read(self._store)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Finish the reads under way, close the connection and the thread; safe twice."""
        try:
            self._thread.submit(self._close_store)
        except RuntimeError:  # already shut down
            return
        self._thread.shutdown(wait=True)
