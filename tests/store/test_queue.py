"""The write queue is one path for every write, over any engine.

``ListEngine`` is a second engine kept in a Python list (the queue must not care which database
is under it): every write of the app's interface reaches its ``apply`` as a value, through the
same writer thread, with the same batching, failure logging, futures and hold while full. The
SQLite engine is checked to apply each value as its keyword method does.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from vobiz_stream.core.callbacks import SignatureCheck, parse_status_callback
from vobiz_stream.errors import StoreError
from vobiz_stream.store import (
    CallHistory,
    CallStore,
    EventKind,
    QueuedStore,
    StoreFullError,
)
from vobiz_stream.store.batch import each_alone
from vobiz_stream.store.writes import (
    AddEvent,
    AddStatusCallback,
    CloseStreamRow,
    OpenStreamRow,
    UpdateStreamRow,
    Write,
)

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class ListEngine:
    """An engine keeping the writes it applied, in order, in a list.

    ``full`` makes every batch fail as a full disk does; a write whose call id is ``"refused"``
    fails alone, as a write the database refuses.
    """

    def __init__(self) -> None:
        self.applied: list[Write] = []
        self.batches = 0
        self.full = threading.Event()

    def apply(self, write: Write) -> object:
        if write.call_id == "refused":
            raise StoreError(f"list engine: cannot {write.what}: refused")
        self.applied.append(write)
        return None

    def apply_batch(self, writes: Sequence[Write]) -> list[StoreError | None]:
        if self.full.is_set():
            raise StoreFullError("list engine: no room")
        self.batches += 1
        return each_alone(self.apply, writes)

    def last_stream_row(self) -> int:
        return 41

    def register_worker(self, host: str, pid: int, started_at: datetime) -> int:
        return 3

    def mark_interrupted(self, now: datetime) -> int:
        return 0

    def calls_json(self, limit: int, offset: int = 0) -> tuple[str, bool]:
        ids = sorted({write.call_id for write in self.applied if write.call_id is not None})
        return orjson.dumps([{"call_id": call_id} for call_id in ids]).decode(), False

    def call_json(self, call_id: str) -> str | None:
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def engine() -> ListEngine:
    return ListEngine()


@pytest.fixture
def store(engine: ListEngine) -> Iterator[QueuedStore]:
    queued = QueuedStore(lambda: engine, "in a list", "empty the list", events_per_kind=2)
    yield queued
    queued.close()


def callback(call_id: str) -> AddStatusCallback:
    fields = {"Event": "StartStream", "CallUUID": call_id, "StreamID": "s-1"}
    return AddStatusCallback(parse_status_callback(fields), at(2), SignatureCheck.VALID)


def test_each_kind_of_write_reaches_the_engine_as_a_value_in_order(
    store: QueuedStore, engine: ListEngine
) -> None:
    app: CallHistory = store  # the server, the keeper and the calls API see only this
    row = app.open_stream(
        call_id="call-1",
        stream_id="s-1",
        started_at=at(0),
        tracks=["inbound"],
        encoding="audio/x-l16",
        sample_rate=8000,
        recording_path=None,
        from_number="+14155551111",
    )
    assert row == 42  # after the engine's last row
    app.update_stream(row, byte_order="big", call_id="call-1")
    for digit in "123":  # the budget keeps two of a kind
        app.add_event("call-1", row, EventKind.DTMF, {"digit": digit}, at=at(1))
    sent = callback("call-1")
    stored = app.add_status_callback(sent.callback, sent.received_at, sent.signature)
    app.close_stream(row, ended_at=at(3), end_reason="stop", frames_received=150,
                     frames_malformed=1, frames_sent=0, call_id="call-1")  # fmt: skip
    store.flush()
    assert stored.result(timeout=0) is None
    assert engine.applied == [
        OpenStreamRow("call-1", "s-1", at(0), ("inbound",), "audio/x-l16", 8000, None,
                   from_number="+14155551111", row_id=42, worker=3),
        UpdateStreamRow(42, byte_order="big", call_id="call-1"),
        AddEvent("call-1", 42, "dtmf", {"digit": "1"}, at(1)),
        AddEvent("call-1", 42, "dtmf", {"digit": "2"}, at(1)),
        sent,
        CloseStreamRow(42, at(3), "stop", 150, 1, 0, None, "call-1"),
        AddEvent("call-1", 42, "events_not_stored", {"dtmf": 1}, at(3)),
    ]  # fmt: skip
    assert engine.batches == 1  # gathered: one transaction, not one per write
    assert [call["call_id"] for call in store.list_calls()] == ["call-1"]


def test_a_write_the_engine_refuses_is_logged_alone_and_its_future_fails(
    store: QueuedStore, engine: ListEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store.submit(AddEvent("call-1", None, "error", {}, at(0)))
    refused = store.submit_awaited(callback("refused"))
    store.submit(AddEvent("call-2", None, "error", {}, at(1)))
    store.flush()
    assert [write.call_id for write in engine.applied] == ["call-1", "call-2"]
    with pytest.raises(StoreError, match="refused"):
        refused.result(timeout=0)
    failures = [r.getMessage() for r in caplog.records if r.name == "vobiz_stream.store"]
    assert failures == [
        "call refused: cannot store a 'StartStream' status callback: list engine: cannot store"
        " a 'StartStream' status callback: refused"
    ]


def test_any_engine_with_no_room_has_its_writes_held_and_stored_once_there_is_room(
    store: QueuedStore, engine: ListEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine.full.set()
    for number in range(5):
        store.submit(AddEvent(f"call-{number}", None, "error", {}, at(number)))
    awaited: concurrent.futures.Future[None] = store.submit_awaited(callback("call-9"))
    store.flush()
    assert engine.applied == []
    with pytest.raises(StoreFullError):  # answered 503, sent again: not held
        awaited.result(timeout=0)
    holding = [r.getMessage() for r in caplog.records if "holding the writes" in r.getMessage()]
    assert holding == [
        "list engine: no room: holding the writes until there is room (empty the list)"
    ]

    engine.full.clear()
    store.submit(AddEvent("call-5", None, "error", {}, at(5)))
    store.flush()
    assert [write.call_id for write in engine.applied] == [f"call-{n}" for n in range(6)]
    assert any("room again: stored 6 held writes" in r.getMessage() for r in caplog.records)


def test_the_sqlite_engine_applies_each_value_as_its_method_does(tmp_path: Path) -> None:
    with CallStore(tmp_path / "calls.db") as sqlite:
        with sqlite.batch():
            opening = OpenStreamRow("call-1", "s-1", at(0), ("inbound",), "audio/x-l16", 8000,
                                 "/r/call-1.wav", to_number="+1415", row_id=7)  # fmt: skip
            assert sqlite.apply(opening) == 7
            assert sqlite.apply(UpdateStreamRow(7, byte_order="little")) is None
            assert isinstance(sqlite.apply(AddEvent("call-1", 7, "dtmf", {"d": "4"}, at(1))), int)
            assert isinstance(sqlite.apply(callback("call-1")), int)
            assert sqlite.apply(CloseStreamRow(7, at(3), "stop", 10, 0, 2)) is True
            assert sqlite.apply(CloseStreamRow(7, at(4), "again", 0, 0, 0)) is False
        call = sqlite.get_call("call-1")
    assert call is not None
    assert (call["status"], call["to_number"]) == ("ended", "+1415")
    [stream] = call["streams"]
    assert (stream["id"], stream["byte_order"], stream["end_reason"]) == (7, "little", "stop")
    assert [(e["kind"], e["detail"]) for e in call["events"]] == [("dtmf", {"d": "4"})]
    assert [c["event"] for c in call["status_callbacks"]] == ["StartStream"]
