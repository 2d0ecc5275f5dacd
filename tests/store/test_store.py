"""The call store on both its databases, real ones (a SQLite file, a PostgreSQL database): calls
with reconnects, events, every status callback, ordering, crash recovery across processes,
reopening, schema upgrades, and the errors that say what to do."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.store.engines import Backend, Plain
from vobiz_stream.core.callbacks import SignatureCheck, parse_status_callback
from vobiz_stream.core.protocol import Track
from vobiz_stream.errors import StoreError, VobizStreamError
from vobiz_stream.formats import Encoding
from vobiz_stream.store import (
    SCHEMA_VERSION,
    CallRecord,
    CallStatus,
    CallStore,
    EventKind,
    QueuedStore,
    StoreBusyError,
)
from vobiz_stream.store.writes import AddEvent, OpenStreamRow

T0 = datetime(2025, 3, 4, 5, 6, 7, 250_000, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """The stored form, written independently of the code under test."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def open_stream(
    store: Plain | QueuedStore, call_id: str, stream_id: str | None, seconds: float
) -> int:
    return store.open_stream(
        call_id=call_id,
        stream_id=stream_id,
        started_at=at(seconds),
        tracks=[Track.INBOUND],
        encoding=Encoding.L16,
        sample_rate=16000,
        recording_path=Path(f"/recordings/{call_id}-{stream_id}.wav"),
    )


def close_stream(store: Plain, row: int, seconds: float, reason: str = "closed") -> bool:
    return store.close_stream(
        row, ended_at=at(seconds), end_reason=reason, frames_received=50, frames_malformed=0,
        frames_sent=10,
    )  # fmt: skip


def known(store: Plain | QueuedStore, call_id: str) -> CallRecord:
    call = store.get_call(call_id)
    assert call is not None, f"the store does not know {call_id}"
    return call


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """For the tests of what only a SQLite file can be (not a database, a folder...)."""
    return tmp_path / "calls.sqlite3"


@pytest.fixture
def backend(store_backend: Backend) -> Backend:
    return store_backend


# --- a call's life ---------------------------------------------------------------------------


def test_call_with_a_reconnect_has_two_streams_events_and_ends(backend: Backend) -> None:
    with backend.plain() as store:
        first = store.open_stream(
            call_id="call-1",
            stream_id="stream-a",
            started_at=at(0),
            tracks=[Track.INBOUND, Track.OUTBOUND],
            encoding=Encoding.L16,
            sample_rate=8000,
            recording_path=Path("/recordings/call-1-a.wav"),
            from_number="+14155551111",
            to_number="+14155552222",
            direction="inbound",
            account_id="500025",
        )
        store.add_event("call-1", first, "start", {"shape": "nested"}, at=at(0))
        store.update_stream(first, byte_order="little", frames_received=7)
        store.add_event("call-1", first, EventKind.BYTE_ORDER, {"order": "little"}, at=at(0.5))
        store.add_event("call-1", first, EventKind.DTMF, {"digit": "5"}, at=at(1))
        store.update_stream(first, error="socket reset")
        assert known(store, "call-1")["status"] == CallStatus.ACTIVE
        assert close_stream(store, first, 2, reason="dropped")
        assert known(store, "call-1")["status"] == CallStatus.ENDED

        second = open_stream(store, "call-1", "stream-b", 3)
        assert second != first
        assert known(store, "call-1")["status"] == CallStatus.ACTIVE
        store.add_event("call-1", second, EventKind.CLEARED, {"roundTripMs": 41.5}, at=at(4))
        store.add_event("call-1", None, "custom", {"nested": {"list": [1, 2]}}, at=at(5))
        assert close_stream(store, second, 6)
        call = store.get_call("call-1")

    assert call == {
        "call_id": "call-1",
        "status": "ended",
        "first_seen": iso(at(0)),
        "last_seen": iso(at(6)),
        "from_number": "+14155551111",
        "to_number": "+14155552222",
        "direction": "inbound",
        "account_id": "500025",
        "streams": [
            {
                "id": first,
                "stream_id": "stream-a",
                "started_at": iso(at(0)),
                "ended_at": iso(at(2)),
                "end_reason": "dropped",
                "tracks": ["inbound", "outbound"],
                "encoding": "audio/x-l16",
                "sample_rate": 8000,
                "byte_order": "little",
                "recording_path": "/recordings/call-1-a.wav",
                "frames_received": 50,
                "frames_malformed": 0,
                "frames_sent": 10,
                "error": "socket reset",
            },
            {
                "id": second,
                "stream_id": "stream-b",
                "started_at": iso(at(3)),
                "ended_at": iso(at(6)),
                "end_reason": "closed",
                "tracks": ["inbound"],
                "encoding": "audio/x-l16",
                "sample_rate": 16000,
                "byte_order": None,
                "recording_path": "/recordings/call-1-stream-b.wav",
                "frames_received": 50,
                "frames_malformed": 0,
                "frames_sent": 10,
                "error": None,
            },
        ],
        "events": [
            {
                "id": 1,
                "stream_row": first,
                "at": iso(at(0)),
                "kind": "start",
                "detail": {"shape": "nested"},
            },
            {
                "id": 2,
                "stream_row": first,
                "at": iso(at(0.5)),
                "kind": "byte_order",
                "detail": {"order": "little"},
            },
            {
                "id": 3,
                "stream_row": first,
                "at": iso(at(1)),
                "kind": "dtmf",
                "detail": {"digit": "5"},
            },
            {
                "id": 4,
                "stream_row": second,
                "at": iso(at(4)),
                "kind": "cleared",
                "detail": {"roundTripMs": 41.5},
            },
            {
                "id": 5,
                "stream_row": None,
                "at": iso(at(5)),
                "kind": "custom",
                "detail": {"nested": {"list": [1, 2]}},
            },
        ],
        "status_callbacks": [],
    }


