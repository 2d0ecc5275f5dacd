"""The console's call search on both engines (SQLite and PostgreSQL): filters, pages, the same
answers from each, and indexed plans on 100k calls."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from tests.services.postgres import PostgresServer
from tests.store.engines import Backend, Plain, PostgresBackend, SqliteBackend
from vobiz_stream.core.callbacks import SignatureCheck, StatusCallback, format_utc
from vobiz_stream.store import SCHEMA_VERSION, CallQuery, CallStatus, CallStore
from vobiz_stream.store.postgres import PostgresEngine
from vobiz_stream.store.postgres_search import postgres_search_sql
from vobiz_stream.store.sqlite_search import search_sql

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _call(store: Plain, call_id: str, at: datetime, from_number: str, to_number: str) -> int:
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


def _ids(store: Plain, query: CallQuery) -> tuple[list[str], bool]:
    text, more = store.engine.search_calls_json(query)
    return [call["call_id"] for call in orjson.loads(text)], more


@pytest.fixture
def store(store_backend: Backend) -> Iterator[Plain]:
    with store_backend.plain() as store:
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
        yield store


def test_a_part_of_either_number_finds_the_call(store: Plain) -> None:
    assert _ids(store, CallQuery(number="98765")) == (["a"], False)
    assert _ids(store, CallQuery(number="80456")) == (["b", "a"], False)
    assert _ids(store, CallQuery(number="22222")) == (["c"], False)
    assert _ids(store, CallQuery(number="0000")) == (["c", "b"], False)


def test_wildcards_in_the_number_are_taken_literally(store: Plain) -> None:
    assert _ids(store, CallQuery(number="%"))[0] == ["c"]
    assert _ids(store, CallQuery(number="_"))[0] == ["c"]
    assert _ids(store, CallQuery(number="\\"))[0] == ["c"]
    assert _ids(store, CallQuery(number="%_off\\"))[0] == ["c"]
    assert _ids(store, CallQuery(number="%o"))[0] == []  # as wildcards, it would match c
    assert _ids(store, CallQuery(number="5_"))[0] == []  # "_" as a wildcard would match "50"


def test_date_range_status_and_pages(store: Plain) -> None:
    day = timedelta(days=1)
    assert _ids(store, CallQuery(since=T0 + day))[0] == ["c", "b"]
    assert _ids(store, CallQuery(until=T0 + day))[0] == ["a"]
    assert _ids(store, CallQuery(since=T0 + day, until=T0 + 2 * day))[0] == ["b"]
    assert _ids(store, CallQuery(status=CallStatus.ENDED))[0] == ["a"]
    assert _ids(store, CallQuery(status=CallStatus.ACTIVE))[0] == ["c", "b"]
    assert _ids(store, CallQuery(status=CallStatus.INTERRUPTED)) == ([], False)
    assert _ids(store, CallQuery(limit=2)) == (["c", "b"], True)
    assert _ids(store, CallQuery(limit=2, offset=2)) == (["a"], False)
    assert _ids(store, CallQuery(limit=2, offset=3)) == ([], False)


def test_a_summary_is_the_call_without_its_events_and_callbacks(store: Plain) -> None:
    store.add_event("a", None, "dtmf", {"digit": "7"}, at=T0 + timedelta(seconds=5))
    text, _ = store.engine.search_calls_json(CallQuery(number="98765"))
    [summary] = orjson.loads(text)
    record = dict(store.get_call("a") or {})
    assert record.pop("events") and record.pop("status_callbacks") == []
    assert summary == record
    assert list(summary) == list(record)  # the same keys in the same order
    assert summary["streams"][0]["end_reason"] == "hangup"


# --- the same answers from both engines -------------------------------------------------------


def _fill_alike(store: Plain, rng: random.Random) -> None:
    """300 calls, the same on every engine: numbers of few characters (many matches, and the
    wildcard and escape characters), calls first seen in the same millisecond, every status
    (ended, active, interrupted, known from callbacks only)."""
    alphabet = "0125%_\\"
    moments = [T0 + timedelta(milliseconds=rng.randrange(400) * 250) for _ in range(300)]
    for n, moment in enumerate(moments):
        if n == 150:  # the streams open so far end as a crash leaves them
            store.mark_interrupted(T0 + timedelta(days=1))
        number = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 7)))
        kind = n % 4
        if kind == 3:  # known from a status callback only, maybe with no number
            callback = StatusCallback("StartStream", call_uuid=f"call-{n}", from_number=number)
            store.add_status_callback(callback, moment, SignatureCheck.VALID)
            continue
        row = _call(store, f"call-{n}", moment, number, rng.choice(("+91805", "+1_415%")))
        if kind == 1:
            store.close_stream(
                row,
                ended_at=moment + timedelta(seconds=9),
                end_reason="hangup",
                frames_received=n,
                frames_malformed=0,
                frames_sent=1,
            )


def _random_query(rng: random.Random) -> CallQuery:
    def maybe_moment() -> datetime | None:
        return None if rng.random() < 0.5 else T0 + timedelta(milliseconds=rng.randrange(100_000))

    return CallQuery(
        number=rng.choice((None, "", "0", "12", "%", "_", "\\", "5%", "_1", "\\_", "+1_4", "91")),
        since=maybe_moment(),
        until=maybe_moment(),
        status=rng.choice((None, *CallStatus)),
        limit=rng.choice((1, 3, 10, 50)),
        offset=rng.choice((0, 0, 2, 17, 250)),
    )


def test_both_engines_give_the_same_answers(tmp_path: Path, postgres_url: str) -> None:
    answers: dict[str, list[tuple[object, bool]]] = {}
    for backend in (SqliteBackend(tmp_path / "calls.db"), PostgresBackend(postgres_url)):
        with backend.plain() as store:
            _fill_alike(store, random.Random(7))
            rng = random.Random(11)
            answers[backend.name] = []
            for _ in range(300):
                text, more = store.engine.search_calls_json(_random_query(rng))
                answers[backend.name].append((orjson.loads(text), more))
    assert answers["sqlite"] == answers["postgresql"]
    found = [len(calls) for calls, _ in answers["sqlite"]]
    assert sum(1 for count in found if count > 1) > 50  # many searches found several calls
    assert sum(1 for _, more in answers["sqlite"] if more) > 20


# --- plans on 100k calls ----------------------------------------------------------------------


def _fill_sqlite(path: Path, count: int) -> None:
    """``count`` calls with one stream each, straight into the store's tables."""
    CallStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
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


