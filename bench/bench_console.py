"""What the web console costs: its page on 100,000 calls, and the calls' latency while it is open.

    .venv/bin/python bench/bench_console.py [--rows 100000] [--requests 30]
        [--database both|sqlite|postgresql] [--calls 500] [--seconds 20] [--rate 100]
        [--repeat 2] [--skip-load]

Part 1, the page: a store filled with ``--rows`` calls (one stream each), served by an
in-process server on 127.0.0.1; ``GET /ui`` is asked ``--requests`` times for each search (the
newest page, a page deep in the list, a part of a number found in 11 calls, a date range, a
status) and the wall time of each answer is reported (p50, p99, max, in ms): the target is under
300 ms. Once per ``--database``: a SQLite file, and a throwaway PostgreSQL (tests/services/
postgres.py; installed with apt-get when missing and run as root), filled by PostgreSQL itself
and vacuumed, as autovacuum leaves a table after a bulk of inserts.

Then the live feed's own cost: ``--calls`` streams opened and fed as the server does (each
recording), and the CPU time of one snapshot (taken every 0.25 s while anyone follows the feed).

Part 2, the calls: as ``bench/bench_calls_poll.py`` runs a load, a fresh server process per run
(record only, picows socket, pinned to core 0) and ``vobiz-stream load`` with ``--calls`` paced
calls on the other cores; in the runs "with console" this process meanwhile asks ``GET /ui``
every second and follows the live feed (``GET /api/live``) for as long as the load runs. Runs
alternate without / with, ``--repeat`` times each. Columns: the server's handling latency
p50/p99/max over every frame (``/stats``), the load's pacing p99 and late frames, the pages
answered, lost (timed out) and their p99, the live snapshots received, failed calls, and the
server's event-loop thread's CPU time as a share of the load's wall time (what the console adds
there is what every call's frames wait behind). The spread between runs of the same kind is how
noisy the machine was. Bounded: rows, requests,
calls, seconds, and a timeout on every load, request and feed.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
from aiohttp import web

from bench_calls_poll import _thread_cpu_ms as thread_cpu_ms
from bench_session import _frames, _NullTransport
from harness import SERVERS, RunningServer, cores
from vobiz_stream.app.config import Settings
from vobiz_stream.app.console.live import TICK, live_snapshot
from vobiz_stream.app.keeper import StreamKeeper
from vobiz_stream.app.server import StreamServer
from vobiz_stream.app.session import CallSession, SessionOptions
from vobiz_stream.audio import ByteOrder
from vobiz_stream.core.callbacks import format_utc
from vobiz_stream.core.protocol import Start, encode
from vobiz_stream.store import CallStore, QueuedCallStore
from vobiz_stream.store.postgres import PostgresEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services.postgres import PostgresServer, postgres_missing

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEARCHES = {
    "newest": "/ui",
    "page 1000": "/ui?page=1000",
    "number (11 matches)": "/ui?number=0004242",
    "date range": "/ui?since=2026-01-01&until=2026-01-01",
    "status": "/ui?status=interrupted",
}


def _fill(path: Path, rows: int) -> None:
    """``rows`` calls with a stream each, a second apart, straight into the store's tables."""
    CallStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO calls (call_id, first_seen, last_seen, from_number, to_number, status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    f"call-{n:07d}",
                    format_utc(T0 + timedelta(seconds=n)),
                    format_utc(T0 + timedelta(seconds=n + 30)),
                    f"+9198{n:08d}",
                    "+918045678901",
                    "ended" if n % 10 else "interrupted",
                )
                for n in range(rows)
            ),
        )
        db.executemany(
            "INSERT INTO streams (call_id, started_at, ended_at, end_reason, tracks, encoding,"
            " sample_rate, byte_order) VALUES (?, ?, ?, 'hangup', '[\"inbound\"]',"
            " 'audio/x-l16', 8000, 'little')",
            (
                (
                    f"call-{n:07d}",
                    format_utc(T0 + timedelta(seconds=n)),
                    format_utc(T0 + timedelta(seconds=n + 30)),
                )
                for n in range(rows)
            ),
        )
    db.close()


_POSTGRES_FILL = (
    """INSERT INTO calls (call_id, first_seen, last_seen, from_number, to_number, status)
    SELECT 'call-' || lpad(n::text, 7, '0'), %(t0)s + n * interval '1 second',
           %(t0)s + (n + 30) * interval '1 second', '+9198' || lpad(n::text, 8, '0'),
           '+918045678901', CASE WHEN n %% 10 = 0 THEN 'interrupted' ELSE 'ended' END
    FROM generate_series(0, %(rows)s - 1) AS n""",
    """INSERT INTO streams (call_id, started_at, ended_at, end_reason, tracks, encoding,
                         sample_rate, byte_order)
    SELECT 'call-' || lpad(n::text, 7, '0'), %(t0)s + n * interval '1 second',
           %(t0)s + (n + 30) * interval '1 second', 'hangup', '["inbound"]', 'audio/x-l16',
           8000, 'little'
    FROM generate_series(0, %(rows)s - 1) AS n""",
)
"""The calls of :func:`_fill`, made by PostgreSQL itself."""


