"""The measured gates of the server's per-frame work, side by side in one run, each PASS or FAIL.

    .venv/bin/python bench/gates.py                  # the gates as set: 1000 and 400 calls, 60 s
    .venv/bin/python bench/gates.py --duration 30    # shorter runs (the ramp is a third of them)
    .venv/bin/python bench/gates.py --only session   # one gate: session, record or echo
    .venv/bin/python bench/gates.py --baseline REV   # also an older version, side by side

The gates' bounds were set on one machine; on a slower or faster one the absolute figures move
with it. ``--baseline REV`` (a git revision of this repository) runs the same gates on that
version's server too, one after the other in the same run, with the same load, and judges each
gate also against a bound scaled by the baseline's figure on this machine (for the per-frame
gates: the session at most the baseline's figure, picows at most 8/10 of it, as the bounds were
set against figures of about 4.6 and 10 us). Where this machine's cores are so much slower that
1000 calls saturate every server (the table then says the load did not keep pace), compare at
fewer calls: ``--record-calls 500 --echo-calls 200``.

The gates (bench/RESULTS.md has how each figure is measured):

1. ``bench_session.py --calls 100``: the server's per-frame work without a socket, at most
   4.6 us per frame (the best of three runs, each pinned to the server's core);
2. 1000 paced recording calls (``bench_servers.py``'s run, the record handler, recording on):
   the picows server's CPU per frame at most 8 us; the aiohttp server's CPU at most 1.0x the Node
   sink's in the same run; p99 handling latency under 10 ms on both. The picows figure is shown
   beside the same server's with its media frames dropped unread (``floor_server.py``): what
   the socket, the event loop and the kernel cost per frame on this machine, which no work the
   server saves can go below;
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import orjson

import bench_echo
import bench_servers
from harness import NODE_SINK, SERVERS, ServerKind, cores

BENCH = Path(__file__).resolve().parent

SESSION_US = 4.6
PICOWS_US = 8.0
PICOWS_OF_BASELINE = 0.8
"""The picows bound against the figure it was set from: 8 us where the server took about 10."""
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
    baseline: str = ""
    """The baseline's figure, with ``--baseline``."""
    scaled_bound: str = ""
    """The bound scaled to this machine by the baseline's figure, where it scales."""
    scaled_passed: bool | None = None


@dataclass(frozen=True)
class Checkout:
    """The vobiz-stream measured: this checkout (``src`` None) or a baseline's files."""

    src: Path | None
    bench: Path

    def env(self) -> dict[str, str] | None:
        return None if self.src is None else {**os.environ, "PYTHONPATH": str(self.src)}


HERE = Checkout(None, BENCH)


def baseline_checkout(revision: str, folder: Path) -> Checkout:
    """The ``src``, ``bench`` and ``tests/data`` folders of ``revision`` of this repository (its
    benchmarks read their audio from the last), in ``folder``."""
    archive = subprocess.run(
        ["git", "-C", str(BENCH.parent), "archive", revision, "src", "bench", "tests/data"],
        capture_output=True,
        check=False,
    )
    if archive.returncode:
        sys.exit(f"cannot read revision {revision!r}: {archive.stderr.decode().strip()}")
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return Checkout(folder / "src", folder / "bench")


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


def session_figures(checkout: Checkout) -> list[float]:
    """``bench_session.py --calls 100`` of ``checkout``, three runs: us per frame of each."""
    pin, _ = cores()
    command = [*pin, sys.executable, str(checkout.bench / "bench_session.py"), "--calls", "100"]
    figures = []
    for _ in range(3):
        output = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=True, env=checkout.env()
        )
        match = re.search(r"([\d.]+) us/frame", output.stdout)
        assert match, output.stdout
        figures.append(float(match[1]))
    return figures


def _runs(figures: list[float]) -> str:
    return f"{min(figures):.2f} us/frame (runs: {', '.join(f'{f:.2f}' for f in figures)})"


def session_gate(baseline: Checkout | None) -> tuple[Gate, dict[str, Any]]:
    figures = session_figures(HERE)
    best = min(figures)
    gate = Gate(
        "bench_session per-frame work", _runs(figures), f"<= {SESSION_US} us", best <= SESSION_US
    )
    if baseline is None:
        return gate, {"us_per_frame": figures}
    old = session_figures(baseline)
    gate.baseline = _runs(old)
    gate.scaled_bound = f"<= {min(old):.2f} us (the baseline's)"
    gate.scaled_passed = best <= min(old)
    return gate, {"us_per_frame": figures, "baseline_us_per_frame": old}


