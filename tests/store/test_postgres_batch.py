"""A batch of writes on PostgreSQL, sent in one pipeline, keeps each write's own outcome: one
that fails is undone alone and its future fails, the others commit; the first close of a stream
wins; two closes of a call's two streams end the call, in one batch or from two processes at
once; a connection lost mid-batch is replaced and the batch sent again, and when the new one
is lost too the batch is held, committed once the database is back.

The ``store`` fixture gathers for a long time (``gather``), so the writes queued before
:meth:`flush` (which cuts the gathering short) go in one batch.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from vobiz_stream.errors import StoreError
from vobiz_stream.store import CallRecord, CallStatus, StoreFullError
from vobiz_stream.store.postgres import QueuedPostgresStore
from vobiz_stream.store.writes import AddEvent, CloseStreamRow, OpenStreamRow, UpdateStreamRow

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
GATHER = 30.0
"""Seconds the writer gathers a batch: past the test's length, so only flush() ends one."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store(postgres_url: str) -> Iterator[QueuedPostgresStore]:
    with QueuedPostgresStore(postgres_url, gather=GATHER) as queued:
        yield queued


def opening(store: QueuedPostgresStore, call_id: str, stream_id: str, row_id: int) -> OpenStreamRow:
    return OpenStreamRow(call_id, stream_id, T0, ("inbound",), "audio/x-mulaw", 8000, None,
                         row_id=row_id, worker=store.worker)  # fmt: skip


def closing(row_id: int, seconds: float, reason: str, received: int = 50) -> CloseStreamRow:
    return CloseStreamRow(row_id, at(seconds), reason, received, 0, 0, call_id="call")


def call_of(store: QueuedPostgresStore, call_id: str) -> CallRecord:
    call = store.get_call(call_id)
    assert call is not None, f"the store does not know {call_id}"
    return call


def outcomes(futures: list[concurrent.futures.Future[None]]) -> list[str]:
    """Each future's outcome: "ok", or the start of its error."""
    return [
        "ok" if f.exception(timeout=0) is None else str(f.exception(timeout=0)) for f in futures
    ]