def test_overlapping_reconnect_keeps_the_call_active_until_the_last_stream_closes(
    backend: Backend,
) -> None:
    with backend.plain() as store:
        old = open_stream(store, "call-1", "a", 0)
        new = open_stream(store, "call-1", "b", 1)
        close_stream(store, old, 2)
        assert known(store, "call-1")["status"] == "active"
        close_stream(store, new, 3)
        assert known(store, "call-1")["status"] == "ended"


def test_reused_or_missing_stream_ids_get_rows_of_their_own(backend: Backend) -> None:
    with backend.plain() as store:
        rows = [
            open_stream(store, "call-1", "same", 0),
            open_stream(store, "call-1", "same", 1),
            open_stream(store, "call-1", None, 2),
        ]
        streams = known(store, "call-1")["streams"]
    assert len(set(rows)) == 3
    assert [(s["id"], s["stream_id"]) for s in streams] == list(
        zip(rows, ["same", "same", None], strict=True)
    )


def test_closing_twice_keeps_the_first_close(backend: Backend) -> None:
    with backend.plain() as store:
        row = open_stream(store, "call-1", "a", 0)
        assert close_stream(store, row, 1, reason="stop")
        assert not close_stream(store, row, 9, reason="socket_closed")
        (stream,) = known(store, "call-1")["streams"]
    assert (stream["ended_at"], stream["end_reason"]) == (iso(at(1)), "stop")


def test_update_stream_changes_only_what_is_given(backend: Backend) -> None:
    with backend.plain() as store:
        row = open_stream(store, "call-1", "a", 0)
        store.update_stream(row, frames_received=3, frames_malformed=1)
        store.update_stream(row, frames_sent=4)
        store.update_stream(row, byte_order="big")
        (stream,) = known(store, "call-1")["streams"]
    assert (stream["frames_received"], stream["frames_malformed"], stream["frames_sent"]) == (
        3,
        1,
        4,
    )
    assert stream["byte_order"] == "big"
    assert stream["error"] is None


def test_a_byte_order_known_at_the_start_is_stored_with_the_stream(backend: Backend) -> None:
    with backend.queued() as store:
        told = store.open_stream(call_id="call-1", stream_id="a", started_at=at(0),
                                 tracks=["inbound"], encoding="audio/x-l16", sample_rate=8000,
                                 recording_path=None, byte_order="big")  # fmt: skip
        detected = open_stream(store, "call-1", "b", 1)
        streams = {s["id"]: s["byte_order"] for s in known(store, "call-1")["streams"]}
    assert streams == {told: "big", detected: None}