POSTGRES_FILL = """
    INSERT INTO calls (call_id, first_seen, last_seen, from_number, to_number, status)
    SELECT 'call-' || n, %(t0)s + n * interval '1 second', %(t0)s + (n + 30) * interval '1 second',
           '+9198' || lpad(n::text, 8, '0'), '+918045678901',
           CASE WHEN n %% 10 = 0 THEN 'interrupted' ELSE 'ended' END
    FROM generate_series(0, %(count)s - 1) AS n;
    INSERT INTO streams (call_id, started_at, tracks, encoding, sample_rate)
    SELECT 'call-' || n, %(t0)s, '["inbound"]', 'audio/x-l16', 8000
    FROM generate_series(0, %(count)s - 1) AS n
"""
"""The same calls as :func:`_fill_sqlite`, made by PostgreSQL itself."""


def _fill_postgres(url: str, count: int) -> None:
    PostgresEngine.open(url).close()
    with psycopg.connect(url, autocommit=True) as db:
        for statement in POSTGRES_FILL.split(";"):
            db.execute(statement.encode(), {"t0": T0, "count": count})
        # What autovacuum does after a bulk of inserts: the statistics the planner needs, and
        # the visibility map that lets a walk of an index skip the table.
        db.execute("VACUUM ANALYZE calls")
        db.execute("VACUUM ANALYZE streams")


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


@dataclass
class BigStore:
    """A store of 100k calls on one engine: ``plan`` is how its database runs a search."""

    backend: Backend

    def plan(self, query: CallQuery) -> str:
        if isinstance(self.backend, SqliteBackend):
            calls, parameters = search_sql(query)
            with closing(sqlite3.connect(self.backend.path)) as db:
                rows = db.execute(f"EXPLAIN QUERY PLAN {calls}", parameters)
                return " | ".join(row[3] for row in rows)
        calls, parameters = postgres_search_sql(query)
        with psycopg.connect(self.backend.url) as db:
            rows = db.execute(f"EXPLAIN {calls}".encode(), parameters)
            return " | ".join(str(row[0]).strip() for row in rows)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> BigStore:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("big") / "calls.db"
        _fill_sqlite(path, 100_000)
        return BigStore(SqliteBackend(path))
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.new_database()
    _fill_postgres(url, 100_000)
    return BigStore(PostgresBackend(url))


