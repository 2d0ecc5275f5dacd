"""Each write of the call store as PostgreSQL statements on a connection, as few as it takes.

Every statement is a round trip to the database, which costs the server CPU, so a write is one
statement where it can be (a call's row and its new stream in one, with a common table
expression) and two where it must: closing a stream first locks its call's row, so that another
process closing the call's other stream at the same moment waits for this one and then sees it
closed (the second statement reads the streams after the lock is held).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import psycopg

from vobiz_stream.errors import StoreError
from vobiz_stream.store.interface import CallStatus
from vobiz_stream.store.writes import (
    AddEvent,
    AddStatusCallback,
    CloseStreamRow,
    OpenStreamRow,
    UpdateStreamRow,
    Write,
)

__all__ = ["Connection", "to_ms", "write_on"]

Connection = psycopg.Connection[tuple[Any, ...]]

# A stream opening makes its call active; a status callback records the call without changing
# the status of a call already known.
_UPSERT_CALL = """
    INSERT INTO calls (call_id, first_seen, last_seen, from_number, to_number, direction,
                       account_id, status)
    VALUES (%(call_id)s, %(seen)s, %(seen)s, %(from_number)s, %(to_number)s, %(direction)s,
            %(account_id)s, %(status)s)
    ON CONFLICT (call_id) DO UPDATE SET
        first_seen = least(calls.first_seen, excluded.first_seen),
        last_seen = greatest(calls.last_seen, excluded.last_seen),
        from_number = coalesce(excluded.from_number, calls.from_number),
        to_number = coalesce(excluded.to_number, calls.to_number),
        direction = coalesce(excluded.direction, calls.direction),
        account_id = coalesce(excluded.account_id, calls.account_id),
        status = CASE WHEN excluded.status = 'active' THEN 'active' ELSE calls.status END
    RETURNING call_id
"""

_OPEN_STREAM = f"""
    WITH call AS ({_UPSERT_CALL})
    INSERT INTO streams (id, stream_id, call_id, started_at, tracks, encoding, sample_rate,
                         recording_path, worker)
    SELECT coalesce(%(row_id)s, nextval('stream_rows')), %(stream_id)s, call.call_id, %(seen)s,
           %(tracks)s::json, %(encoding)s, %(sample_rate)s, %(recording_path)s, %(worker)s
    FROM call RETURNING id
"""

_CALLBACK = """
    INSERT INTO status_callbacks (received_at, event, call_uuid, stream_id, signature, fields)
    VALUES (%(seen)s, %(event)s, %(call_id)s, %(stream_id)s, %(signature)s, %(fields)s::json)
    RETURNING id
"""

_CALLBACK_OF_A_CALL = f"""
    WITH call AS ({_UPSERT_CALL})
    INSERT INTO status_callbacks (received_at, event, call_uuid, stream_id, signature, fields)
    SELECT %(seen)s, %(event)s, call.call_id, %(stream_id)s, %(signature)s, %(fields)s::json
    FROM call RETURNING id
"""

_LOCK_CALL_OF_STREAM = """
    SELECT s.ended_at FROM streams AS s JOIN calls AS c USING (call_id)
    WHERE s.id = %s FOR NO KEY UPDATE OF c
"""

# The call ends when no other stream of it is open (this one reads as open in the statement's
# own snapshot, so it is left out by its id).
_CLOSE_STREAM = """
    WITH closed AS (
        UPDATE streams SET ended_at = %(ended)s, end_reason = %(reason)s,
            frames_received = %(received)s, frames_malformed = %(malformed)s,
            frames_sent = %(sent)s, error = coalesce(%(error)s, error)
        WHERE id = %(row)s RETURNING call_id
    )
    UPDATE calls SET last_seen = greatest(last_seen, %(ended)s),
        status = CASE WHEN EXISTS (SELECT 1 FROM streams WHERE streams.call_id = calls.call_id
                                   AND ended_at IS NULL AND streams.id <> %(row)s)
                 THEN status ELSE %(status)s END
    WHERE call_id = (SELECT call_id FROM closed)
