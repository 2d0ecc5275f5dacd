"""Reading the PostgreSQL call store as JSON, built by PostgreSQL itself.

As with SQLite (:mod:`~vobiz_stream.store.sqlite_reads`), the database builds the JSON text of
a page of calls, so the server only passes it on. Its shape is
:class:`~vobiz_stream.store.CallRecord`, with times as ISO 8601 UTC text with milliseconds
(``2025-03-04T05:06:07.250Z``), as the SQLite store writes them. A call's streams, events and
status callbacks come oldest first by their own time, then by id: so a call whose events were
written by several server processes reads back in the order they happened.
"""

from __future__ import annotations

__all__ = ["POSTGRES_CALLS_PAGE", "POSTGRES_ONE_CALL", "POSTGRES_SUMMARY", "utc_text"]


def utc_text(column: str) -> str:
    """SQL for the ``timestamptz`` ``column`` as the store's ISO 8601 UTC text."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def _list_of(table: str, key: str, order: str, fields: str) -> str:
    """The rows of ``table`` whose ``key`` is the call's id, in ``order``, as one JSON array."""
    return (
        f"coalesce((SELECT json_agg(json_build_object({fields}) ORDER BY {order})"
        f" FROM {table} AS t WHERE t.{key} = c.call_id), '[]'::json)"
    )


_STREAM = (
    f"'id', id, 'stream_id', stream_id, 'started_at', {utc_text('started_at')},"
    f" 'ended_at', {utc_text('ended_at')}, 'end_reason', end_reason, 'tracks', tracks,"
    " 'encoding', encoding, 'sample_rate', sample_rate, 'byte_order', byte_order,"
    " 'recording_path', recording_path, 'frames_received', frames_received,"
    " 'frames_malformed', frames_malformed, 'frames_sent', frames_sent, 'error', error"
)
_EVENT = (
    f"'id', id, 'stream_row', stream_row, 'at', {utc_text('at')}, 'kind', kind, 'detail', detail"
)
_CALLBACK = (
    f"'id', id, 'received_at', {utc_text('received_at')}, 'event', event,"
    " 'stream_id', stream_id, 'signature', signature, 'fields', fields"
)

_SUMMARY_FIELDS = f"""
    'call_id', c.call_id, 'status', c.status, 'first_seen', {utc_text("c.first_seen")},
    'last_seen', {utc_text("c.last_seen")}, 'from_number', c.from_number,
    'to_number', c.to_number, 'direction', c.direction, 'account_id', c.account_id,
    'streams', {_list_of("streams", "call_id", "started_at, id", _STREAM)}"""

_CALL = f"""json_build_object({_SUMMARY_FIELDS},
    'events', {_list_of("call_events", "call_id", "at, id", _EVENT)},
    'status_callbacks', {_list_of("status_callbacks", "call_uuid", "received_at, id", _CALLBACK)}
)"""

POSTGRES_SUMMARY = f"json_build_object({_SUMMARY_FIELDS})"
"""SQL for the call ``c`` as a JSON :class:`~vobiz_stream.store.CallSummary` (its streams, no
events, no callbacks)."""

POSTGRES_CALLS_PAGE = f"""
    SELECT coalesce(json_agg(page.call ORDER BY page.first_seen DESC, page.added DESC), '[]')::text
    FROM (
        SELECT {_CALL} AS call, c.first_seen, c.added
        FROM calls AS c ORDER BY c.first_seen DESC, c.added DESC LIMIT %s OFFSET %s
    ) AS page
"""
"""A JSON array of ``limit`` calls from ``offset`` (parameters in that order), newest first."""

POSTGRES_ONE_CALL = f"SELECT {_CALL}::text FROM calls AS c WHERE c.call_id = %s"
"""The call whose id is the parameter as a JSON object; no row when it is unknown."""