def _fill_postgres(url: str, rows: int) -> None:
    PostgresEngine.open(url).close()  # the tables
    with psycopg.connect(url, autocommit=True) as db:
        for statement in _POSTGRES_FILL:
            db.execute(statement.encode(), {"t0": T0, "rows": rows})
        db.execute("VACUUM ANALYZE calls")
        db.execute("VACUUM ANALYZE streams")


@contextmanager
def _filled(engine: str, data_dir: Path, rows: int) -> Iterator[str | None]:
    """A store of ``rows`` calls on ``engine``: its ``--database`` (None: the data folder's
    SQLite file), for as long as the block runs."""
    began = time.perf_counter()
    if engine == "sqlite":
        _fill(replace(Settings(), data_dir=data_dir).database_path, rows)
        print(f"sqlite: filled {rows} calls in {time.perf_counter() - began:.1f} s", flush=True)
        yield None
        return
    reason = postgres_missing()
    if reason is not None:
        raise SystemExit(f"no PostgreSQL: {reason}")
    with PostgresServer.start() as postgres:
        url = postgres.new_database()
        _fill_postgres(url, rows)
        print(f"postgresql: filled {rows} calls in {time.perf_counter() - began:.1f} s", flush=True)
        yield url


async def _page_times(rows: int, requests: int, engine: str) -> dict[str, list[float]]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-console-") as scratch,
        _filled(engine, Path(scratch), rows) as database,
    ):
        settings = replace(Settings(), data_dir=Path(scratch), port=0, database=database)
        server = StreamServer(settings)
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        times: dict[str, list[float]] = {}
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as client:
                for name, path in SEARCHES.items():
                    times[name] = []
                    for _ in range(requests):
                        started = time.perf_counter()
                        async with client.get(base + path) as reply:
                            await reply.read()
                            if reply.status != 200:
                                raise RuntimeError(f"GET {path} answered {reply.status}")
                        times[name].append((time.perf_counter() - started) * 1000)
        finally:
            await runner.cleanup()
        return times


class _Open:
    """What the live feed reads of an open stream: its keeper."""

    def __init__(self, keeper: StreamKeeper) -> None:
        self.keeper = keeper


async def _snapshot_cost(calls: int, snapshots: int) -> float:
    """CPU microseconds of one live snapshot with ``calls`` streams open, each recording (the
    feed takes one every 0.25 s while anyone follows it)."""
    with tempfile.TemporaryDirectory(prefix="bench-console-live-") as scratch:
        folder = Path(scratch)
        store = QueuedCallStore(folder / "calls.db")
        options = SessionOptions(byte_order=ByteOrder.BIG)
        opened, sessions = [], []
        frames = _frames(2.0, "stream-0", int(time.time() * 1000))
        for index in range(calls):
            keeper = StreamKeeper(folder / "recordings", store, record_heard=False)
            session = CallSession(_NullTransport(), options, keeper, {"call": f"call-{index}"})
            session.feed(encode(Start(stream_id=f"stream-{index}", call_id=f"call-{index}")))
            for text in frames:
                session.feed(text)
            opened.append(_Open(keeper))
            sessions.append(session)
        began = time.process_time()
        for _ in range(snapshots):
            live_snapshot(opened)  # type: ignore[arg-type]
        cost = (time.process_time() - began) / snapshots * 1e6
        for session in sessions:
            session.close("done")
        store.close()
    return cost


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _poll_page(url: str, stop: threading.Event, seconds: list[float], failed: list[str]) -> None:
    """GET ``url`` every second until ``stop``: each answer's seconds, and each failure (a
    timeout on a machine too busy for the load is counted, not fatal)."""

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    async with client.get(url) as reply:
                        await reply.read()
                        if reply.status != 200:
                            failed.append(f"status {reply.status}")
                except (TimeoutError, aiohttp.ClientError) as exc:
                    failed.append(type(exc).__name__)
                else:
                    seconds.append(time.perf_counter() - began)
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - began)))

    asyncio.run(run())


def _follow_live(url: str, stop: threading.Event, snapshots: list[int]) -> None:
    """Read the live feed until ``stop``; each snapshot's size in bytes."""

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=10)
        async with aiohttp.ClientSession(timeout=timeout) as client, client.get(url) as reply:
            async for line in reply.content:
                if line.startswith(b"data: "):
                    snapshots.append(len(line))
                if stop.is_set():
                    return

    asyncio.run(run())