def test_a_write_the_database_refuses_fails_alone_and_the_batch_around_it_commits(
    store: QueuedPostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    row = store.open_stream(call_id="call-1", stream_id="s", started_at=T0,
                            tracks=["inbound"], encoding="audio/x-mulaw", sample_rate=8000,
                            recording_path=None)  # fmt: skip
    futures = [
        store.submit_awaited(AddEvent("call-1", row, "dtmf", {"digit": "1"}, at(1))),
        store.submit_awaited(AddEvent("never-seen", None, "dtmf", {"digit": "x"}, at(2))),
        store.submit_awaited(AddEvent("call-1", row, "dtmf", {"digit": "2"}, at(3))),
        store.submit_awaited(closing(row, 4, "stop")),
    ]
    store.flush()
    results = outcomes(futures)
    call = call_of(store, "call-1")
    assert results[0] == results[2] == results[3] == "ok"
    assert "foreign key" in results[1].lower()
    assert isinstance(futures[1].exception(timeout=0), StoreError)
    assert [e["detail"] for e in call["events"]] == [{"digit": "1"}, {"digit": "2"}]
    assert (call["status"], call["streams"][0]["end_reason"]) == (CallStatus.ENDED, "stop")
    assert store.get_call("never-seen") is None
    assert "call never-seen: cannot store a dtmf event" in caplog.text


def test_writes_to_a_stream_row_that_does_not_exist_fail_alone_in_the_batch(
    store: QueuedPostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses nothing here: the failures are found in the answers read after
    the batch's one sync, and their futures fail while the rest commit."""
    futures = [
        store.submit_awaited(opening(store, "call-1", "s", 7)),
        store.submit_awaited(UpdateStreamRow(99_999, byte_order="big", call_id="ghost")),
        store.submit_awaited(UpdateStreamRow(7, byte_order="little", call_id="call-1")),
        store.submit_awaited(closing(99_998, 1, "stop")),
        store.submit_awaited(closing(7, 2, "stop")),
    ]
    store.flush()
    results = outcomes(futures)
    call = call_of(store, "call-1")
    assert [results[0], results[2], results[4]] == ["ok", "ok", "ok"]
    assert "there is no stream row 99999" in results[1]
    assert "there is no stream row 99998" in results[3]
    [stream] = call["streams"]
    assert (stream["byte_order"], stream["end_reason"]) == ("little", "stop")
    assert call["status"] == CallStatus.ENDED
    assert "cannot store what is known of stream row 99999" in caplog.text
    assert "cannot store the end of stream row 99998" in caplog.text


def test_the_first_close_of_a_stream_wins_inside_a_batch(store: QueuedPostgresStore) -> None:
    store.submit(opening(store, "call", "before", 1))
    store.submit(closing(1, 1, "first", received=10))
    store.flush()  # closed in an earlier batch
    futures = [
        store.submit_awaited(opening(store, "call", "now", 2)),
        store.submit_awaited(closing(1, 5, "late", received=99)),
        store.submit_awaited(closing(2, 2, "first", received=20)),
        store.submit_awaited(closing(2, 6, "second", received=99)),
    ]
    store.flush()
    call = call_of(store, "call")
    assert outcomes(futures) == ["ok"] * 4  # closing a closed stream is no failure
    closes = [(s["id"], s["end_reason"], s["frames_received"], s["ended_at"])
              for s in call["streams"]]  # fmt: skip
    assert closes == [(1, "first", 10, "2025-03-04T05:06:08.000Z"),
                      (2, "first", 20, "2025-03-04T05:06:09.000Z")]  # fmt: skip
    assert (call["status"], call["last_seen"]) == (CallStatus.ENDED, "2025-03-04T05:06:09.000Z")


def test_two_closes_of_a_calls_two_streams_in_one_batch_end_the_call(
    store: QueuedPostgresStore,
) -> None:
    store.submit(opening(store, "call", "a", 1))
    store.submit(opening(store, "call", "b", 2))
    store.submit(opening(store, "other", "c", 3))
    store.flush()
    store.submit(closing(1, 3, "stop"))
    store.submit(closing(2, 4, "stop"))
    store.flush()
    assert call_of(store, "call")["status"] == CallStatus.ENDED
    assert call_of(store, "other")["status"] == CallStatus.ACTIVE


def _waiting_for_a_lock(url: str, count: int) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as db:
        while True:
            row = db.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                             " 'Lock' AND datname = current_database()").fetchone()  # fmt: skip
            if row is not None and row[0] >= count:
                return
            assert time.monotonic() < deadline, f"{count} writers never waited for the lock"
            time.sleep(0.05)


def test_two_processes_closing_a_calls_two_streams_at_once_end_the_call(
    postgres_url: str,
) -> None:
    """Both batches wait on the call's row (held from outside), then go one after the other:
    the second sees the first's stream closed, and ends the call."""
    with ExitStack() as stack:
        first, second = (stack.enter_context(QueuedPostgresStore(postgres_url))
                         for _ in range(2))  # fmt: skip
        first.submit(opening(first, "call", "a", 1))
        second.submit(opening(second, "call", "b", 2))
        first.flush()
        second.flush()
        with psycopg.connect(postgres_url) as holder:
            holder.execute("SELECT 1 FROM calls WHERE call_id = 'call' FOR UPDATE")
            first.submit(closing(1, 3, "stop"))
            second.submit(closing(2, 4, "stop"))
            _waiting_for_a_lock(postgres_url, 2)
            holder.commit()
        first.flush()
        second.flush()
        call = call_of(first, "call")
    assert [s["end_reason"] for s in call["streams"]] == ["stop", "stop"]
    assert call["status"] == CallStatus.ENDED


def test_a_connection_lost_mid_batch_is_replaced_and_the_batch_sent_again_at_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing of a batch whose connection ended before its commit was committed: it goes
    again, once, on a new connection, and a status callback waiting on it is stored (no 503)."""
    with QueuedPostgresStore(postgres_url) as store:
        awaited = _lose_the_connection_mid_batch(store, postgres_url, times=1)
        awaited.result(timeout=10)
        call = call_of(store, "call")
    assert [e["detail"] for e in call["events"]] == [{"digit": d} for d in "1234"]
    assert call["status"] == CallStatus.ENDED
    assert "holding the writes" not in caplog.text


def test_a_connection_lost_mid_batch_twice_holds_the_batch_until_it_is_committed(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The new connection is lost too: the batch is held and tried again later; a status
    callback's future fails at once (it is answered 503 and sent again), not held."""
    with QueuedPostgresStore(postgres_url) as store:
        awaited = _lose_the_connection_mid_batch(store, postgres_url, times=2)
        with pytest.raises(StoreFullError):
            awaited.result(timeout=10)
        deadline = time.monotonic() + 20
        while (call := call_of(store, "call"))["status"] != CallStatus.ENDED:
            assert time.monotonic() < deadline, f"the held writes never landed: {call}"
            time.sleep(0.1)
    assert [e["detail"] for e in call["events"]] == [{"digit": d} for d in "123"]
    assert "holding the writes until there is room" in caplog.text
    assert "room again: stored" in caplog.text


def _lose_the_connection_mid_batch(
    store: QueuedPostgresStore, url: str, times: int
) -> concurrent.futures.Future[None]:
    """Writes of a batch sent while their table is locked from outside; the connection each
    is sent on ends ``times`` times while it waits for the lock. The future of the batch's
    awaited write."""
    store.submit(opening(store, "call", "s", 1))
    store.flush()
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE call_events IN EXCLUSIVE MODE")
        for digit in "123":
            store.submit(AddEvent("call", 1, "dtmf", {"digit": digit}, at(1)))
        awaited = store.submit_awaited(AddEvent("call", 1, "dtmf", {"digit": "4"}, at(2)))
        store.submit(closing(1, 3, "stop"))
        ended: set[int] = set()
        for _ in range(times):  # the batch is sent; its first insert waits: its connection ends
            pid = _a_new_writer_waiting(url, ended)
            holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
            ended.add(pid)
        holder.commit()
    return awaited


def _a_new_writer_waiting(url: str, ended: set[int]) -> int:
    """The process id of a connection waiting for a lock, other than those in ``ended``."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as db:
        while True:
            waiting = {row[0] for row in db.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()")}  # fmt: skip
            if waiting - ended:
                return int(min(waiting - ended))
            assert time.monotonic() < deadline, "no new writer waited for the lock"
            time.sleep(0.02)