def _assert_indexed(engine: str, name: str, plan: str) -> None:
    if engine == "sqlite":
        assert "USING INDEX calls_by" in plan or "USING COVERING INDEX calls_by" in plan, plan
        # The order comes from the index, not a sort of the matches (only calls first seen in
        # the same millisecond may be put in order among themselves: "RIGHT PART OF ORDER BY").
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
        return
    assert "Seq Scan" not in plan, plan
    if name == "number":  # a rare part: its few matches from the trigram index, then sorted
        assert "Bitmap Index Scan on calls_by_numbers" in plan, plan
        return
    assert "Index Scan Backward using calls_by" in plan or (
        "Index Only Scan Backward using calls_by" in plan
    ), plan
    assert "Sort" not in plan, plan  # the order comes from the index


@pytest.mark.parametrize("name", QUERIES)
def test_on_100k_calls_every_search_walks_an_index(big_store: BigStore, name: str) -> None:
    query = QUERIES[name]
    _assert_indexed(big_store.backend.name, name, big_store.plan(query))
    with big_store.backend.plain() as store:
        text, _ = store.engine.search_calls_json(query)
    found = orjson.loads(text)
    assert found, name
    times = [call["first_seen"] for call in found]
    assert times == sorted(times, reverse=True)
    assert all(len(call["streams"]) == 1 for call in found)
    if name == "number":
        assert len(found) == 11  # +919800004242 and +91980004242x
        assert all("0004242" in call["from_number"] for call in found)
    if name == "deep page":
        assert found[0]["call_id"] == f"call-{100_000 - 1 - 90_000}"


def test_postgres_plans_each_search_for_its_values(postgres_url: str) -> None:
    """A search is never a prepared statement: PostgreSQL would soon plan it once for any
    values, and such a plan walks every call for a part of a number."""
    with ConnectionPool(postgres_url, min_size=1, max_size=1) as pool:
        engine = PostgresEngine(pool, "test")
        PostgresEngine.open(postgres_url).close()  # the tables
        for _ in range(12):  # psycopg prepares a statement run 5 times; PostgreSQL then
            engine.search_calls_json(QUERIES["everything"])  # goes generic after 5 more
        with pool.connection() as db:
            prepared = db.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    assert not [text for (text,) in prepared if "calls" in text], prepared


def test_without_pg_trgm_the_store_opens_says_what_to_run_and_still_finds_numbers(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    role = "no_extensions_" + url.rsplit("/", 1)[-1]  # may create tables, not extensions
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN".encode())
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {role}".encode())
    limited = PostgresBackend(url.replace("//vobiz@", f"//{role}@"))
    with limited.plain() as store:
        _call(store, "a", T0, "+919876543210", "+918045678901")
        _call(store, "b", T0 + timedelta(days=1), "50%_off\\", "+912222200000")
        assert _ids(store, CallQuery(number="98765")) == (["a"], False)
        assert _ids(store, CallQuery(number="%_")) == (["b"], False)
    [warning] = [r.getMessage() for r in caplog.records if "has no index" in r.getMessage()]
    indexes = {row[0] for row in limited.rows("SELECT indexname FROM pg_indexes")}
    assert "calls_by_status" in indexes and "calls_by_numbers" not in indexes
    assert limited.rows("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    # What the warning says to run gives the store its index.
    with psycopg.connect(url, autocommit=True) as owner:
        for statement in warning.split("database owner: ", 1)[1].split(";"):
            owner.execute(statement.encode())
    caplog.clear()
    with limited.plain() as store:
        assert _ids(store, CallQuery(number="98765")) == (["a"], False)
    assert "has no index" not in caplog.text
    assert "calls_by_numbers" in {
        row[0] for row in limited.rows("SELECT indexname FROM pg_indexes")
    }
