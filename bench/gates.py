"""The measured gates of the server's per-frame work, side by side in one run, each PASS or FAIL.

    .venv/bin/python bench/gates.py                  # the gates as set: 1000 and 400 calls, 60 s
    .venv/bin/python bench/gates.py --duration 30    # shorter runs (the ramp is a third of them)
    .venv/bin/python bench/gates.py --only session   # one gate: session, record or echo

The gates (bench/RESULTS.md has how each figure is measured):

1. ``bench_session.py --calls 100``: the server's per-frame work without a socket, at most
   4.6 us per frame (the best of three runs, each pinned to the server's core);
2. 1000 paced recording calls (``bench_servers.py``'s run, the record handler, recording on):
   the picows server's CPU per frame at most 8 us; the aiohttp server's CPU at most 1.0x the Node
   sink's in the same run; p99 handling latency under 10 ms on both;
3. 400 echo calls on picows (``bench_echo.py``'s run: bidirectional, paced playback): gap p99 at
   most 2 ms and the carrier's queue never over 205 ms, the load paced and no call failed.

Every run is bounded by its calls and duration, with a timeout. How busy the machine was (load
average, and the CPU the rest of the machine used during each run) is printed with each run, as
figures taken on a busy machine are not the server's alone. Writes ``--json`` if given.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

import bench_echo
import bench_servers
from harness import NODE_SINK, SERVERS, cores

BENCH = Path(__file__).resolve().parent

SESSION_US = 4.6
PICOWS_US = 8.0
AIOHTTP_X_NODE = 1.0
P99_MS = 10.0
RECORD_CALLS = 1000
ECHO_CALLS = 400
ECHO_GAP_P99_MS = 2.0
ECHO_LEAD_MAX_MS = 205.0


@dataclass
class Gate:
    name: str
    figure: str
    bound: str
    passed: bool | None
    """None: not measured (a server missing, a run without a steady stretch)."""


@dataclass
class Busy:
    """How busy the machine was over a stretch: load average at its end, and the CPU (in cores)
    every process used, from /proc/stat, so a reader can subtract the run's own."""

    load_average: float
    machine_cores_busy: float

    def __str__(self) -> str:
        return (
            f"machine: load average {self.load_average:.1f}, "
            f"{self.machine_cores_busy:.2f} of {os.cpu_count()} cores busy"
        )


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measured_busy(run: Callable[[], Any]) -> tuple[Any, Busy]:
    """``run()``'s result and how busy the whole machine was while it ran."""
    busy_before, total_before = _cpu_ticks()
    result = run()
    busy_after, total_after = _cpu_ticks()
    share = (busy_after - busy_before) / max(1, total_after - total_before)
    return result, Busy(os.getloadavg()[0], round(share * (os.cpu_count() or 1), 2))


def session_gate() -> tuple[Gate, dict[str, Any]]:
    pin, _ = cores()
    command = [*pin, sys.executable, str(BENCH / "bench_session.py"), "--calls", "100"]
    figures = []
    for _ in range(3):
        output = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        match = re.search(r"([\d.]+) us/frame", output.stdout)
        assert match, output.stdout
        figures.append(float(match[1]))
    best = min(figures)
    gate = Gate(
        "bench_session per-frame work",
        f"{best:.2f} us/frame (runs: {', '.join(f'{f:.2f}' for f in figures)})",
        f"<= {SESSION_US} us",
        best <= SESSION_US,
    )
    return gate, {"us_per_frame": figures}