def _load_run(args: argparse.Namespace, scratch: Path, console: bool) -> dict[str, Any]:
    server = RunningServer(SERVERS["picows"], scratch)
    try:
        server.wait_ready()
        stop, pages, snapshots = threading.Event(), list[float](), list[int]()
        failed_pages: list[str] = []
        watchers = [
            threading.Thread(
                target=_poll_page, args=(f"{server.url}ui", stop, pages, failed_pages)
            ),
            threading.Thread(target=_follow_live, args=(f"{server.url}api/live", stop, snapshots)),
        ]
        if console:
            for watcher in watchers:
                watcher.start()
        _, pin = cores()
        report = scratch / "load.json"
        command = [
            *pin, sys.executable, "-m", "vobiz_stream", "load", server.url,
            "--calls", str(args.calls), "--duration", str(args.seconds),
            "--rate", str(args.rate), "--report", str(report), "--quiet",
        ]  # fmt: skip
        timeout = args.calls / args.rate + args.seconds + 90
        loop_before, began = thread_cpu_ms(server.pid)[0], time.perf_counter()
        subprocess.run(command, check=False, timeout=timeout, stdout=subprocess.DEVNULL)
        loop_share = (thread_cpu_ms(server.pid)[0] - loop_before) / (
            (time.perf_counter() - began) * 1000
        )
        stop.set()
        if console:
            for watcher in watchers:
                watcher.join(timeout=15)
        load: dict[str, Any] = orjson.loads(report.read_bytes())
        return {
            "console": console,
            "stats": server.stats(),
            "load": load,
            "loop_cpu": loop_share,
            "pages": pages,
            "failed_pages": failed_pages,
            "snapshots": snapshots,
        }
    finally:
        server.stop()


def _line(run: dict[str, Any]) -> str:
    latency = run["stats"]["handling_latency_ms"]
    pacing = run["load"]["pacing"] or {"p99": float("nan")}
    pages = run["pages"]
    page99 = f"{_percentile(pages, 0.99) * 1000:>9.1f}" if pages else f"{'-':>9}"
    return (
        f"{'yes' if run['console'] else 'no':>7} {latency['p50']:>8.1f} {latency['p99']:>8.1f} "
        f"{latency['max']:>8.1f} {pacing['p99']:>8.2f} {run['load']['late_frames']:>7} "
        f"{len(pages):>6} {len(run['failed_pages']):>5} {page99} {len(run['snapshots']):>6} "
        f"{run['load']['failed']:>6} {run['loop_cpu'] * 100:>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="calls in the store (part 1)")
    parser.add_argument("--requests", type=int, default=30, help="pages asked per search")
    parser.add_argument(
        "--database",
        choices=("both", "sqlite", "postgresql"),
        default="both",
        help="the store's engine(s) for part 1 (default: both)",
    )
    parser.add_argument("--calls", type=int, default=500, help="paced calls per run")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio seconds per call")
    parser.add_argument("--rate", type=float, default=100.0, help="calls started per second")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind")
    parser.add_argument("--skip-load", action="store_true", help="part 1 only")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if not (1 <= args.rows <= 1_000_000 and 1 <= args.requests <= 500):
        parser.error("rows 1-1000000, requests 1-500")
    if not (1 <= args.calls <= 2000 and 1 <= args.repeat <= 5 and args.seconds <= 120):
        parser.error("calls 1-2000, repeat 1-5, seconds at most 120")
    engines = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    times = {
        engine: asyncio.run(_page_times(args.rows, args.requests, engine)) for engine in engines
    }
    for engine, pages in times.items():
        title = f"GET /ui, {engine}, {args.rows} calls"
        print(f"{title:<36} {'p50 ms':>8} {'p99 ms':>8} {'max':>8}")
        for name, values in pages.items():
            print(
                f"{name:<36} {statistics.median(values):>8.1f}"
                f" {_percentile(values, 0.99):>8.1f} {max(values):>8.1f}"
            )
    cost = asyncio.run(_snapshot_cost(args.calls, 200))
    print(
        f"live snapshot with {args.calls} open calls: {cost:.0f} us CPU each, "
        f"{cost / TICK / 1e4:.2f}% of a core while the feed is followed"
    )
    runs = []
    if not args.skip_load:
        print(
            f"{'console':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'pace99':>8} "
            f"{'late':>7} {'pages':>6} {'lost':>5} {'page p99':>9} {'live':>6} {'failed':>6} "
            f"{'loop cpu%':>8}"
        )
        with tempfile.TemporaryDirectory(prefix="bench-console-load-") as scratch:
            for _ in range(args.repeat):
                for console in (False, True):
                    run = _load_run(args, Path(scratch), console)
                    runs.append(run)
                    print(_line(run), flush=True)
    if args.json is not None:
        body = {"pages": times, "snapshot_us": cost, "runs": runs}
        args.json.write_bytes(orjson.dumps(body))


if __name__ == "__main__":
    main()
