"""vobiz-stream's server against the Node reference sink, side by side, under one paced load.

    .venv/bin/python bench/bench_servers.py [--calls 100,500] [--duration 15]
        [--servers aiohttp,picows,node] [--json results.json]

For each number of calls and each server: start the server (record handler, recording on, told
the seeds' big-endian L16 as the Node sink assumes it) pinned to core 0, run ``vobiz-stream load``
(speech looped, 50 frames/s per call, big-endian L16 as the seeds say) pinned to the other
core(s), sample the server once a second, and stop it. Reported:

* CPU %: the server's CPU over the steady stretch (every call up), in % of one core;
* frames handled by the server / sent by the load, over the whole run;
* handling latency p50/p99/max as the server reports it at the end (``GET /stats``): from a
  frame's due time (its ``timestamp``) to the moment the server has decoded and recorded it;
* RSS: the server's largest resident memory seen;
* the load's own pacing: how late its frames left (p99) and how many were over 5 ms late. A
  server is only judged where the load kept pace.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from harness import (
    SPEECH,
    RunningServer,
    ServerKind,
    Watch,
    load_core_count,
    ramp_rate,
    run_bounded,
    run_matrix,
    steady,
)


def load_command(url: str, calls: int, duration: float, report: Path) -> list[str]:
    return [
        sys.executable, "-m", "vobiz_stream", "load", url, "--calls", str(calls),
        "--rate", f"{ramp_rate(calls, duration):g}", "--duration", f"{duration:g}",
        "--processes", str(min(calls, load_core_count())), "--audio", str(SPEECH),
        "--report", str(report), "--quiet", "--l16-byte-order", "big",
    ]  # fmt: skip


def record_run(kind: ServerKind, calls: int, duration: float, scratch: Path) -> dict[str, Any]:
    """One server, one load; the figures of the run as a JSON-ready dict."""
    server = RunningServer(kind, scratch)
    report = scratch / f"load-{kind.name}-{calls}.json"
    command = load_command(server.url, calls, duration, report)
    try:
        server.wait_ready()
        began = time.monotonic()
        with Watch(server) as watch:
            timeout = calls / ramp_rate(calls, duration) + duration + 120
            run_bounded(command, timeout, report.with_suffix(".log"))
            time.sleep(1.5)  # the last closes land in the server's figures
        wall = time.monotonic() - began
        stats = server.stats()
    finally:
        server.stop()
    load = orjson.loads(report.read_bytes())
    samples = watch.samples
    whole_cpu = (samples[-1].cpu - samples[0].cpu) / (samples[-1].at - samples[0].at)
    return {
        "server": kind.name,
        "label": kind.label,
        "handler": "record",
        "calls": calls,
        "duration": duration,
        "wall_seconds": round(wall, 1),
        "server_command": " ".join(server.command),
        "load_command": " ".join(command),
        "steady": None if (s := steady(samples)) is None else s.__dict__,
        "cpu_percent_whole_run": round(100 * whole_cpu, 1),
        "frames_handled": stats["frames"],
        "latency_ms": stats["handling_latency_ms"],
        "rss_max_mb": round(max(sample.rss_mb for sample in samples), 1),
        "load": {
            "completed": load["completed"],
            "failed": load["failed"],
            "failures": load["failures"],
            "frames_sent": load["frames_sent"],
            "late_frames": load["late_frames"],
            "pacing_ms": load["pacing"],
            "cpu_percent": load["cpu_percent"],
            "processes": load["processes"],
        },
    }


def paced(run: dict[str, Any]) -> bool:
    """Whether the load kept pace: under 1 % of its frames more than 5 ms late, none failed."""
    load = run["load"]
    return load["failed"] == 0 and load["late_frames"] <= 0.01 * max(1, load["frames_sent"])


def row(run: dict[str, Any], node_cpu: float | None) -> str:
    steady_run = run["steady"] or {}
    cpu = steady_run.get("cpu_percent")
    ratio = f"{cpu / node_cpu:.2f}" if cpu is not None and node_cpu else "-"
    latency = run["latency_ms"]
    load = run["load"]
    pacing = load["pacing_ms"] or {"p99": float("nan")}
    late = 100 * load["late_frames"] / max(1, load["frames_sent"])
    per_frame = steady_run.get("cpu_us_per_frame")
    return (
        f"| {run['calls']} | {run['label']} | {steady_run.get('calls_up', '-')} | "
        f"{'-' if cpu is None else f'{cpu:.1f}'} | {ratio} | "
        f"{'-' if per_frame is None else f'{per_frame:.1f}'} | "
        f"{run['frames_handled']} / {load['frames_sent']} | "
        f"{_ms(latency['p50'])} / {_ms(latency['p99'])} / {_ms(latency['max'])} | "
        f"{run['rss_max_mb']:.0f} | {pacing['p99']:.1f} ms, {late:.1f} % late | "
        f"{load['failed']} | {'yes' if paced(run) else 'no'} |"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


HEADER = (
    "| calls | server | calls up | CPU % (steady) | x Node | CPU us/frame | "
    "frames handled / sent | latency p50 / p99 / max ms | RSS MB | load pacing p99, late | "
    "failed | load paced |\n"
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
)


def table(runs: list[dict[str, Any]]) -> str:
    lines = [HEADER]
    for calls in sorted({run["calls"] for run in runs}):
        level = [run for run in runs if run["calls"] == calls]
        node = next((run for run in level if run["server"] == "node"), None)
        node_cpu = (node["steady"] or {}).get("cpu_percent") if node else None
        lines += [row(run, node_cpu) for run in level]
    return "\n".join(lines)


def held(runs: list[dict[str, Any]], limit_ms: float = 20.0) -> dict[str, str]:
    """Per server, the most calls it held with p99 handling latency under ``limit_ms``, where
    the load kept pace; says so when the load could not go further."""
    result = {}
    for name in dict.fromkeys(run["server"] for run in runs):
        mine = sorted((run for run in runs if run["server"] == name), key=lambda r: r["calls"])
        best = "none"
        for run in mine:
            p99 = run["latency_ms"]["p99"]
            if not paced(run):
                best += f" (load not paced from {run['calls']} calls on)"
                break
            if p99 is None or p99 >= limit_ms:
                break
            best = str(run["calls"])
        result[mine[0]["label"]] = best
    return result


def main() -> None:
    runs = run_matrix(
        __doc__.split("\n\n")[0],
        calls="100,500",
        duration=15.0,
        servers="aiohttp,picows,node",
        run_one=record_run,
    )
    print(table(runs))
    for label, calls in held(runs).items():
        print(f"{label}: holds {calls} calls with p99 under 20 ms")


if __name__ == "__main__":
    main()