"""

_UPDATE_STREAM = """
    UPDATE streams SET byte_order = coalesce(%s, byte_order),
        frames_received = coalesce(%s, frames_received),
        frames_malformed = coalesce(%s, frames_malformed),
        frames_sent = coalesce(%s, frames_sent), error = coalesce(%s, error)
    WHERE id = %s
"""

_EVENT = """
    INSERT INTO call_events (call_id, stream_row, at, kind, detail)
    VALUES (%s, %s, %s, %s, %s::json) RETURNING id
"""


def to_ms(moment: datetime) -> datetime:
    """``moment`` cut to whole milliseconds, the precision the store keeps on both engines."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def write_on(db: Connection, write: Write, where: str) -> object:
    """Do ``write`` on ``db`` (in the transaction it is in); returns the new row's id for a
    stream, an event or a callback, whether the stream was closed now (False: it was already)
    for a close, else None. Raises psycopg's errors, and :class:`StoreError` for a stream row
    that does not exist."""
    match write:
        case OpenStreamRow():
            return _one(db, _OPEN_STREAM, _open_params(write))
        case UpdateStreamRow():
            cursor = db.execute(
                _UPDATE_STREAM,
                (write.byte_order, write.frames_received, write.frames_malformed,
                 write.frames_sent, write.error, write.row_id),
            )  # fmt: skip
            if cursor.rowcount == 0:
                raise StoreError(f"call store {where}: there is no stream row {write.row_id}")
            return None
        case CloseStreamRow():
            return _close_stream(db, write, where)
        case AddEvent():
            params = (write.call_id, write.stream_row, to_ms(write.at), str(write.kind),
                      orjson.dumps(write.detail).decode())  # fmt: skip
            return _one(db, _EVENT, params)
        case AddStatusCallback():
            callback = write.callback
            query = _CALLBACK if callback.call_uuid is None else _CALLBACK_OF_A_CALL
            return _one(db, query, _callback_params(write))


def _one(db: Connection, query: str, params: Any) -> int:
    row = db.execute(query.encode(), params).fetchone()
    if row is None:
        raise StoreError(f"the database answered nothing to {query.split(maxsplit=1)[0]}")
    return int(row[0])


def _open_params(write: OpenStreamRow) -> dict[str, object]:
    return {
        "call_id": write.call_id,
        "seen": to_ms(write.started_at),
        "from_number": write.from_number,
        "to_number": write.to_number,
        "direction": write.direction,
        "account_id": write.account_id,
        "status": CallStatus.ACTIVE.value,
        "row_id": write.row_id,
        "stream_id": write.stream_id,
        "tracks": orjson.dumps([str(track) for track in write.tracks]).decode(),
        "encoding": str(write.encoding),
        "sample_rate": write.sample_rate,
        "recording_path": None if write.recording_path is None else str(write.recording_path),
        "worker": write.worker,
    }


def _callback_params(write: AddStatusCallback) -> dict[str, object]:
    callback = write.callback
    return {
        "call_id": callback.call_uuid,
        "seen": to_ms(write.received_at),
        "from_number": callback.from_number,
        "to_number": callback.to,
        "direction": None,
        "account_id": None,
        "status": CallStatus.CALLBACKS_ONLY.value,
        "event": callback.event,
        "stream_id": callback.stream_id,
        "signature": write.signature.value,
        "fields": orjson.dumps(callback.fields).decode(),
    }


def _close_stream(db: Connection, write: CloseStreamRow, where: str) -> bool:
    row = db.execute(_LOCK_CALL_OF_STREAM, (write.row_id,)).fetchone()
    if row is None:
        raise StoreError(f"call store {where}: there is no stream row {write.row_id}")
    if row[0] is not None:
        return False  # the first close wins
    db.execute(
        _CLOSE_STREAM,
        {
            "ended": to_ms(write.ended_at),
            "reason": write.end_reason,
            "received": write.frames_received,
            "malformed": write.frames_malformed,
            "sent": write.frames_sent,
            "error": write.error,
            "row": write.row_id,
            "status": CallStatus.ENDED.value,
        },
    )
    return True