def test_unknown_stream_rows_and_calls_raise_store_error(backend: Backend) -> None:
    with backend.plain() as store:
        with pytest.raises(StoreError, match="no stream row 99"):
            store.update_stream(99, frames_sent=1)
        with pytest.raises(StoreError, match="no stream row 99"):
            close_stream(store, 99, 1)
        with pytest.raises(StoreError, match=r"(?i)foreign key"):
            store.add_event("never-seen", None, EventKind.DTMF, {}, at=at(0))
        # The failed transactions were rolled back: the store still works.
        row = open_stream(store, "call-1", "a", 0)
        assert close_stream(store, row, 1)
        assert store.get_call("never-seen") is None


# --- status callbacks ------------------------------------------------------------------------

CALLBACK_EVENTS = [
    ("StartStream", {"ServiceURL": "wss://app.example/stream"}),
    ("PlayedStream", {"Name": "turn-1"}),
    ("ClearedAudio", {}),
    ("DegradedStream", {"Error": "queue filling"}),
    ("DroppedStream", {"Error": "socket closed"}),
    ("StopStream", {}),
    ("MediaError", {}),
    ("SomethingNobodyDocumented", {"Odd": "value"}),
]


def callback_fields(call_id: str, event: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "Event": event,
        "CallUUID": call_id,
        "StreamID": "stream-a",
        "From": "+14155551111",
        "To": "+14155552222",
        "Timestamp": "2025-03-04 05:06:07",
        "ParentAuthID": "MA_PARENT",
        "Error": "",
        "X-VH-sessionId": "abc123",
        **extra,
    }


def test_every_status_callback_is_stored_with_its_call(backend: Backend) -> None:
    signatures = list(SignatureCheck)
    sent = []
    with backend.plain() as store:
        open_stream(store, "call-1", "stream-a", 0)
        for index, (event, extra) in enumerate(CALLBACK_EVENTS):
            fields = callback_fields("call-1", event, extra)
            signature = signatures[index % len(signatures)]
            callback_id = store.add_status_callback(
                parse_status_callback(fields), at(index), signature
            )
            sent.append((callback_id, fields, signature))
        call = store.get_call("call-1")

    assert call is not None
    assert call["status"] == "active"  # callbacks do not change a known call's status
    assert call["last_seen"] == iso(at(len(CALLBACK_EVENTS) - 1))
    assert call["status_callbacks"] == [
        {
            "id": callback_id,
            "received_at": iso(at(index)),
            "event": fields["Event"],
            "stream_id": "stream-a",
            "signature": signature.value,
            "fields": fields,
        }
        for index, (callback_id, fields, signature) in enumerate(sent)
    ]


def test_a_call_known_only_from_callbacks_is_listed(backend: Backend) -> None:
    with backend.plain() as store:
        fields = callback_fields("call-cb", "DroppedStream", {"Error": "connect failed"})
        store.add_status_callback(parse_status_callback(fields), at(5), SignatureCheck.UNSIGNED)
        (call,) = store.list_calls()
        # A stream arriving later makes it active and keeps what the callback said.
        open_stream(store, "call-cb", "stream-a", 1)
        later = store.get_call("call-cb")
    assert call["call_id"] == "call-cb"
    assert call["status"] == CallStatus.CALLBACKS_ONLY
    assert (call["from_number"], call["to_number"]) == ("+14155551111", "+14155552222")
    assert call["streams"] == []
    assert [cb["event"] for cb in call["status_callbacks"]] == ["DroppedStream"]
    assert later is not None
    assert later["status"] == "active"
    assert (later["first_seen"], later["last_seen"]) == (iso(at(1)), iso(at(5)))
    assert later["from_number"] == "+14155551111"