def record_gates(duration: float, scratch: Path) -> tuple[list[Gate], list[dict[str, Any]]]:
    runs: dict[str, dict[str, Any]] = {}
    node_ready = (NODE_SINK / "node_modules" / "ws").exists()
    for name in ("picows", "aiohttp", "node"):
        if name == "node" and not node_ready:
            print("the Node sink is not set up (bench/run does: npm ci in bench/node-sink)")
            continue
        run, busy = measured_busy(
            lambda name=name: bench_servers.record_run(
                SERVERS[name], RECORD_CALLS, duration, scratch
            )
        )
        run["busy"] = busy.__dict__
        runs[name] = run
        print(f"{bench_servers.row(run, None)}\n  {busy}", flush=True)
    gates = []
    picows = runs["picows"]
    picows_us = (picows["steady"] or {}).get("cpu_us_per_frame")
    gates.append(
        Gate(
            f"picows CPU per frame, {RECORD_CALLS} calls",
            f"{picows_us} us/frame" + _pacing(picows),
            f"<= {PICOWS_US} us",
            None if picows_us is None else picows_us <= PICOWS_US,
        )
    )
    aiohttp_cpu = (runs["aiohttp"]["steady"] or {}).get("cpu_percent")
    node_cpu = (runs["node"]["steady"] or {}).get("cpu_percent") if "node" in runs else None
    ratio = None if not (aiohttp_cpu and node_cpu) else aiohttp_cpu / node_cpu
    gates.append(
        Gate(
            f"aiohttp CPU against the Node sink's, {RECORD_CALLS} calls",
            "-" if ratio is None else f"{ratio:.2f}x ({aiohttp_cpu} % against {node_cpu} %)",
            f"<= {AIOHTTP_X_NODE}x",
            None if ratio is None else ratio <= AIOHTTP_X_NODE,
        )
    )
    for name in ("picows", "aiohttp"):
        p99 = runs[name]["latency_ms"]["p99"]
        gates.append(
            Gate(
                f"{name} p99 handling latency, {RECORD_CALLS} calls",
                f"{p99} ms" + _pacing(runs[name]),
                f"< {P99_MS} ms",
                p99 < P99_MS,
            )
        )
    return gates, list(runs.values())


def _pacing(run: dict[str, Any]) -> str:
    load = run["load"]
    late = 100 * load["late_frames"] / max(1, load["frames_sent"])
    paced = "" if bench_servers.paced(run) else ", THE LOAD DID NOT KEEP PACE"
    return f" (load {late:.1f} % late, {load['failed']} failed{paced})"


def echo_gate(duration: float, scratch: Path) -> tuple[Gate, dict[str, Any]]:
    run, busy = measured_busy(
        lambda: bench_echo.echo_run(SERVERS["picows"], ECHO_CALLS, duration, scratch)
    )
    run["busy"] = busy.__dict__
    print(f"{bench_echo.table([run])}\n  {busy}", flush=True)
    gap = run["gap_ms"]["per_frame"]
    gap_p99 = 0.0 if gap is None else gap["p99"]
    lead_max = run["lead_ms"]["max"]
    load = run["load"]
    paced = load["failed"] == 0 and load["late_frames"] <= 0.01 * max(1, load["frames_sent"])
    passed = (
        paced
        and run["play_audio_frames"] > 0
        and gap_p99 <= ECHO_GAP_P99_MS
        and lead_max is not None
        and lead_max <= ECHO_LEAD_MAX_MS
    )
    gate = Gate(
        f"echo on picows, {ECHO_CALLS} calls",
        f"gap p99 {gap_p99} ms ({run['gap_ms']['count']} gaps), queue max {lead_max} ms, "
        f"{load['failed']} failed, {100 * load['late_frames'] / max(1, load['frames_sent']):.1f}"
        " % of the load's frames late",
        f"gap p99 <= {ECHO_GAP_P99_MS} ms, queue <= {ECHO_LEAD_MAX_MS} ms",
        passed,
    )
    return gate, run


def table(gates: list[Gate]) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "not measured"}
    lines = ["| gate | figure | bound | verdict |", "|---|---|---|---|"]
    lines += [f"| {g.name} | {g.figure} | {g.bound} | {verdict[g.passed]} |" for g in gates]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per load run")
    parser.add_argument("--only", choices=["session", "record", "echo"], action="append")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if not 20 <= args.duration <= 300:
        parser.error("--duration must be 20-300 seconds")
    chosen = set(args.only or ["session", "record", "echo"])
    gates: list[Gate] = []
    figures: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="gates-") as folder:
        scratch = Path(folder)
        if "session" in chosen:
            (gate, figures["session"]), busy = measured_busy(session_gate)
            print(f"{gate.figure}\n  {busy}", flush=True)
            figures["session"] = {**figures["session"], "busy": busy.__dict__}
            gates.append(gate)
        if "record" in chosen:
            record, figures["record"] = record_gates(args.duration, scratch)
            gates += record
        if "echo" in chosen:
            gate, figures["echo"] = echo_gate(args.duration, scratch)
            gates.append(gate)
    print()
    print(table(gates))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
