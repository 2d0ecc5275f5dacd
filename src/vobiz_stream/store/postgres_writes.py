"""Each write of the call store as PostgreSQL statements on a connection, as few as it takes.

Every statement costs the database CPU, so a write is one statement where it can be (a call's
row and its new stream in one, with a common table expression) and two where it must: closing
a stream first locks its call's row, so that another process closing the call's other stream at
the same moment waits for this one and then sees it closed (the second statement reads the
streams after the lock is held). The statements of a write are sent without waiting for their
results (:func:`send_write`), so a batch of writes can go in one pipeline and be read back after
one sync: no statement depends on the result of another, and a close is guarded by the stream
still being open rather than by reading the lock's result first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
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

__all__ = ["Answer", "Connection", "send_write", "to_ms", "write_on"]

Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]

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
                         recording_path, worker, byte_order)
    SELECT coalesce(%(row_id)s, nextval('stream_rows')), %(stream_id)s, call.call_id, %(seen)s,
           %(tracks)s::json, %(encoding)s, %(sample_rate)s, %(recording_path)s, %(worker)s,
           %(byte_order)s
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

# Only an open stream is closed (the first close wins). The call ends when no other stream of it
# is open (this one reads as open in the statement's own snapshot, so it is left out by its id).
_CLOSE_STREAM = """
    WITH closed AS (
        UPDATE streams SET ended_at = %(ended)s, end_reason = %(reason)s,
            frames_received = %(received)s, frames_malformed = %(malformed)s,
            frames_sent = %(sent)s, error = coalesce(%(error)s, error)
        WHERE id = %(row)s AND ended_at IS NULL RETURNING call_id
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


Answer = Callable[[], object]
"""What a write sent returns, read once the database has answered (in a pipeline, after its
sync): the new row's id for a stream, an event or a callback, whether the stream was closed now
(False: it was already) for a close, else None; raises :class:`StoreError` for a stream row
that does not exist, a failure that changed nothing."""


def write_on(db: Connection, write: Write, where: str) -> object:
    """Do ``write`` on ``db`` (in the transaction it is in) and return its :data:`Answer`.
    Raises psycopg's errors, and :class:`StoreError` for a stream row that does not exist."""
    return send_write(db, write, where)()


def send_write(db: Connection, write: Write, where: str) -> Answer:
    """Send ``write``'s statements on ``db`` without reading their results: in pipeline mode
    nothing waits for the database; the answer reads them once it has answered."""
    match write:
        case OpenStreamRow():
            return _returned_id(db.execute(_OPEN_STREAM.encode(), _open_params(write)))
        case UpdateStreamRow():
            cursor = db.execute(
                _UPDATE_STREAM.encode(),
                (write.byte_order, write.frames_received, write.frames_malformed,
                 write.frames_sent, write.error, write.row_id),
            )  # fmt: skip
            return partial(_updated, cursor, write.row_id, where)
        case CloseStreamRow():
            return _close_stream(db, write, where)
        case AddEvent():
            params = (write.call_id, write.stream_row, to_ms(write.at), str(write.kind),
                      orjson.dumps(write.detail).decode())  # fmt: skip
            return _returned_id(db.execute(_EVENT.encode(), params))
        case AddStatusCallback():
            callback = write.callback
            query = _CALLBACK if callback.call_uuid is None else _CALLBACK_OF_A_CALL
            return _returned_id(db.execute(query.encode(), _callback_params(write)))


def _returned_id(cursor: Cursor) -> Answer:
    def answer() -> int:
        row = cursor.fetchone()
        if row is None:
            raise StoreError("the database returned no row id")
        return int(row[0])

    return answer


def _updated(cursor: Cursor, row_id: int, where: str) -> None:
    if cursor.rowcount == 0:
        raise StoreError(f"call store {where}: there is no stream row {row_id}")


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
        "byte_order": write.byte_order,
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


def _close_stream(db: Connection, write: CloseStreamRow, where: str) -> Answer:
    locked = db.execute(_LOCK_CALL_OF_STREAM.encode(), (write.row_id,))
    db.execute(
        _CLOSE_STREAM.encode(),
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

    def answer() -> bool:
        row = locked.fetchone()
        if row is None:
            raise StoreError(f"call store {where}: there is no stream row {write.row_id}")
        return row[0] is None  # else it was closed already: the first close wins

    return answer
