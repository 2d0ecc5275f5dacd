"""Every benchmark in one run, written up as tables, a plot and the raw figures (``bench/run``).

    bench/run --quick            a few minutes: 100 and 500 calls, 20 s each, echo at 20 and 100
    bench/run                    the full run: 100-2000 calls, 60 s each, echo at 50-400
    bench/run --calls 100,300 --duration 30 --echo-calls 50 --skip-micro

Writes ``bench/out/<mode>-<time>/``: ``results.md`` (the tables, the exact commands, versions and
the date), ``results.json`` (every figure of every run), ``results.png`` (CPU and p99 latency
against calls, per server) and the micro-benchmarks' output. Every run is bounded by its count of
calls and its duration, with a timeout; the whole is printed before it starts.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import bench_echo
import bench_servers
from harness import NODE_SINK, SERVERS, cores

BENCH = Path(__file__).resolve().parent

MODES = {
    "quick": {
        "calls": [100, 500],
        "duration": 20.0,
        "echo_calls": [20, 100],
        "micro_seconds": 0.3,
    },
    "full": {
        "calls": [100, 500, 1000, 2000],
        "duration": 60.0,
        "echo_calls": [50, 100, 200, 400],
        "micro_seconds": 1.0,
    },
}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "machine": _machine()}
    for package in ("vobiz-stream", "aiohttp", "picows", "uvloop", "orjson", "numpy"):
        found[package] = importlib.metadata.version(package)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    found["node"] = node.stdout.strip() or "missing"
    ws = NODE_SINK / "node_modules" / "ws" / "package.json"
    found["ws"] = orjson.loads(ws.read_bytes())["version"] if ws.exists() else "missing"
    return found


def _machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}"


def micro(seconds: float, folder: Path) -> dict[str, str]:
    """The micro-benchmarks, each pinned to the server's core; their printed tables."""
    pin, _ = cores()
    scripts = {
        "protocol": [str(BENCH / "bench_protocol.py"), "--seconds", f"{seconds:g}"],
        "codecs": [str(BENCH / "bench_codecs.py")],
        "server per-frame work": [str(BENCH / "bench_session.py"), "--calls", "100"],
        "server per-frame work, byte order detected": [
            str(BENCH / "bench_session.py"),
            *("--calls", "100", "--byte-order", "auto"),
        ],
    }
    outputs = {}
    for name, script in scripts.items():
        result = subprocess.run(
            [*pin, sys.executable, *script], capture_output=True, text=True, timeout=600, check=True
        )
        outputs[name] = result.stdout.strip()
        slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
        (folder / f"micro-{slug}.txt").write_text(result.stdout)
        print(f"\n== {name}\n{result.stdout}", flush=True)
    return outputs


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (a bench-only dependency, loaded when plotting)

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, (cpu_axis, p99_axis) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for name, kind in SERVERS.items():
        mine = sorted((r for r in runs if r["server"] == name), key=lambda r: r["calls"])
        mine = [r for r in mine if r["steady"]]
        if not mine:
            continue
        calls = [r["calls"] for r in mine]
        cpu_axis.plot(calls, [r["steady"]["cpu_percent"] for r in mine], "o-", label=kind.label)
        p99 = [r["latency_ms"]["p99"] for r in mine]
        p99_axis.plot(calls, p99, "o-", label=kind.label)
    cpu_axis.set(xlabel="concurrent paced calls", ylabel="server CPU, % of one core",
                 title="CPU (recording on)")  # fmt: skip
    p99_axis.set(xlabel="concurrent paced calls", ylabel="p99 handling latency, ms",
                 title="p99 frame handling latency", yscale="log")  # fmt: skip
    p99_axis.axhline(20, color="grey", linestyle=":", linewidth=1)
    for axis in (cpu_axis, p99_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_up(
    *,
    mode: str,
    plan: dict[str, Any],
    record_runs: list[dict[str, Any]],
    echo_runs: list[dict[str, Any]],
    micro_outputs: dict[str, str],
    found: dict[str, str],
    started: datetime.datetime,
    command: str,
) -> str:
    lines = [
        f"## {mode} run, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`; {plan['duration']:g} s of audio per call.",
        "",
        "Versions: " + ", ".join(f"{name} {value}" for name, value in found.items()) + ".",
        "",
        "### Recording (record handler), vobiz-stream against the Node sink",
        "",
        bench_servers.table(record_runs),
        "",
    ]
    for label, calls in bench_servers.held(record_runs).items():
        lines.append(f"- {label}: holds {calls} calls with p99 handling latency under 20 ms")
    lines += ["", "### Echo handler (bidirectional)", "", bench_echo.table(echo_runs), ""]
    for name, output in micro_outputs.items():
        lines += [f"### Micro-benchmark: {name}", "", "```", output, "```", ""]
    lines += ["### Exact commands", ""]
    for run in [*record_runs, *echo_runs]:
        lines += [
            f"- {run['handler']}, {run['calls']} calls, {run['label']}:",
            f"  server `{run['server_command']}`;",
            f"  load `{run['load_command']}`",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the few-minutes run")
    parser.add_argument("--calls", help="record runs: comma-separated numbers of calls")
    parser.add_argument("--echo-calls", help="echo runs: comma-separated numbers of calls")
    parser.add_argument("--duration", type=float, help="seconds of audio per call")
    parser.add_argument("--servers", default="aiohttp,picows,node")
    parser.add_argument("--skip-micro", action="store_true")
    parser.add_argument("--out", type=Path, help="where the results go")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    plan = dict(MODES[mode])
    if args.calls:
        plan["calls"] = [int(calls) for calls in args.calls.split(",")]
    if args.echo_calls is not None:
        plan["echo_calls"] = [int(calls) for calls in args.echo_calls.split(",") if calls]
    if args.duration:
        plan["duration"] = args.duration
    calls, echo_calls, duration = plan["calls"], plan["echo_calls"], plan["duration"]
    if any(not 1 <= n <= 5000 for n in [*calls, *echo_calls]) or not 1 <= duration <= 300:
        parser.error("calls must be 1-5000 and duration 1-300 s")
    kinds = [SERVERS[name] for name in args.servers.split(",")]
    echo_kinds = [kind for kind in kinds if kind.name != "node"]
    started = datetime.datetime.now(datetime.UTC)
    out = args.out or BENCH / "out" / f"{mode}-{started:%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    runs = len(calls) * len(kinds) + len(echo_calls) * len(echo_kinds)
    bound = sum((n / 10 + duration + 140) * len(kinds) for n in calls) + sum(
        (n / 10 + duration + 140) * len(echo_kinds) for n in echo_calls
    )
    print(
        f"{mode} run: {runs} server runs of {duration:g} s (at most {bound / 60:.0f} min with "
        f"every timeout), results in {out}",
        flush=True,
    )
    found = versions()
    micro_outputs = {} if args.skip_micro else micro(plan["micro_seconds"], out)
    record_runs: list[dict[str, Any]] = []
    echo_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        for n in calls:
            for kind in kinds:
                began = time.monotonic()
                record_runs.append(bench_servers.record_run(kind, n, duration, Path(scratch)))
                took = time.monotonic() - began
                print(f"record {n} calls, {kind.label}: {took:.0f} s", flush=True)
                (out / "results.json").write_bytes(orjson.dumps({"record": record_runs}))
        for n in echo_calls:
            for kind in echo_kinds:
                began = time.monotonic()
                echo_runs.append(bench_echo.echo_run(kind, n, duration, Path(scratch)))
                took = time.monotonic() - began
                print(f"echo {n} calls, {kind.label}: {took:.0f} s", flush=True)
    (out / "results.json").write_bytes(
        orjson.dumps(
            {"mode": mode, "versions": found, "record": record_runs, "echo": echo_runs},
            option=orjson.OPT_INDENT_2,
        )
    )
    command = "bench/run " + " ".join(sys.argv[1:])
    text = write_up(
        mode=mode,
        plan=plan,
        record_runs=record_runs,
        echo_runs=echo_runs,
        micro_outputs=micro_outputs,
        found=found,
        started=started,
        command=command.strip(),
    )
    (out / "results.md").write_text(text)
    if record_runs:
        plot(record_runs, out / "results.png")
    print("\n" + text)
    print(f"results in {out}")


if __name__ == "__main__":
    main()