def _shown_run(
    run: Callable[[], dict[str, Any]], show: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """``run()``'s figures with how busy the machine was, printed as ``show`` shows them."""
    figures, busy = measured_busy(run)
    figures["busy"] = busy.__dict__
    print(f"{show(figures)}\n  {busy}", flush=True)
    return cast(dict[str, Any], figures)


def _baseline_kind(name: str, baseline: Checkout) -> ServerKind:
    """Server ``name`` of the baseline's version."""
    kind = SERVERS[name]
    return replace(kind, label=f"{kind.label}, baseline", source=baseline.src)


def _record_run(kind: ServerKind, calls: int, duration: float, scratch: Path) -> dict[str, Any]:
    return _shown_run(
        lambda: bench_servers.record_run(kind, calls, duration, scratch),
        lambda run: bench_servers.row(run, None),
    )


def _us_per_frame(run: dict[str, Any]) -> float | None:
    figure: float | None = (run["steady"] or {}).get("cpu_us_per_frame")
    return figure


def _x_node(run: dict[str, Any], node: dict[str, Any] | None) -> tuple[float | None, str]:
    """The run's CPU against the Node sink's, and how to show it."""
    cpu = (run["steady"] or {}).get("cpu_percent")
    node_cpu = None if node is None else (node["steady"] or {}).get("cpu_percent")
    if not (cpu and node_cpu):
        return None, "-"
    return cpu / node_cpu, f"{cpu / node_cpu:.2f}x ({cpu} % against {node_cpu} %)"


def record_gates(
    calls: int, duration: float, scratch: Path, baseline: Checkout | None
) -> tuple[list[Gate], dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    old: dict[str, dict[str, Any]] = {}
    for name in ("picows", "aiohttp"):
        runs[name] = _record_run(SERVERS[name], calls, duration, scratch)
        if baseline is not None:
            old[name] = _record_run(_baseline_kind(name, baseline), calls, duration, scratch)
    floor = runs["picows-floor"] = _record_run(SERVERS["picows-floor"], calls, duration, scratch)
    node = None
    if (NODE_SINK / "node_modules" / "ws").exists():
        node = runs["node"] = _record_run(SERVERS["node"], calls, duration, scratch)
    else:
        print("the Node sink is not set up (bench/run does: npm ci in bench/node-sink)")
    picows_us = _us_per_frame(runs["picows"])
    picows = Gate(
        f"picows CPU per frame, {calls} calls",
        f"{picows_us} us/frame, of which the socket alone {_us_per_frame(floor)}"
        + _pacing(runs["picows"]),
        f"<= {PICOWS_US} us",
        None if picows_us is None else picows_us <= PICOWS_US,
    )
    ratio, shown = _x_node(runs["aiohttp"], node)
    aiohttp = Gate(
        f"aiohttp CPU against the Node sink's, {calls} calls",
        shown,
        f"<= {AIOHTTP_X_NODE}x",
        None if ratio is None else ratio <= AIOHTTP_X_NODE,
    )
    gates = [picows, aiohttp]
    for name in ("picows", "aiohttp"):
        p99 = runs[name]["latency_ms"]["p99"]
        gates.append(
            Gate(
                f"{name} p99 handling latency, {calls} calls",
                f"{p99} ms" + _pacing(runs[name]),
                f"< {P99_MS} ms",
                p99 < P99_MS,
            )
        )
    if old:
        old_us = _us_per_frame(old["picows"])
        picows.baseline = f"{old_us} us/frame" + _pacing(old["picows"])
        if old_us is not None and picows_us is not None:
            picows.scaled_bound = f"<= {PICOWS_OF_BASELINE * old_us:.2f} us"
            picows.scaled_passed = picows_us <= PICOWS_OF_BASELINE * old_us
        aiohttp.baseline = _x_node(old["aiohttp"], node)[1]
        for gate, name in zip(gates[2:], ("picows", "aiohttp"), strict=True):
            gate.baseline = f"{old[name]['latency_ms']['p99']} ms" + _pacing(old[name])
    figures: dict[str, Any] = {"runs": list(runs.values())}
    if old:
        figures["baseline_runs"] = list(old.values())
    return gates, figures


def _pacing(run: dict[str, Any]) -> str:
    load = run["load"]
    late = 100 * load["late_frames"] / max(1, load["frames_sent"])
    paced = "" if bench_servers.paced(run) else ", THE LOAD DID NOT KEEP PACE"
    return f" (load {late:.1f} % late, {load['failed']} failed{paced})"


def _echo_run(kind: ServerKind, calls: int, duration: float, scratch: Path) -> dict[str, Any]:
    return _shown_run(
        lambda: bench_echo.echo_run(kind, calls, duration, scratch),
        lambda run: bench_echo.table([run]),
    )


def _echo_figures(run: dict[str, Any]) -> tuple[bool, str]:
    """Whether the echo run held its bounds, and its figures."""
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
    shown = (
        f"gap p99 {gap_p99} ms ({run['gap_ms']['count']} gaps), queue max {lead_max} ms, "
        f"{load['failed']} failed, {100 * load['late_frames'] / max(1, load['frames_sent']):.1f}"
        " % of the load's frames late"
    )
    return passed, shown


def echo_gate(
    calls: int, duration: float, scratch: Path, baseline: Checkout | None
) -> tuple[Gate, dict[str, Any]]:
    run = _echo_run(SERVERS["picows"], calls, duration, scratch)
    passed, shown = _echo_figures(run)
    gate = Gate(
        f"echo on picows, {calls} calls",
        shown,
        f"gap p99 <= {ECHO_GAP_P99_MS} ms, queue <= {ECHO_LEAD_MAX_MS} ms",
        passed,
    )
    if baseline is None:
        return gate, run
    old = _echo_run(_baseline_kind("picows", baseline), calls, duration, scratch)
    gate.baseline = _echo_figures(old)[1]
    return gate, {**run, "baseline": old}


def table(gates: list[Gate]) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "not measured"}
    if not any(gate.baseline for gate in gates):
        lines = ["| gate | figure | bound | verdict |", "|---|---|---|---|"]
        lines += [f"| {g.name} | {g.figure} | {g.bound} | {verdict[g.passed]} |" for g in gates]
        return "\n".join(lines)
    lines = [
        "| gate | figure | bound | verdict | baseline | bound scaled by the baseline | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in gates:
        scaled = (g.scaled_bound, verdict[g.scaled_passed]) if g.scaled_bound else ("-", "-")
        lines.append(
            f"| {g.name} | {g.figure} | {g.bound} | {verdict[g.passed]} | {g.baseline or '-'} "
            f"| {scaled[0]} | {scaled[1]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per load run")
    parser.add_argument("--only", choices=["session", "record", "echo"], action="append")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--record-calls",
        type=int,
        default=RECORD_CALLS,
        help="recording calls of the record gates (default: %(default)s, as the gates are set)",
    )
    parser.add_argument(
        "--echo-calls",
        type=int,
        default=ECHO_CALLS,
        help="calls of the echo gate (default: %(default)s, as the gates are set)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure this git revision's server (same load, same run) and scale the "
        "per-frame bounds by its figures on this machine",
    )
    args = parser.parse_args()
    if not 20 <= args.duration <= 300:
        parser.error("--duration must be 20-300 seconds")
    if not (1 <= args.record_calls <= 5000 and 1 <= args.echo_calls <= 5000):
        parser.error("--record-calls and --echo-calls must be 1-5000")
    chosen = set(args.only or ["session", "record", "echo"])
    gates: list[Gate] = []
    figures: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="gates-") as folder:
        scratch = Path(folder)
        baseline = None
        if args.baseline is not None:
            baseline = baseline_checkout(args.baseline, scratch / "baseline")
            figures["baseline"] = args.baseline
        if "session" in chosen:
            (gate, figures["session"]), busy = measured_busy(lambda: session_gate(baseline))
            print(f"{gate.figure}\n  {busy}", flush=True)
            figures["session"] = {**figures["session"], "busy": busy.__dict__}
            gates.append(gate)
        if "record" in chosen:
            record, figures["record"] = record_gates(
                args.record_calls, args.duration, scratch, baseline
            )
            gates += record
        if "echo" in chosen:
            gate, figures["echo"] = echo_gate(args.echo_calls, args.duration, scratch, baseline)
            gates.append(gate)
    print()
    print(table(gates))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
