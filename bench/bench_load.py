"""How many paced calls one load process keeps on one core.

    .venv/bin/python bench/bench_load.py [--calls 100,300,500,1000] [--seconds 10] [--rate 200]

Starts the real server (``python -m vobiz_stream serve``, record only, picows socket, as
``bench/harness.py`` starts it) on 127.0.0.1 in its own process, then for each number of calls
runs ``vobiz-stream load`` in another process and reads its JSON report. On a machine with two or
more cores the server is pinned to core 0 and the load to core 1, so the load's CPU % is one
core's share. Every run is bounded: the calls, the seconds of
audio each, and a timeout per run; recordings are deleted between runs.

Columns: calls, pacing p50/p99/max (how late each media frame left after its deadline; the load
kept up while p99 stays at a few ms), late frames (over 5 ms), the load's CPU % over the run
(ramp included), the server's CPU % over the same run (so a saturated server, which holds the
load's sends back, is told apart from a saturated load), and the calls that failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from harness import SERVERS, RunningServer, cores, cpu_seconds


def _run_load(url: str, calls: int, seconds: float, rate: float, report: Path) -> dict[str, Any]:
    _, pin = cores()
    command = [
        *pin, sys.executable, "-m", "vobiz_stream", "load", url, "--calls", str(calls),
        "--duration", str(seconds), "--rate", str(rate), "--report", str(report), "--quiet",
        "--l16-byte-order", "big",  # as the harness tells the server
    ]  # fmt: skip
    timeout = calls / rate + seconds + 90
    subprocess.run(command, check=False, timeout=timeout, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = orjson.loads(report.read_bytes())
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="100,300,500,1000", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio seconds per call")
    parser.add_argument("--rate", type=float, default=200.0, help="calls started per second")
    args = parser.parse_args()
    levels = [int(level) for level in args.calls.split(",")]
    if any(level < 1 or level > 5000 for level in levels):
        parser.error("call counts must be between 1 and 5000")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        server = RunningServer(SERVERS["picows"], Path(scratch))
        try:
            server.wait_ready()
            print(
                f"{'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'late':>8} "
                f"{'frames':>9} {'CPU %':>6} {'server %':>8} {'failed':>6}"
            )
            for calls in levels:
                report = Path(scratch) / f"load-{calls}.json"
                server_cpu = cpu_seconds(server.pid)
                data = _run_load(server.url, calls, args.seconds, args.rate, report)
                server_after = cpu_seconds(server.pid)
                server_percent = (
                    100 * (server_after - server_cpu) / data["wall_seconds"]
                    if server_cpu is not None and server_after is not None
                    else float("nan")
                )
                pacing = data["pacing"] or {"p50": 0.0, "p99": 0.0, "max": 0.0}
                print(
                    f"{calls:>6} {pacing['p50']:>8.2f} {pacing['p99']:>8.2f} "
                    f"{pacing['max']:>8.1f} {data['late_frames']:>8} {data['frames_sent']:>9} "
                    f"{data['cpu_percent']:>6.1f} {server_percent:>8.1f} {data['failed']:>6}",
                    flush=True,
                )
                shutil.rmtree(server.data_dir / "recordings", ignore_errors=True)
                time.sleep(1)  # let the server finish its closes
        finally:
            server.stop()


if __name__ == "__main__":
    main()
