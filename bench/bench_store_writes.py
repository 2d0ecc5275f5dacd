"""What the call store's writes cost per recording call on SQLite and PostgreSQL, without a server.

    .venv/bin/python bench/bench_store_writes.py [--calls 1000] [--rate 50] [--length 1]
        [--repeat 1]

Starts a throwaway PostgreSQL (Debian's, as the tests do: ``tests/services/postgres.py``), then
for each engine in turn (``--repeat`` rounds, alternating) opens the queued store the server
uses (SQLite: a file in a temp folder; PostgreSQL: a new database) and writes what a recording
call writes, through the same methods the server calls: its stream opened (with its configured
byte order), its StartStream status callback; ``--length`` seconds later its stream closed and its
``recording.saved`` event. Calls start ``--rate`` a second, so the writer gathers batches of
the size a paced load gives it. Reported per engine, per call:

* writer ms: CPU of the store's writer thread (the client side of every write: building the
  statements, the round trips, the commits), from ``/proc``;
* db ms: PostgreSQL's own processes over the same time (SQLite has none of its own);
* total: the two together.

Nothing waits for a write while the calls run; at the end every status callback's future must
have succeeded and every call must read back ended, or the run fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/services/postgres.py

from tests.services.postgres import PostgresServer, postgres_missing

from bench_store_engines import cluster_cpu
from harness import cpu_seconds
from vobiz_stream.core.callbacks import SignatureCheck, parse_status_callback
from vobiz_stream.core.kinds import EventKind
from vobiz_stream.store import QueuedCallStore, QueuedStore
from vobiz_stream.store.postgres import QueuedPostgresStore

WRITER = "vobiz-stream-store"
"""The name of the store's writer thread."""


def _writer_cpu() -> float:
    """CPU seconds so far of the (one) store writer thread running in this process."""
    [writer] = [t for t in threading.enumerate() if t.name == WRITER and t.is_alive()]
    assert writer.native_id is not None
    return cpu_seconds(writer.native_id) or 0.0


def _start(store: QueuedStore, number: int) -> tuple[int, Future[None]]:
    """What the server writes as a recording call's stream starts."""
    call_id = f"call-{number:06d}"
    now = datetime.now(UTC)
    row = store.open_stream(
        call_id=call_id, stream_id=f"stream-{number}", started_at=now, tracks=["inbound"],
        encoding="audio/x-l16", sample_rate=8000, recording_path=f"/rec/{call_id}.wav",
        from_number="+14155550100", to_number=f"+1415555{number % 10000:04d}",
        direction="inbound", account_id="MA-bench", byte_order="little",
    )  # fmt: skip
    fields = {"Event": "StartStream", "CallUUID": call_id, "StreamID": f"stream-{number}",
              "From": "+14155550100", "To": f"+1415555{number % 10000:04d}"}  # fmt: skip
    callback = parse_status_callback(fields)
    return row, store.add_status_callback(callback, now, SignatureCheck.VALID)


def _end(store: QueuedStore, number: int, row: int) -> None:
    """What the server writes as a recording call's stream ends and its recording is saved."""
    call_id = f"call-{number:06d}"
    now = datetime.now(UTC)
    store.close_stream(row, ended_at=now, end_reason="stop", frames_received=50,
                       frames_malformed=0, frames_sent=0, call_id=call_id)  # fmt: skip
    detail = {"location": f"/rec/{call_id}.wav", "bytes": 16044, "file": f"{call_id}.wav",
              "stream_id": f"stream-{number}", "stream_row": row}  # fmt: skip
    store.add_event(call_id, None, EventKind.RECORDING_SAVED, detail, at=now)


def run_one(
    engine: str, open_store: Callable[[], QueuedStore], db_cpu: Callable[[], float],
    args: argparse.Namespace,
) -> dict[str, float]:  # fmt: skip
    """``args.calls`` calls' writes through a store on ``engine``; CPU ms per call."""
    with open_store() as store:
        store.flush()
        writer_before, db_before = _writer_cpu(), db_cpu()
        began = time.monotonic()
        open_calls: list[tuple[float, int, int]] = []  # (ends at, number, row)
        callbacks: list[Future[None]] = []
        started = 0
        while started < args.calls or open_calls:
            now = time.monotonic() - began
            while started < args.calls and started / args.rate <= now:
                row, stored = _start(store, started)
                callbacks.append(stored)
                open_calls.append((now + args.length, started, row))
                started += 1
            while open_calls and open_calls[0][0] <= now:
                _, number, row = open_calls.pop(0)
                _end(store, number, row)
            time.sleep(0.01)
        store.flush()
        writer_cpu, database_cpu = _writer_cpu() - writer_before, db_cpu() - db_before
        for stored in callbacks:
            stored.result(timeout=30)  # every callback committed
        calls = store.list_calls(limit=args.calls + 1)
    ended = sum(call["status"] == "ended" for call in calls)
    if ended != args.calls:
        raise RuntimeError(f"{engine}: {ended} of {args.calls} calls stored ended")
    per_call = 1000 / args.calls
    return {"writer_ms": writer_cpu * per_call, "db_ms": database_cpu * per_call}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="recording calls per run")
    parser.add_argument("--rate", type=float, default=50, help="calls started per second")
    parser.add_argument("--length", type=float, default=1, help="seconds each call lasts")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, each engine once a round")
    args = parser.parse_args()
    if not 1 <= args.calls <= 5000 or not 1 <= args.rate <= 500 or not 0 <= args.length <= 30:
        parser.error("calls must be 1-5000, rate 1-500 a second, length 0-30 s")
    if not 1 <= args.repeat <= 5:
        parser.error("repeat must be 1-5")
    missing = postgres_missing()
    if missing is not None:
        parser.error(f"PostgreSQL is needed: {missing}")
    figures: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-writes-") as scratch,
        PostgresServer.start() as pg,
    ):
        for round_ in range(args.repeat):
            path = Path(scratch) / f"calls-{round_}.db"
            sqlite = run_one("sqlite", partial(QueuedCallStore, path), lambda: 0.0, args)
            postgres = run_one(
                "postgresql", partial(QueuedPostgresStore, pg.new_database()),
                partial(cluster_cpu, pg), args,
            )  # fmt: skip
            for engine, run in (("sqlite", sqlite), ("postgresql", postgres)):
                figures[engine].append(run)
                print(f"round {round_ + 1} {engine}: writer {run['writer_ms']:.3f} ms/call,"
                      f" db {run['db_ms']:.3f} ms/call", flush=True)  # fmt: skip
    print(f"\n{args.calls} recording calls' writes, {args.rate:g} calls/s, {args.length:g} s each"
          f" (median of {args.repeat})")  # fmt: skip
    print(f"{'engine':<11} {'writer ms/call':>14} {'db ms/call':>10} {'total':>7}")
    for engine, runs in figures.items():
        writer = statistics.median(run["writer_ms"] for run in runs)
        db = statistics.median(run["db_ms"] for run in runs)
        print(f"{engine:<11} {writer:>14.3f} {db:>10.3f} {writer + db:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
