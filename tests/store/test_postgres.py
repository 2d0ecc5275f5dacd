"""What sharing one PostgreSQL call store between server processes asks, on a real server:
a process starting up leaves the streams of live processes alone and marks those of a killed
one interrupted; stream row ids never collide; a database restart holds the writes until it is
back; a URL that leads nowhere, or to someone else's database, says what to do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.services.postgres import PostgresServer
from tests.store.engines import Backend, PostgresBackend
from vobiz_stream.core.callbacks import SignatureCheck, parse_status_callback
from vobiz_stream.errors import StoreError
from vobiz_stream.store import CallStatus, QueuedStore
from vobiz_stream.store.database import database_path, open_call_store

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
MULAW = {"tracks": ["inbound"], "encoding": "audio/x-mulaw", "sample_rate": 8000}

HOLDING_WORKER = """
import sys, time
from datetime import UTC, datetime
from vobiz_stream.store.database import open_call_store
store = open_call_store(sys.argv[1])
T = datetime(2025, 1, 1, tzinfo=UTC)
row = store.open_stream(call_id="held", stream_id="h", started_at=T, recording_path=None,
                        tracks=["inbound"], encoding="audio/x-mulaw", sample_rate=8000)
store.flush()
print(row, flush=True)
time.sleep(120)  # a live server process holding its call, until killed
"""


def open_stream(store: QueuedStore, call_id: str, seconds: float = 0) -> int:
    started = T0 + timedelta(seconds=seconds)
    return store.open_stream(call_id=call_id, stream_id="s", started_at=started,
                             recording_path=None, **MULAW)  # type: ignore[arg-type]  # fmt: skip


def test_a_starting_process_leaves_live_streams_alone_and_marks_a_killed_ones(
    postgres_url: str,
) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLDING_WORKER, postgres_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        held_row = int(worker.stdout.readline())
        with open_call_store(postgres_url) as other:  # another process of the same server
            own = open_stream(other, "own")
            assert other.mark_interrupted(T0) == 0, "a live process's stream is not interrupted"
            held = other.get_call("held")
            assert held is not None and held["status"] == CallStatus.ACTIVE
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            # The killed process's connection (and its lock) goes once PostgreSQL sees it close.
            deadline = time.monotonic() + 10
            with open_call_store(postgres_url) as restarted:
                while (marked := restarted.mark_interrupted(T0)) == 0:
                    assert time.monotonic() < deadline, "the killed process's lock never went"
                    time.sleep(0.1)
                call = restarted.get_call("held")
                mine = restarted.get_call("own")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert marked == 1
    assert call is not None and call["status"] == CallStatus.INTERRUPTED
    assert [s["id"] for s in call["streams"]] == [held_row]
    assert mine is not None and mine["status"] == CallStatus.ACTIVE  # the other live one's
    assert own != held_row


def test_processes_sharing_the_database_never_share_a_stream_row_id(postgres_url: str) -> None:
    stores = [open_call_store(postgres_url) for _ in range(3)]
    try:
        rows = [open_stream(store, f"call-{n}-{i}") for i in range(150) for n, store in
                enumerate(stores)]  # fmt: skip
        for store in stores:
            store.flush()
        listed = stores[0].list_calls(limit=1000)
    finally:
        for store in stores:
            store.close()
    assert len(set(rows)) == 450
    assert sorted(s["id"] for call in listed for s in call["streams"]) == sorted(rows)


async def test_a_database_restart_holds_the_writes_until_it_is_back(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    with open_call_store(url) as store:
        row = open_stream(store, "call-1")
        await store.settled()
        postgres_server.stop()
        try:
            for digit in "123":
                store.add_event("call-1", row, "dtmf", {"digit": digit}, at=T0)
            store.close_stream(row, ended_at=T0 + timedelta(seconds=5), end_reason="stop",
                               frames_received=9, frames_malformed=0, frames_sent=0)  # fmt: skip
            await asyncio.sleep(6)  # the writer waits for a connection (5 s), then holds
        finally:
            postgres_server.resume()
        deadline = time.monotonic() + 20
        while (call := store.get_call("call-1")) is None or call["status"] != "ended":
            assert time.monotonic() < deadline, f"the held writes never landed: {call}"
            await asyncio.sleep(0.2)
    assert [e["detail"] for e in call["events"]] == [{"digit": d} for d in "123"]
    assert call["streams"][0]["frames_received"] == 9
    assert "holding the writes until there is room" in caplog.text
    assert "room again: stored" in caplog.text


def test_a_url_that_leads_nowhere_says_what_to_check(postgres_server: PostgresServer) -> None:
    url = f"postgresql://vobiz:secret@127.0.0.1:{postgres_server.port + 1}/nowhere"
    began = time.monotonic()
    with pytest.raises(StoreError, match="check the --database URL") as caught:
        open_call_store(url)
    assert time.monotonic() - began < 15
    assert "secret" not in str(caught.value)


def test_someone_elses_postgres_database_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as db:
        db.execute("CREATE TABLE invoices (id integer)")
    with pytest.raises(StoreError, match=r"not a vobiz-stream call store.*invoices"):
        open_call_store(postgres_url)


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite://relative.db", "calls.db", "sqlite:///"])
def test_a_database_setting_that_is_no_url_says_which_are(url: str) -> None:
    with pytest.raises(StoreError, match=r"sqlite:///path.*postgresql://"):
        database_path(url)


def test_text_with_nul_characters_is_stored_on_both_engines(store_backend: Backend) -> None:
    fields = {"Event": "StartStream", "CallUUID": "call\x00-1", "Error": "bad\x00byte"}
    with store_backend.queued() as store:
        store.add_status_callback(parse_status_callback(fields), T0, SignatureCheck.UNSIGNED)
        store.flush()
        [call] = store.list_calls()
    nul = "\ufffd" if isinstance(store_backend, PostgresBackend) else "\x00"
    assert call["call_id"] == f"call{nul}-1"
    [callback] = call["status_callbacks"]
    assert callback["fields"]["Error"] == "bad\x00byte"  # JSON keeps it escaped on both


async def test_after_a_database_restart_a_live_process_is_marked_alive_again(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    with open_call_store(url) as live:
        open_stream(live, "live-call")
        await live.settled()
        postgres_server.restart()  # every connection, and so every lock, ends
        deadline = time.monotonic() + 20
        while "this process is alive again" not in caplog.text:
            assert time.monotonic() < deadline, "the lock was never taken again"
            await asyncio.sleep(0.1)
        with open_call_store(url) as starting:
            assert starting.mark_interrupted(T0) == 0
        call = live.get_call("live-call")
    assert "lost the connection that says this process is alive" in caplog.text
    assert call is not None and call["status"] == CallStatus.ACTIVE


def test_two_stores_in_two_schemas_of_one_database_keep_apart(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE SCHEMA other")
    with (
        open_call_store(postgres_url) as first,
        open_call_store(postgres_url + "?options=-csearch_path%3Dother") as second,
    ):
        assert (first.worker, second.worker) == (1, 1)  # the same ids, each in its own schema
        open_stream(first, "in-public")
        first.flush()
        assert second.mark_interrupted(T0) == 0
        assert second.list_calls() == []
        call = first.get_call("in-public")
    assert call is not None and call["status"] == CallStatus.ACTIVE