def test_a_callback_with_no_call_uuid_is_still_stored(backend: Backend) -> None:
    with backend.plain() as store:
        callback_id = store.add_status_callback(
            parse_status_callback({}), at(0), SignatureCheck.UNSIGNED
        )
        assert store.list_calls() == []
    rows = backend.rows("SELECT id, event, call_uuid, CAST(fields AS TEXT) FROM status_callbacks")
    assert rows == [(callback_id, "", None, "{}")]


# --- listing ---------------------------------------------------------------------------------


def test_list_calls_newest_first_with_limit(backend: Backend) -> None:
    with backend.plain() as store:
        # Inserted out of time order; "late" is touched again afterwards, which must not move it.
        for call_id, seconds in [("middle", 10), ("oldest", 0), ("newest", 20), ("late", 15)]:
            row = open_stream(store, call_id, "s", seconds)
            close_stream(store, row, seconds + 1)
        open_stream(store, "oldest", "s2", 100)
        listed = [call["call_id"] for call in store.list_calls()]
        limited = [call["call_id"] for call in store.list_calls(limit=2)]
    assert listed == ["newest", "late", "middle", "oldest"]
    assert limited == ["newest", "late"]


def test_a_calls_rows_read_back_in_time_order_whatever_order_they_were_written(
    backend: Backend,
) -> None:
    """Server processes sharing a store commit their batches when they do: a row written later
    may have happened earlier. A call's streams, events and callbacks come back by time."""
    with backend.plain() as store:
        late = open_stream(store, "call-1", "late", 10)
        early = open_stream(store, "call-1", "early", 2)
        store.add_event("call-1", late, EventKind.DTMF, {"digit": "2"}, at=at(12))
        store.add_event("call-1", early, EventKind.DTMF, {"digit": "1"}, at=at(3))
        for event, seconds in [("StopStream", 13), ("StartStream", 2)]:
            fields = callback_fields("call-1", event, {})
            store.add_status_callback(
                parse_status_callback(fields), at(seconds), SignatureCheck.VALID
            )
        call = known(store, "call-1")
    assert [s["stream_id"] for s in call["streams"]] == ["early", "late"]
    assert [e["detail"]["digit"] for e in call["events"]] == ["1", "2"]
    assert [c["event"] for c in call["status_callbacks"]] == ["StartStream", "StopStream"]


def test_list_calls_children_belong_to_their_calls(backend: Backend) -> None:
    with backend.plain() as store:
        for number, call_id in enumerate(["x", "y", "z"]):
            row = open_stream(store, call_id, f"{call_id}-s", number)
            store.add_event(call_id, row, EventKind.STOP, {"call": call_id}, at=at(number))
            fields = callback_fields(call_id, "StopStream", {})
            store.add_status_callback(
                parse_status_callback(fields), at(number), SignatureCheck.VALID
            )
        calls = store.list_calls(limit=2)
    assert [call["call_id"] for call in calls] == ["z", "y"]
    for call in calls:
        call_id = call["call_id"]
        assert [s["stream_id"] for s in call["streams"]] == [f"{call_id}-s"]
        assert [e["detail"] for e in call["events"]] == [{"call": call_id}]
        assert [cb["fields"]["CallUUID"] for cb in call["status_callbacks"]] == [call_id]


# --- files: reopening, crashes, bad files ----------------------------------------------------


