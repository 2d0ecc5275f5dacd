"""What the call store's engine costs per call: SQLite against PostgreSQL, side by side, one load.

    .venv/bin/python bench/bench_store_engines.py [--calls 500] [--duration 20] [--repeat 1]
        [--json results.json]

Starts a throwaway PostgreSQL (Debian's, as the tests do: ``tests/services/postgres.py``), then
for each engine in turn (``--repeat`` rounds, alternating): ``vobiz-stream serve`` with the
record handler and the picows socket (as ``bench/bench_servers.py`` starts it) and
``--database`` the data folder's SQLite file or a new PostgreSQL database, pinned to core 0 with
the PostgreSQL server; ``vobiz-stream load`` places ``--calls`` paced recording calls (speech,
50 frames/s each) from the other core(s). Reported per engine:

* server CPU ms per call: the server process's CPU from the load's start until its last call
  closed, over the calls that completed (what a worker pays per call, the store's threads
  included), and the same per media frame handled (comparable where the load fell behind);
* database CPU ms per call: PostgreSQL's own processes over the same time (SQLite runs inside
  the server, so it has none of its own), and the two together;
* handling latency p99 (``/stats``) and the load's pacing p99, to show the run kept pace;
* the calls the store holds afterwards (``/calls``), every stream closed: nothing was lost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/services/postgres.py

from tests.services.postgres import PostgresServer, postgres_missing

from bench_servers import load_command
from harness import (
    SERVERS,
    RunningServer,
    ServerKind,
    cores,
    cpu_seconds,
    get_json,
    ramp_rate,
    run_bounded,
)


@dataclass(frozen=True)
class StoreServer(ServerKind):
    """vobiz-stream's server (picows socket) on the store at ``database``."""

    database: str = ""

    def command(self, port: int, media_port: int, data_dir: Path, handler: str) -> list[str]:
        base = SERVERS["picows"].command(port, media_port, data_dir, handler)
        database = self.database or f"sqlite:///{data_dir / 'vobiz-stream.db'}"
        return [*base, "--database", database]


def cluster_cpu(server: PostgresServer) -> float:
    """CPU seconds of the PostgreSQL cluster so far: the postmaster, its children now running,
    and those it has reaped."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == postmaster:  # its own, and its reaped children's (cutime, cstime)
            total += sum(int(value) for value in fields[11:15]) / ticks
        elif int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _pin_cluster(server: PostgresServer) -> None:
    """Put PostgreSQL on the server's core: the engines are compared on one core's budget."""
    pin, _ = cores()
    if not pin:
        return
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == postmaster or int(fields[1]) == postmaster:
            os.sched_setaffinity(pid, {0})


def _stored(url: str, calls: int) -> tuple[int, int]:
    """Calls the store lists, and those with every stream closed."""
    listed: list[dict[str, Any]] = []
    offset = 0
    while len(listed) < calls + 1:
        page = get_json(f"{url}calls?limit=500&offset={offset}", timeout=30)
        listed += page["calls"]
        if not page["calls"] or len(page["calls"]) < 500:
            break
        offset += 500
    closed = sum(all(s["ended_at"] for s in call["streams"]) for call in listed)
    return len(listed), closed


def run_one(
    engine: str, database: str, cluster: PostgresServer, args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    kind = StoreServer(f"{engine}", f"store on {engine}", database=database)
    server = RunningServer(kind, scratch)
    report = scratch / f"load-{engine}-{time.monotonic_ns()}.json"
    command = load_command(server.url, args.calls, args.duration, report)
    try:
        server.wait_ready()
        server_before, db_before = cpu_seconds(server.pid) or 0.0, cluster_cpu(cluster)
        frames_before = server.stats()["frames"]
        timeout = args.calls / ramp_rate(args.calls, args.duration) + args.duration + 120
        run_bounded(command, timeout, report.with_suffix(".log"))
        deadline = time.monotonic() + 30
        while server.stats()["open_streams"] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # the last closes committed by the store's writer
        server_cpu = (cpu_seconds(server.pid) or 0.0) - server_before
        db_cpu = cluster_cpu(cluster) - db_before if engine == "postgresql" else 0.0
        stats = server.stats()
        frames = max(1, stats["frames"] - frames_before)
        stored, closed = _stored(server.url, args.calls)
    finally:
        server.stop()
    load = orjson.loads(report.read_bytes())
    latency = stats["handling_latency_ms"]
    completed = max(1, args.calls - int(load.get("failed") or 0))
    return {
        "engine": engine,
        "calls": args.calls,
        "duration": args.duration,
        "server_cpu_ms_per_call": round(1000 * server_cpu / completed, 1),
        "db_cpu_ms_per_call": round(1000 * db_cpu / completed, 1),
        "total_cpu_ms_per_call": round(1000 * (server_cpu + db_cpu) / completed, 1),
        "frames": frames,
        "server_cpu_us_per_frame": round(1e6 * server_cpu / frames, 1),
        "db_cpu_us_per_frame": round(1e6 * db_cpu / frames, 1),
        "latency_p99_ms": latency.get("p99"),
        "pacing_p99_ms": (load.get("pacing") or {}).get("p99"),
        "failed_calls": load.get("failed"),
        "calls_stored": stored,
        "calls_closed": closed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="paced recording calls per run")
    parser.add_argument("--duration", type=float, default=20, help="seconds of audio per call")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, each engine once a round")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    if not 1 <= args.calls <= 2000 or not 1 <= args.duration <= 300 or not 1 <= args.repeat <= 5:
        parser.error("calls must be 1-2000, duration 1-300 s, repeat 1-5")
    missing = postgres_missing()
    if missing is not None:
        parser.error(f"PostgreSQL is needed: {missing}")
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-store-") as scratch,
        PostgresServer.start() as pg,
    ):
        _pin_cluster(pg)
        for _ in range(args.repeat):
            for engine in ("sqlite", "postgresql"):
                database = pg.new_database() if engine == "postgresql" else ""
                run = run_one(engine, database, pg, args, Path(scratch))
                runs.append(run)
                print(orjson.dumps(run).decode(), flush=True)
    print(f"\n{args.calls} recording calls of {args.duration:g} s, server and PostgreSQL on core 0")
    print(f"{'engine':<11} {'server ms/call':>14} {'db ms/call':>10} {'total':>7} {'us/frame':>8} "
          f"{'p99 ms':>7} {'pace99':>7} {'stored':>7} {'closed':>7} {'failed':>6}")  # fmt: skip
    for engine in ("sqlite", "postgresql"):
        mine = [run for run in runs if run["engine"] == engine]
        server = statistics.median(run["server_cpu_ms_per_call"] for run in mine)
        db = statistics.median(run["db_cpu_ms_per_call"] for run in mine)
        per_frame = statistics.median(
            run["server_cpu_us_per_frame"] + run["db_cpu_us_per_frame"] for run in mine
        )
        last = mine[-1]
        kept = f"{last['calls_stored']:>7} {last['calls_closed']:>7} {last['failed_calls']:>6}"
        print(f"{engine:<11} {server:>14.1f} {db:>10.1f} {server + db:>7.1f} {per_frame:>8.1f} "
              f"{last['latency_p99_ms']:>7} {last['pacing_p99_ms']:>7} {kept}")  # fmt: skip
    if args.json:
        args.json.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
