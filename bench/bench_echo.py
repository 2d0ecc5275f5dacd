"""The echo handler (bidirectional) under paced load: how many calls one core holds cleanly.

    .venv/bin/python bench/bench_echo.py [--calls 20,100] [--duration 20]
        [--servers aiohttp,picows] [--json results.json]

For each number of calls and each media transport: vobiz-stream's server (``--handler echo``,
recording on, ``max_lead`` 0.2 s) pinned to core 0, and ``bench/echo_load.py`` (the emulator's
load, speech as the caller, every call's playout queue measured) pinned to the other core(s).
Reported per run:

* the server's CPU over the steady stretch and its handling latency p50/p99 (as in
  bench/bench_servers.py);
* outbound gaps: silences in the middle of an echoed answer (the carrier's queue ran dry), as
  p99 over every ``playAudio`` frame of the hole before it, and how many there were;
* the lead: the most audio the carrier held queued when a ``playAudio`` arrived, against the
  ``max_lead`` bound, and how many frames found it over the bound (+1 ms, and +5 ms: on the
  carrier's clock the lead includes the frame's delivery, see bench/echo_load.py);
* barge-in: from the caller's speech onset to the server's ``clearAudio`` (the server's own
  figure, from its store), and the clear round trip to the carrier's ``clearedAudio``; the
  caller hears silence once the clear lands, so clear-to-silence is the first plus (at most)
  the second;
* checkpoint round trip p50/p99, as the carrier saw it (includes the queued audio's play time).

"Holds" a number of calls: the load kept pace, gap p99 at most 2 ms, no lead over its bound
(+5 ms of delivery).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness import (
    SPEECH,
    RunningServer,
    ServerKind,
    Watch,
    ramp_rate,
    run_bounded,
    run_matrix,
    steady,
)

MAX_LEAD = 0.2
BENCH = Path(__file__).resolve().parent


def _event_figures(database: Path, kind: str, field: str) -> dict[str, float] | None:
    """p50/p99/max of a number the server stored in the detail of every ``kind`` event."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT detail FROM call_events WHERE kind = ?", (kind,)).fetchall()
    values = [value for (detail,) in rows if (value := orjson.loads(detail).get(field)) is not None]
    if not values:
        return None
    p50, p99 = np.percentile(values, [50, 99])
    return {"count": len(values), "p50": round(float(p50), 2), "p99": round(float(p99), 2),
            "max": round(max(values), 2)}  # fmt: skip


def echo_run(kind: ServerKind, calls: int, duration: float, scratch: Path) -> dict[str, Any]:
    server = RunningServer(kind, scratch, handler="echo")
    report = scratch / f"echo-{kind.name}-{calls}.json"
    command = [
        sys.executable, str(BENCH / "echo_load.py"), server.url, "--calls", str(calls),
        "--duration", f"{duration:g}", "--rate", f"{ramp_rate(calls, duration):g}",
        "--audio", str(SPEECH), "--max-lead", f"{MAX_LEAD:g}", "--report", str(report),
    ]  # fmt: skip
    try:
        server.wait_ready()
        with Watch(server) as watch:
            timeout = calls / ramp_rate(calls, duration) + duration + 120
            run_bounded(command, timeout, report.with_suffix(".log"))
            time.sleep(1.5)
        stats = server.stats()
        database = server.data_dir / "vobiz-stream.db"
        clears = _event_figures(database, "cleared", "round_trip_ms")
        barge_ins = _event_figures(database, "clear", "barge_in_onset_to_clear_ms")
    finally:
        server.stop()
    measured = orjson.loads(report.read_bytes())
    load = measured["load"]
    return {
        "server": kind.name,
        "label": kind.label,
        "handler": "echo",
        "calls": calls,
        "duration": duration,
        "server_command": " ".join(server.command),
        "load_command": " ".join(command),
        "steady": None if (s := steady(watch.samples)) is None else s.__dict__,
        "frames_handled": stats["frames"],
        "latency_ms": stats["handling_latency_ms"],
        "rss_max_mb": round(max(sample.rss_mb for sample in watch.samples), 1),
        "play_audio_frames": measured["play_audio_frames"],
        "lead_ms": measured["lead_ms"],
        "gap_ms": measured["gap_ms"],
        "clear_round_trip_ms": clears,
        "barge_in_onset_to_clear_ms": barge_ins,
        "checkpoint_round_trip_ms": load["checkpoint_round_trip"],
        "load": {
            "completed": load["completed"],
            "failed": load["failed"],
            "failures": load["failures"],
            "frames_sent": load["frames_sent"],
            "late_frames": load["late_frames"],
            "pacing_ms": load["pacing"],
            "cpu_percent": load["cpu_percent"],
        },
    }


def holds(run: dict[str, Any]) -> bool:
    load, gap = run["load"], run["gap_ms"]["per_frame"]
    paced = load["failed"] == 0 and load["late_frames"] <= 0.01 * max(1, load["frames_sent"])
    return (
        paced
        and run["play_audio_frames"] > 0
        and (gap is None or gap["p99"] <= 2.0)
        and run["lead_ms"]["frames_over_bound_plus_5ms"] == 0
    )


def _ms(distribution: dict[str, float] | None) -> str:
    if not distribution:
        return "-"
    return f"{distribution['p50']:.1f} / {distribution['p99']:.1f}"


HEADER = (
    "| calls | server | CPU % (steady) | latency p50 / p99 ms | playAudio frames | "
    "gap p99 ms (count) | lead max ms (over +1 / +5 ms) | onset to clear p50 / p99 ms | "
    "clear RT p50 / p99 ms | checkpoint RT p50 / p99 ms | load pacing p99, late | failed | "
    "holds |\n"
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
)


def table(runs: list[dict[str, Any]]) -> str:
    lines = [HEADER]
    for run in sorted(runs, key=lambda r: (r["calls"], r["server"])):
        steady_run = run["steady"] or {}
        latency, gap, lead, load = run["latency_ms"], run["gap_ms"], run["lead_ms"], run["load"]
        per_frame = gap["per_frame"]
        pacing = load["pacing_ms"] or {"p99": float("nan")}
        late = 100 * load["late_frames"] / max(1, load["frames_sent"])
        lines.append(
            f"| {run['calls']} | {run['label']} | {steady_run.get('cpu_percent', '-')} | "
            f"{_ms(latency)} | {run['play_audio_frames']} | "
            f"{'-' if per_frame is None else round(per_frame['p99'], 1)} ({gap['count']}) | "
            f"{lead['max'] if lead['max'] is not None else '-'} "
            f"({lead['frames_over_bound']} / {lead['frames_over_bound_plus_5ms']}) | "
            f"{_ms(run['barge_in_onset_to_clear_ms'])} | {_ms(run['clear_round_trip_ms'])} | "
            f"{_ms(run['checkpoint_round_trip_ms'])} | "
            f"{pacing['p99']:.1f} ms, {late:.1f} % late | {load['failed']} | "
            f"{'yes' if holds(run) else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    runs = run_matrix(
        __doc__.split("\n\n")[0],
        calls="20,100",
        duration=20.0,
        servers="aiohttp,picows",
        run_one=echo_run,
        refuse=lambda kind: "the Node sink has no echo handler" if kind.name == "node" else None,
    )
    print(table(runs))


if __name__ == "__main__":
    main()