def test_reopening_keeps_everything(backend: Backend) -> None:
    with backend.plain() as store:
        row = open_stream(store, "call-1", "a", 0)
        store.add_event("call-1", row, "start", {}, at=at(0))
        close_stream(store, row, 1)
        before = store.list_calls()
    with backend.plain() as store:
        assert store.list_calls() == before
        assert store.mark_interrupted(at(50)) == 0
        second = open_stream(store, "call-1", "b", 2)
        assert second > row
    assert backend.rows("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    if backend.name == "sqlite":
        assert backend.rows("PRAGMA journal_mode") == [("wal",)]


CRASHING_WRITER = """
import os, sys
from datetime import UTC, datetime
from vobiz_stream.store.database import open_call_store
from vobiz_stream.store.writes import UpdateStreamRow
T = datetime(2025, 1, 1, tzinfo=UTC)
MULAW = {"tracks": ["inbound"], "encoding": "audio/x-mulaw", "sample_rate": 8000}
store = open_call_store(sys.argv[1])
done = store.open_stream(call_id="done", stream_id="d", started_at=T, recording_path=None, **MULAW)
store.close_stream(done, ended_at=T, end_reason="closed", frames_received=1, frames_malformed=0,
                   frames_sent=0)
row = store.open_stream(call_id="crashed", stream_id="c", started_at=T, recording_path="/r/c.wav",
                        **MULAW)
store.submit(UpdateStreamRow(row, frames_received=123, frames_malformed=2))
store.flush()
os._exit(0)  # a crash: no close, no cleanup
"""


def test_mark_interrupted_closes_streams_left_open_by_a_crashed_process(backend: Backend) -> None:
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, backend.url], check=True)
    noticed = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    with backend.queued() as store:  # as the next start of the server
        assert known(store, "crashed")["status"] == "active"
        assert store.mark_interrupted(noticed) == 1
        crashed = store.get_call("crashed")
        done = store.get_call("done")
        assert store.mark_interrupted(noticed) == 0
    assert crashed is not None
    assert done is not None
    assert crashed["status"] == CallStatus.INTERRUPTED
    assert crashed["last_seen"] == iso(noticed)
    (stream,) = crashed["streams"]
    assert stream["ended_at"] == iso(noticed)
    assert stream["end_reason"] == "interrupted"
    assert (stream["frames_received"], stream["frames_malformed"]) == (123, 2)
    assert stream["recording_path"] == "/r/c.wav"
    assert done["status"] == "ended"
    assert done["streams"][0]["end_reason"] == "closed"


def test_a_file_that_is_not_sqlite_raises_a_helpful_store_error(db_path: Path) -> None:
    db_path.write_bytes(b"RIFF....WAVEfmt this is a recording, not a database" * 100)
    with pytest.raises(StoreError, match="not a database; move it away") as caught:
        CallStore(db_path)
    assert str(db_path) in str(caught.value)
    assert isinstance(caught.value, VobizStreamError)


def test_a_missing_directory_raises_a_helpful_store_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "calls.sqlite3"
    with pytest.raises(StoreError, match=r"does not exist; create it"):
        CallStore(path)
    assert not path.parent.exists()


