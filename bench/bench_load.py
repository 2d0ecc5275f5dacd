"""How many paced calls one load process keeps on one core.

    .venv/bin/python bench/bench_load.py [--calls 100,300,500,1000] [--seconds 10] [--rate 200]

Starts the real server (``python -m vobiz_stream serve``, record only) on 127.0.0.1 in its own
process, then for each number of calls runs ``vobiz-stream load`` in another process and reads its
JSON report. On a machine with two or more cores the server is pinned to core 0 and the load to
core 1, so the load's CPU % is one core's share. Every run is bounded: the calls, the seconds of
audio each, and a timeout per run; recordings are deleted between runs.

Columns: calls, pacing p50/p99/max (how late each media frame left after its deadline; the load
kept up while p99 stays at a few ms), late frames (over 5 ms), the load's CPU % over the run
(ramp included), the server's CPU % over the same run (so a saturated server, which holds the
load's sends back, is told apart from a saturated load), and the calls that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pin(core: int | None) -> list[str]:
    """A ``taskset`` prefix pinning a command to ``core``, when there is one to pin to."""
    if core is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(core)]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_healthy(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _run_load(
    url: str, calls: int, seconds: float, rate: float, report: Path, *, core: int | None
) -> dict[str, Any]:
    command = [
        *_pin(core),
        sys.executable,
        "-m",
        "vobiz_stream",
        "load",
        url,
        "--calls",
        str(calls),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--report",
        str(report),
        "--quiet",
    ]
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
    two_cores = (os.cpu_count() or 1) >= 2
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        data_dir = Path(scratch) / "data"
        server = subprocess.Popen(
            [
                *_pin(0 if two_cores else None),
                sys.executable,
                "-m",
                "vobiz_stream",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_healthy(url)
            print(
                f"{'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'late':>8} "
                f"{'frames':>9} {'CPU %':>6} {'server %':>8} {'failed':>6}"
            )
            for calls in levels:
                report = Path(scratch) / f"load-{calls}.json"
                server_cpu = _cpu_seconds(server.pid)
                data = _run_load(
                    url, calls, args.seconds, args.rate, report, core=1 if two_cores else None
                )
                server_after = _cpu_seconds(server.pid)
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
                shutil.rmtree(data_dir / "recordings", ignore_errors=True)
                time.sleep(1)  # let the server finish its closes
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=35)
            if server.poll() is None:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
