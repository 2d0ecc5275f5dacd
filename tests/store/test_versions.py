"""Schema versions: a store made by an older vobiz-stream is upgraded at start-up and keeps all
it had; a store of a newer version is refused (tests/test_store.py); both engines."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest

from tests.store.engines import Backend
from vobiz_stream.store import SCHEMA_VERSION, CallQuery, CallStatus
from vobiz_stream.store.database import open_call_store, open_shared_nonces
from vobiz_stream.store.postgres_schema import CONTROL_AUDIO_TABLE, LIVE_TABLE, POSTGRES_STEPS

DATA = Path(__file__).parents[1] / "data"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_a_version_1_sqlite_file_is_upgraded_and_keeps_its_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vobiz-stream.db"
    with closing(sqlite3.connect(path)) as old:  # the file as the version-1 code left it
        old.executescript((DATA / "store-v1.sql").read_text())
    with open_call_store(f"sqlite:///{path}") as store:
        assert store.mark_interrupted(NOW) == 1  # the stream that version left open
        call = store.get_call("old-call")
        row = store.open_stream(call_id="new-call", stream_id="n", started_at=NOW,
                                tracks=["inbound"], encoding="audio/x-l16", sample_rate=8000,
                                recording_path=None)  # fmt: skip
        new = store.get_call("new-call")
    assert f"upgrading its schema from version 1 to {SCHEMA_VERSION}" in caplog.text
    assert call is not None and new is not None
    assert (call["status"], call["from_number"]) == (CallStatus.INTERRUPTED, "+14155551111")
    assert [(s["stream_id"], s["end_reason"], s["frames_received"]) for s in call["streams"]] == [
        ("a", "dropped", 100), ("b", "interrupted", 0)
    ]  # fmt: skip
    assert [(e["kind"], e["detail"]) for e in call["events"]] == [
        ("start", {"n": 1}), ("dtmf", {"digit": "7"})
    ]  # fmt: skip
    assert [c["fields"]["StreamID"] for c in call["status_callbacks"]] == ["b"]
    assert row == 3 and [s["id"] for s in new["streams"]] == [3]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        workers = db.execute("SELECT id FROM workers").fetchall()
        assert db.execute("SELECT worker FROM streams ORDER BY id").fetchall() == [
            (None,), (None,), (workers[0][0],)
        ]  # fmt: skip


def test_a_version_1_postgres_database_is_upgraded(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        for statement in POSTGRES_STEPS[1]:
            db.execute(statement.encode())
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute("INSERT INTO calls (call_id, first_seen, last_seen, status)"
                   " VALUES ('old-call', now(), now(), 'ended')")  # fmt: skip
    with open_call_store(postgres_url) as store:
        call = store.get_call("old-call")
    assert call is not None and call["status"] == "ended"
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert db.execute("SELECT count(*) FROM workers").fetchall() == [(1,)]


def test_a_new_store_is_at_the_current_version_on_both_engines(store_backend: Backend) -> None:
    store_backend.plain().close()
    store_backend.plain().close()  # opening again changes nothing
    assert store_backend.rows("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert store_backend.rows("SELECT count(*) FROM workers") == [(0,)]


def _sqlite_indexes(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}


@pytest.mark.parametrize("had_search_indexes", [True, False], ids=["console-era", "older"])
async def test_a_version_2_sqlite_file_gets_the_search_indexes_as_version_3(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, had_search_indexes: bool
) -> None:
    path = tmp_path / "vobiz-stream.db"
    with closing(sqlite3.connect(path)) as old:  # the file as the version-2 code left it
        old.executescript((DATA / "store-v2.sql").read_text())
        if not had_search_indexes:  # a file that code never opened with the console's search
            old.executescript("DROP INDEX calls_by_status; DROP INDEX calls_by_numbers;")
    with open_call_store(f"sqlite:///{path}") as store:
        found = (await store.search_calls_json(CallQuery(number="5551111")))[0]
        ended = (await store.search_calls_json(CallQuery(status=CallStatus.ENDED)))[0]
    assert f"upgrading its schema from version 2 to {SCHEMA_VERSION}" in caplog.text
    assert [call["call_id"] for call in orjson.loads(found)] == ["old-call"]
    [call] = orjson.loads(ended)
    assert (call["call_id"], call["streams"][0]["frames_received"]) == ("old-call", 250)
    assert {"calls_by_status", "calls_by_numbers"} <= _sqlite_indexes(path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


async def test_a_version_2_postgres_database_gets_the_search_indexes_as_version_3(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(postgres_url) as db:  # the database as the version-2 code left it
        for statement in (*POSTGRES_STEPS[1], *POSTGRES_STEPS[2]):
            db.execute(statement.encode())
        db.execute("INSERT INTO schema_version VALUES (2)")
        db.execute("INSERT INTO calls (call_id, first_seen, last_seen, from_number, status)"
                   " VALUES ('old-call', now(), now(), '+14155551111', 'ended')")  # fmt: skip
    with open_call_store(postgres_url) as store:
        found = (await store.search_calls_json(CallQuery(number="5551111")))[0]
    assert f"upgrading its schema from version 2 to {SCHEMA_VERSION}" in caplog.text
    assert [call["call_id"] for call in orjson.loads(found)] == ["old-call"]
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        indexes = {row[0] for row in db.execute("SELECT indexname FROM pg_indexes")}
    assert {"calls_by_status", "calls_by_numbers"} <= indexes
    assert "has no index" not in caplog.text


@pytest.mark.parametrize("made_when_first_used", [False, True])
def test_a_version_3_postgres_database_gets_the_tables_server_processes_share(
    postgres_url: str, made_when_first_used: bool
) -> None:
    with psycopg.connect(postgres_url) as db:  # the database as the version-3 code left it
        for version in (1, 2, 3):
            for statement in POSTGRES_STEPS[version]:
                db.execute(statement.encode())
        db.execute("INSERT INTO schema_version VALUES (3)")
        if made_when_first_used:  # that code made them itself, when several processes shared it
            db.execute(f"CREATE TABLE {LIVE_TABLE} (worker TEXT PRIMARY KEY, snapshot TEXT"
                       " NOT NULL, at TIMESTAMPTZ NOT NULL)")  # fmt: skip
            db.execute(f"INSERT INTO {LIVE_TABLE} VALUES ('w', '{{}}', now())")
    open_call_store(postgres_url).close()
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        db.execute(f"INSERT INTO {CONTROL_AUDIO_TABLE} (call_id, rate, samples)"
                   " VALUES ('c', 8000, '\\x0000')")  # fmt: skip
        live = db.execute(f"SELECT worker FROM {LIVE_TABLE}").fetchall()
    assert live == ([("w",)] if made_when_first_used else [])


async def test_a_postgres_database_of_the_version_before_gets_the_shared_nonces(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    adds_nonces = next(
        version
        for version, statements in POSTGRES_STEPS.items()
        if any("CREATE TABLE used_nonces" in statement for statement in statements)
    )
    with psycopg.connect(postgres_url) as db:  # the database as the version before left it
        for version in range(1, adds_nonces):
            for statement in POSTGRES_STEPS[version]:
                db.execute(statement.encode())
        db.execute("INSERT INTO schema_version VALUES (%s)", (adds_nonces - 1,))
    open_call_store(postgres_url).close()
    claims = open_shared_nonces(postgres_url)
    assert claims is not None
    try:
        assert await claims.claim("n-1") and not await claims.claim("n-1")
    finally:
        await claims.close()
    assert f"from version {adds_nonces - 1} to {SCHEMA_VERSION}" in caplog.text
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM used_nonces").fetchall() == [(1,)]
