"""One worker against two: how many recording calls ``serve --workers N`` holds with the per-frame
handling latency's p99 under 10 ms, on this machine, load generator included.

    .venv/bin/python bench/bench_workers.py [--workers 1,2] [--calls 100,200,300] [--seconds 10]

Starts a throwaway PostgreSQL (tests/services/postgres.py; Debian's ``postgresql``, installed
when missing), then for each worker count the real server (``python -m vobiz_stream serve
--workers N --database postgresql://...``, record only, aiohttp socket) and, for each number of
calls, ``vobiz-stream load`` on the same machine (no pinning: the workers, the load and the
database share every core, as a small production box would). After each run it reads the
server's ``/metrics`` (summed over the workers) and reports, for that run alone:

* p99 of the per-frame handling latency (from the histogram: the bucket bound that holds the
  99th percentile; buckets 1, 2, 5, 10, 20, 50 ms);
* the load's pacing p99 (how late its frames left: a saturated machine delays the load too);
* the server's CPU % (supervisor and workers), calls failed.

The last line per worker count is the most calls held at p99 <= 10 ms, and that figure per
worker: multiply it by the cores of a bigger machine (leaving one for the load balancer and
database if they share it). Every run is bounded (calls, seconds, a timeout).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import urllib3
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services.postgres import PostgresServer, postgres_missing

LATENCY = "vobiz_frame_handling_seconds_bucket"
HELD_P99_MS = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def buckets(metrics_url: str) -> dict[float, float]:
    """Cumulative counts of the latency histogram by upper bound (seconds)."""
    text = urllib3.request("GET", metrics_url, timeout=10).data.decode()
    found: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LATENCY:
                found[float(sample.labels["le"])] = found.get(
                    float(sample.labels["le"]), 0.0
                ) + float(sample.value)
    return found


def p99_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The bucket bound (ms) holding the 99th percentile of what came between two scrapes."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for bound, count in delta.items():
        if count >= 0.99 * total:
            return bound * 1000.0
    return float("inf")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children so far (from /proc)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def start_server(
    workers: int, database: str, folder: Path
) -> tuple[subprocess.Popen[bytes], str, str]:
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vobiz_stream",
            "serve",
            "--workers",
            str(workers),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--database",
            database,
            "--data-dir",
            str(folder),
            "--l16-byte-order",
            "big",
            "--log-level",
            "WARNING",
        ],
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if urllib3.request("GET", base + "/healthz", timeout=1).status == 200:
                break
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.05)
    time.sleep(3.0 * workers)  # every worker up, not only the first
    return process, base, f"http://127.0.0.1:{metrics_port}/metrics"


def run_load(base: str, calls: int, seconds: float, rate: float, report: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "vobiz_stream", "load", base + "/", "--calls", str(calls),
        "--duration", str(seconds), "--rate", str(rate), "--report", str(report), "--quiet",
        "--l16-byte-order", "big", "--processes", "1",
    ]  # fmt: skip
    subprocess.run(
        command, check=False, timeout=calls / rate + seconds + 120, stdout=subprocess.DEVNULL
    )
    data: dict[str, Any] = orjson.loads(report.read_bytes())
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--calls", default="100,200,300,400", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio seconds per call")
    parser.add_argument("--rate", type=float, default=50.0, help="calls started per second")
    args = parser.parse_args()
    levels = [int(level) for level in args.calls.split(",")]
    if any(level < 1 or level > 2000 for level in levels):
        parser.error("call counts must be between 1 and 2000")
    missing = postgres_missing()
    if missing:
        sys.exit(f"bench_workers needs PostgreSQL: {missing}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as scratch,
        PostgresServer.start() as database,
    ):
        for workers in [int(count) for count in args.workers.split(",")]:
            held = 0
            process, base, metrics_url = start_server(
                workers, database.new_database(), Path(scratch) / f"data-{workers}"
            )
            try:
                print(f"\n--workers {workers}")
                print(
                    f"{'calls':>6} {'p99 ms':>7} {'pacing p99':>10} {'server CPU %':>12}"
                    f" {'failed':>6} {'load avg':>8}"
                )
                for calls in levels:
                    before, cpu_before = buckets(metrics_url), tree_cpu_seconds(process.pid)
                    data = run_load(
                        base, calls, args.seconds, args.rate, Path(scratch) / "load.json"
                    )
                    time.sleep(3)  # the workers' last folds (every 2 s)
                    p99 = p99_ms(before, buckets(metrics_url))
                    cpu = tree_cpu_seconds(process.pid) - cpu_before
                    pacing = (data.get("pacing") or {}).get("p99", float("nan"))
                    print(
                        f"{calls:>6} {p99 if p99 is not None else float('nan'):>7.0f}"
                        f" {pacing:>10.2f} {100 * cpu / data['wall_seconds']:>12.0f}"
                        f" {data['failed']:>6} {os.getloadavg()[0]:>8.2f}",
                        flush=True,
                    )
                    if p99 is not None and p99 <= HELD_P99_MS and not data["failed"]:
                        held = max(held, calls)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(120)
            print(
                f"held at p99 <= {HELD_P99_MS:.0f} ms: {held} calls,"
                f" {held / workers:.0f} per worker"
            )


if __name__ == "__main__":
    main()
