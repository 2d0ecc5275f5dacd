"""What polling ``GET /calls`` costs the calls: a paced load with and without a poller.

    .venv/bin/python bench/bench_calls_poll.py [--calls 500] [--seconds 20] [--rate 100]
        [--every 0.25] [--limit 100] [--history 1000] [--repeat 2]

For each run a fresh server (``python -m vobiz_stream serve``, record only, picows socket, as
``bench/harness.py`` starts it, pinned to core 0) gets ``--history`` calls known from a status
callback each, then ``vobiz-stream load`` places ``--calls`` paced calls (on the other cores).
In the runs "with poller" this process meanwhile asks ``GET /calls?limit=--limit`` every
``--every`` seconds for as long as the load runs. Runs alternate without / with poller,
``--repeat`` times each.

Columns: whether the poller ran; the server's handling latency p50/p99/max over every frame of
the run (``/stats``: from a frame's due time to its recording, so a stalled event loop shows
there, but so does the load's own lateness, ``pace99``, on a busy machine); the load's pacing
p99 and late frames; the polls answered and their latency p50/p99/max (as the poller saw it);
and the calls that failed.

Then, the load over and the server idle, the cost of one ``/calls`` page where it matters:
``--requests`` pages asked one after another, and the CPU milliseconds each took on the server's
event-loop thread (what every call's frames wait for) and on its other threads (the store's),
from ``/proc/<pid>/task``. Bounded: the calls, the seconds of audio, a timeout per load, per
poll and per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from harness import SERVERS, RunningServer, cores


def _prefill(base: str, calls: int) -> None:
    """``calls`` status callbacks, each of a call of its own, so the store has a history."""

    async def post_all() -> None:
        limit = asyncio.Semaphore(20)
        async with aiohttp.ClientSession() as client:

            async def post(number: int) -> None:
                fields = {"Event": "StartStream", "CallUUID": f"history-{number:06d}"}
                async with limit, client.post(base + "webhook", data=fields) as reply:
                    await reply.read()

            await asyncio.gather(*(post(number) for number in range(calls)))

    asyncio.run(post_all())


def _poll(url: str, every: float, stop: threading.Event, seconds: list[float]) -> None:
    """GET ``url`` every ``every`` seconds until ``stop``; each answer's seconds."""

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            while not stop.is_set():
                began = time.perf_counter()
                async with client.get(url) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"GET {url} answered {reply.status}")
                seconds.append(time.perf_counter() - began)
                await asyncio.sleep(max(0.0, every - (time.perf_counter() - began)))

    asyncio.run(run())


def _thread_cpu_ms(pid: int) -> tuple[float, float]:
    """CPU milliseconds so far of ``pid``'s main thread (the event loop) and of its others."""
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a thread that just ended
            continue
        ms = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        if task.name == str(pid):
            main += ms
        else:
            others += ms
    return main, others


def _page_cost(server: RunningServer, limit: int, requests: int) -> dict[str, float]:
    """Ask ``requests`` pages one after another; per page: wall ms, loop-thread CPU ms, other
    threads' CPU ms."""
    url = f"{server.url}calls?limit={limit}"
    main_before, others_before = _thread_cpu_ms(server.pid)
    walls = []
    for _ in range(requests):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read()
        walls.append(time.perf_counter() - began)
    main_after, others_after = _thread_cpu_ms(server.pid)
    return {
        "wall_ms_p50": statistics.median(walls) * 1000,
        "loop_cpu_ms": (main_after - main_before) / requests,
        "other_cpu_ms": (others_after - others_before) / requests,
    }


def _run(args: argparse.Namespace, scratch: Path, poller: bool) -> dict[str, Any]:
    server = RunningServer(SERVERS["picows"], scratch)
    try:
        server.wait_ready()
        _prefill(server.url, args.history)
        stop, polls = threading.Event(), list[float]()
        polling = threading.Thread(
            target=_poll,
            args=(f"{server.url}calls?limit={args.limit}", args.every, stop, polls),
            daemon=True,
        )
        if poller:
            polling.start()
        _, pin = cores()
        report = scratch / "load.json"
        command = [
            *pin, sys.executable, "-m", "vobiz_stream", "load", server.url,
            "--calls", str(args.calls), "--duration", str(args.seconds),
            "--rate", str(args.rate), "--report", str(report), "--quiet",
        ]  # fmt: skip
        timeout = args.calls / args.rate + args.seconds + 90
        subprocess.run(command, check=False, timeout=timeout, stdout=subprocess.DEVNULL)
        stop.set()
        if poller:
            polling.join(timeout=15)
        load: dict[str, Any] = orjson.loads(report.read_bytes())
        stats = server.stats()
        cost = _page_cost(server, args.limit, args.requests)
        return {"poller": poller, "stats": stats, "load": load, "polls": polls, "page": cost}
    finally:
        server.stop()


def _line(run: dict[str, Any]) -> str:
    latency = run["stats"]["handling_latency_ms"]
    pacing = run["load"]["pacing"] or {"p99": float("nan")}
    polls = sorted(run["polls"])
    if polls:
        p99 = polls[min(len(polls) - 1, round(0.99 * (len(polls) - 1)))]
        poll = f"{len(polls):>6} {statistics.median(polls) * 1000:>8.1f} {p99 * 1000:>8.1f} "
        poll += f"{polls[-1] * 1000:>8.1f}"
    else:
        poll = f"{0:>6} {'-':>8} {'-':>8} {'-':>8}"
    page = run["page"]
    return (
        f"{'yes' if run['poller'] else 'no':>6} {latency['p50']:>8.1f} {latency['p99']:>8.1f} "
        f"{latency['max']:>8.1f} {pacing['p99']:>8.2f} {run['load']['late_frames']:>7} "
        f"{poll} {run['load']['failed']:>6} {page['wall_ms_p50']:>9.1f} "
        f"{page['loop_cpu_ms']:>9.2f} {page['other_cpu_ms']:>9.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="paced calls per run")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio seconds per call")
    parser.add_argument("--rate", type=float, default=100.0, help="calls started per second")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between polls")
    parser.add_argument("--limit", type=int, default=100, help="calls per /calls page")
    parser.add_argument("--history", type=int, default=1000, help="calls stored before a run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind")
    parser.add_argument("--requests", type=int, default=200, help="pages timed after a run")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    if not (1 <= args.calls <= 2000 and 1 <= args.repeat <= 5 and 0 <= args.history <= 20000):
        parser.error("calls 1-2000, repeat 1-5, history 0-20000")
    if not (0.01 <= args.every <= 10 and 1 <= args.limit <= 500 and args.seconds <= 120):
        parser.error("every 0.01-10 s, limit 1-500, seconds at most 120")
    if not 1 <= args.requests <= 2000:
        parser.error("requests 1-2000")
    print(
        f"{'poller':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'pace99':>8} {'late':>7} "
        f"{'polls':>6} {'poll p50':>8} {'poll p99':>8} {'poll max':>8} {'failed':>6} "
        f"{'page ms':>9} {'loop cpu':>9} {'other cpu':>9}"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-calls-poll-") as scratch:
        for _ in range(args.repeat):
            for poller in (False, True):
                run = _run(args, Path(scratch), poller)
                runs.append(run)
                print(_line(run), flush=True)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
