"""The console's call search in the SQLite store: filters, pages, indexed plans on 100k calls."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from vobiz_stream.core.callbacks import format_utc
from vobiz_stream.store import CallQuery, CallStatus, CallStore
from vobiz_stream.store.sqlite_search import search_sql

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _call(store: CallStore, call_id: str, at: datetime, from_number: str, to_number: str) -> int:
    return store.open_stream(
        call_id=call_id,
        stream_id=f"s-{call_id}",
        started_at=at,
        tracks=["inbound"],
        encoding="audio/x-l16",
        sample_rate=8000,
        recording_path=None,
        from_number=from_number,
        to_number=to_number,
    )


def _ids(store: CallStore, query: CallQuery) -> tuple[list[str], bool]:
    text, more = store.search_calls_json(query)
    return [call["call_id"] for call in orjson.loads(text)], more


@pytest.fixture
def store(tmp_path: Path) -> CallStore:
    store = CallStore(tmp_path / "calls.db")
    row = _call(store, "a", T0, "+919876543210", "+918045678901")
    store.close_stream(
        row,
        ended_at=T0 + timedelta(seconds=30),
        end_reason="hangup",
        frames_received=1,
        frames_malformed=0,
        frames_sent=0,
    )
    _call(store, "b", T0 + timedelta(days=1), "+911111100000", "+918045678901")
    _call(store, "c", T0 + timedelta(days=2), "50%_off\\", "+912222200000")
    return store


def test_a_part_of_either_number_finds_the_call(store: CallStore) -> None:
    assert _ids(store, CallQuery(number="98765")) == (["a"], False)
    assert _ids(store, CallQuery(number="80456")) == (["b", "a"], False)
    assert _ids(store, CallQuery(number="22222")) == (["c"], False)
    assert _ids(store, CallQuery(number="0000")) == (["c", "b"], False)


def test_wildcards_in_the_number_are_taken_literally(store: CallStore) -> None:
    assert _ids(store, CallQuery(number="%"))[0] == ["c"]
    assert _ids(store, CallQuery(number="_"))[0] == ["c"]
    assert _ids(store, CallQuery(number="\\"))[0] == ["c"]
    assert _ids(store, CallQuery(number="%o"))[0] == []  # as wildcards, it would match c


def test_date_range_status_and_pages(store: CallStore) -> None:
    day = timedelta(days=1)
    assert _ids(store, CallQuery(since=T0 + day))[0] == ["c", "b"]
    assert _ids(store, CallQuery(until=T0 + day))[0] == ["a"]
    assert _ids(store, CallQuery(since=T0 + day, until=T0 + 2 * day))[0] == ["b"]
    assert _ids(store, CallQuery(status=CallStatus.ENDED))[0] == ["a"]
    assert _ids(store, CallQuery(status=CallStatus.ACTIVE))[0] == ["c", "b"]
    assert _ids(store, CallQuery(limit=2)) == (["c", "b"], True)
    assert _ids(store, CallQuery(limit=2, offset=2)) == (["a"], False)


def test_a_summary_holds_the_streams_but_not_the_events(store: CallStore) -> None:
    text, _ = store.search_calls_json(CallQuery(number="98765"))
    [call] = orjson.loads(text)
    assert call["streams"][0]["end_reason"] == "hangup"
    assert "events" not in call and "status_callbacks" not in call


def _fill(path: Path, count: int) -> None:
    """``count`` calls with one stream each, straight into the store's tables."""
    CallStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO calls (call_id, first_seen, last_seen, from_number, to_number, status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    f"call-{n}",
                    format_utc(T0 + timedelta(seconds=n)),
                    format_utc(T0 + timedelta(seconds=n + 30)),
                    f"+9198{n:08d}",
                    "+918045678901",
                    "ended" if n % 10 else "interrupted",
                )
                for n in range(count)
            ),
        )
        db.executemany(
            "INSERT INTO streams (call_id, started_at, tracks, encoding, sample_rate)"
            " VALUES (?, '2026-11-01T00:00:00.000000Z', '[\"inbound\"]', 'audio/x-l16', 8000)",
            ((f"call-{n}",) for n in range(count)),
        )
    db.close()


QUERIES = {
    "newest": CallQuery(),
    "number": CallQuery(number="0004242"),
    "dates": CallQuery(since=T0 + timedelta(hours=5), until=T0 + timedelta(hours=6)),
    "status": CallQuery(status=CallStatus.INTERRUPTED),
    "everything": CallQuery(
        number="42", since=T0, until=T0 + timedelta(days=1), status=CallStatus.ENDED
    ),
    "deep page": CallQuery(limit=50, offset=90_000),
}


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "calls.db"
    _fill(path, 100_000)
    return path


@pytest.mark.parametrize("name", QUERIES)
def test_on_100k_calls_every_search_walks_an_index(big_store: Path, name: str) -> None:
    path = big_store
    store = CallStore(path)  # adds the search indexes the file lacks
    query = QUERIES[name]
    calls, parameters = search_sql(query)
    db = sqlite3.connect(path)
    plan = " | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {calls}", parameters))
    db.close()
    assert "USING INDEX calls_by" in plan or "USING COVERING INDEX calls_by" in plan, plan
    # The order comes from the index, not a sort of the matches (only calls first seen in the
    # same millisecond may be put in order among themselves: "RIGHT PART OF ORDER BY").
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
    text, _ = store.search_calls_json(query)
    found = orjson.loads(text)
    assert found, name
    times = [call["first_seen"] for call in found]
    assert times == sorted(times, reverse=True)
    assert all(len(call["streams"]) == 1 for call in found)
    store.close()