def test_someone_elses_sqlite_database_is_refused(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as raw, raw:
        raw.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match=r"not a vobiz-stream call store.*invoices"):
        CallStore(db_path)


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    backend.plain().close()
    backend.rows(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*newer"):
        backend.plain()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        backend.queued()


def test_a_path_that_is_a_folder_raises_a_helpful_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "calls.sqlite3"
    folder.mkdir()
    with pytest.raises(StoreError, match=str(folder)):
        CallStore(folder)


def test_a_thousand_stream_pairs(backend: Backend) -> None:
    with backend.plain() as store:
        for number in range(1000):
            row = open_stream(store, f"call-{number % 250}", f"s-{number}", number)
            close_stream(store, row, number + 0.5)
        calls = store.list_calls(limit=1000)
    assert len(calls) == 250
    assert all(call["status"] == "ended" for call in calls)
    assert sum(len(call["streams"]) for call in calls) == 1000
    assert backend.rows("SELECT count(*) FROM streams WHERE ended_at IS NULL") == [(0,)]


# --- writes off the caller's thread (QueuedCallStore) -------------------------------------------


def test_queued_writes_are_read_back_in_order_and_row_ids_carry_on(backend: Backend) -> None:
    with backend.plain() as plain:
        first = open_stream(plain, "older-call", "a", 0)
    with backend.queued() as store:
        row = open_stream(store, "call-1", "s-1", 1)
        assert row == first + 1  # handed out at once, after the rows already in the file
        store.add_event("call-1", row, EventKind.DTMF, {"digit": "5"}, at=at(2))
        callback = parse_status_callback(callback_fields("call-1", "StartStream", {}))
        store.add_status_callback(callback, at(2.5), SignatureCheck.VALID)
        store.close_stream(row, ended_at=at(3), end_reason="stop", frames_received=150,
                           frames_malformed=1, frames_sent=0)  # fmt: skip
        call = known(store, "call-1")
    assert call["status"] == CallStatus.ENDED
    [stream] = call["streams"]
    assert (stream["id"], stream["stream_id"], stream["ended_at"]) == (row, "s-1", iso(at(3)))
    assert (stream["frames_received"], stream["frames_malformed"]) == (150, 1)
    assert [(e["kind"], e["detail"]) for e in call["events"]] == [("dtmf", {"digit": "5"})]
    assert [c["event"] for c in call["status_callbacks"]] == ["StartStream"]


def test_a_failed_queued_write_is_logged_with_its_call_and_the_rest_commit(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with backend.queued() as store:
        row = open_stream(store, "call-1", "s-1", 0)
        store.add_event("never-seen", None, "error", {}, at=at(1))  # no such call
        store.close_stream(99, ended_at=at(1), end_reason="x", frames_received=0,
                           frames_malformed=0, frames_sent=0, call_id="ghost")  # fmt: skip
        store.add_event("call-1", row, EventKind.DTMF, {"digit": "1"}, at=at(2))
        call = known(store, "call-1")
        assert store.get_call("never-seen") is None
    assert [event["kind"] for event in call["events"]] == ["dtmf"]
    failures = [r.getMessage() for r in caplog.records if r.name == "vobiz_stream.store"]
    assert any("call never-seen: cannot store a error event" in m and "foreign key" in m.lower()
               for m in failures), failures  # fmt: skip
    assert any("call ghost: cannot store the end of stream row 99" in m for m in failures)


def test_a_batch_commits_together_and_a_failed_write_in_it_is_undone_alone(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    opening = OpenStreamRow("call-1", "s-1", at(0), ("inbound",), "audio/x-l16", 16000, None)
    with backend.plain() as store:
        failures = store.apply_batch([
            opening,
            AddEvent("never-seen", None, EventKind.DTMF, {}, at(1)),  # no such call
            AddEvent("call-1", None, EventKind.DTMF, {"digit": "9"}, at(2)),
        ])  # fmt: skip
        call = known(store, "call-1")
    assert failures[0] is None and failures[2] is None
    assert isinstance(failures[1], StoreError) and "foreign key" in str(failures[1]).lower()
    assert [event["detail"] for event in call["events"]] == [{"digit": "9"}]
    assert backend.rows("SELECT count(*) FROM call_events") == [(1,)]
    assert "call never-seen: cannot store a dtmf event" in caplog.text


def test_queued_writes_do_not_wait_for_a_locked_database(backend: Backend) -> None:
    """Another connection holds the write lock: the writes return at once and land after."""
    with backend.queued() as store:
        with backend.hold_writes():
            began = time.monotonic()
            row = open_stream(store, "call-1", "s-1", 0)
            store.add_event("call-1", row, EventKind.DTMF, {"digit": "2"}, at=at(1))
            assert time.monotonic() - began < 0.2
            time.sleep(0.3)  # the writer is waiting for the lock meanwhile
        assert [event["kind"] for event in known(store, "call-1")["events"]] == ["dtmf"]


async def test_settled_waits_until_the_queued_writes_are_in_the_file(backend: Backend) -> None:
    with backend.queued() as store:
        for index in range(200):
            open_stream(store, f"call-{index}", "s", index)
        await store.settled()
        assert backend.rows("SELECT count(*) FROM streams") == [(200,)]


def test_close_commits_what_is_still_queued(backend: Backend) -> None:
    store = backend.queued()
    rows = [open_stream(store, f"call-{index}", "s", index) for index in range(50)]
    store.close()
    store.close()  # twice is harmless
    with backend.plain() as reopened:
        assert reopened.last_stream_row() == rows[-1] == 50
        assert len(reopened.list_calls(limit=1000)) == 50


async def test_a_waiter_cuts_the_gathering_short(backend: Backend) -> None:
    """The writer gathers writes before committing, but not while someone waits for them."""
    with backend.queued(gather=5.0) as store:
        open_stream(store, "call-1", "s-1", 0)
        began = time.monotonic()
        await store.settled()
        assert time.monotonic() - began < 1.0
        assert backend.rows("SELECT count(*) FROM streams") == [(1,)]
        open_stream(store, "call-2", "s-1", 1)
        began = time.monotonic()
        assert len(store.list_calls()) == 2
        assert time.monotonic() - began < 1.0


# --- a bounded queue: per-event rows are counted past a limit, stream rows never dropped --------


def test_a_stream_stores_the_first_events_of_each_kind_and_counts_the_rest(
    backend: Backend,
) -> None:
    with backend.queued(events_per_kind=3) as store:
        row = open_stream(store, "call-1", "s-1", 0)
        other = open_stream(store, "call-2", "s-1", 0)
        for digit in "0123456789":
            store.add_event("call-1", row, EventKind.DTMF, {"digit": digit}, at=at(1))
        for _ in range(5):
            store.add_event("call-1", row, EventKind.MALFORMED_FRAME, {"problem": "x"}, at=at(1))
        store.add_event("call-2", other, EventKind.DTMF, {"digit": "1"}, at=at(1))  # its own
        store.close_stream(row, ended_at=at(3), end_reason="stop", frames_received=0,
                           frames_malformed=5, frames_sent=0)  # fmt: skip
        store.close_stream(other, ended_at=at(3), end_reason="stop", frames_received=0,
                           frames_malformed=0, frames_sent=0)  # fmt: skip
        call, call_2 = known(store, "call-1"), known(store, "call-2")
    kinds = [(event["kind"], event["detail"]) for event in call["events"]]
    assert kinds == [
        ("dtmf", {"digit": "0"}), ("dtmf", {"digit": "1"}), ("dtmf", {"digit": "2"}),
        *[("malformed_frame", {"problem": "x"})] * 3,
        ("events_not_stored", {"dtmf": 7, "malformed_frame": 2}),
    ]  # fmt: skip
    assert call["events"][-1]["at"] == iso(at(3))
    assert [event["kind"] for event in call_2["events"]] == ["dtmf"]  # nothing counted: no row


def test_with_the_queue_full_events_are_counted_and_stream_rows_and_callbacks_kept(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with backend.queued(max_pending=5) as store:
        with backend.hold_writes():  # the writer waits: nothing leaves the queue
            row = open_stream(store, "call-1", "s-1", 0)
            for _ in range(20):
                store.add_event("call-1", row, EventKind.DTMF, {"digit": "5"}, at=at(1))
            callback = parse_status_callback(callback_fields("call-1", "StartStream", {}))
            store.add_status_callback(callback, at(2), SignatureCheck.VALID)
            store.update_stream(row, byte_order="big")
            store.close_stream(row, ended_at=at(3), end_reason="stop", frames_received=0,
                               frames_malformed=0, frames_sent=0)  # fmt: skip
        call = known(store, "call-1")
    [stream] = call["streams"]
    assert (stream["ended_at"], stream["byte_order"]) == (iso(at(3)), "big")
    assert [c["event"] for c in call["status_callbacks"]] == ["StartStream"]
    events = [(event["kind"], event["detail"]) for event in call["events"]]
    assert events == [("dtmf", {"digit": "5"})] * 4 + [("events_not_stored", {"dtmf": 16})]
    behind = [r.getMessage() for r in caplog.records if "waiting for the disk" in r.getMessage()]
    assert len(behind) == 1, "the queue filling up is logged once"


async def test_a_callback_waits_for_room_then_raises_store_busy(backend: Backend) -> None:
    with backend.queued(max_pending=1) as store:
        callback = parse_status_callback(callback_fields("call-1", "StartStream", {}))
        with backend.hold_writes():
            open_stream(store, "call-1", "s-1", 0)
            with pytest.raises(StoreBusyError, match="send it again"):
                await store.queue_status_callback(callback, at(1), SignatureCheck.VALID)
        await store.queue_status_callback(callback, at(2), SignatureCheck.VALID)
        assert [c["received_at"] for c in known(store, "call-1")["status_callbacks"]] == [
            iso(at(2))
        ]
