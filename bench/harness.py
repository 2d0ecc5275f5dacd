"""What the server benchmarks share: start a server pinned to a core, watch it, run a load, stop.

Every server under test answers ``GET /stats`` with the same JSON (vobiz-stream's server and the
Node sink in ``bench/node-sink``): ``open_streams``, ``frames`` (media frames handled) and
``handling_latency_ms`` (``count``, ``p50``, ``p99``, ``max``). A :class:`Watch` samples that,
with the server's CPU seconds and RSS from ``/proc``, once a second while a load runs, and
:func:`steady` picks the stretch where every call was up.

Everything is bounded: each process gets a timeout, and is terminated (then killed) at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
NODE_SINK = ROOT / "bench" / "node-sink"
SPEECH = ROOT / "tests" / "data" / "speech_male_8k.wav"
FRAMES_PER_SECOND = 50


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cores() -> tuple[list[str], list[str]]:
    """``taskset`` prefixes for the server (core 0) and the load (every other core); empty when
    the machine has one core or no ``taskset``."""
    count = os.cpu_count() or 1
    if count < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", "0"], ["taskset", "-c", f"1-{count - 1}"]


def keep_off_server_core() -> None:
    """Move this process (the bench itself: its sampler thread, its waits) to the load's cores,
    so the server's core runs the server alone; the servers and loads it starts are pinned by
    ``taskset`` whatever this process's own cores are."""
    count = os.cpu_count() or 1
    if count >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(1, count))


def load_core_count() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far, from ``/proc`` (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB, from ``/proc`` (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: dict[str, Any] = orjson.loads(response.read())
        return data


# -- servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerKind:
    """A server under test: its label and how to start it on a port with a data folder."""

    name: str
    label: str
    byte_order: str = "big"
    """``--l16-byte-order`` of a vobiz-stream server: the Node sink's own assumption by default,
    for the same work per frame; ``auto`` to measure detection."""
    source: Path | None = None
    """The ``src`` folder of another version of vobiz-stream to run as the server (a baseline to
    compare against on the same machine); None: this checkout's."""
    launcher: Path | None = None
    """A script run instead of ``python -m vobiz_stream`` with the same options (the picows
    server with its frames dropped, ``bench/floor_server.py``); None: the server itself."""

    def command(self, port: int, media_port: int, data_dir: Path, handler: str) -> list[str]:
        if self.name == "node":
            return ["node", str(NODE_SINK / "index.js"), "--port", str(port), "--data-dir",
                    str(data_dir)]  # fmt: skip
        # Told the byte order the load sends (big: what the Node sink assumes), for the same
        # work per frame; and no cap on concurrent calls (max_calls, 1000 by default), to find
        # the limit.
        command = [] if self.source is None else ["env", f"PYTHONPATH={self.source}"]
        entry = ["-m", "vobiz_stream"] if self.launcher is None else [str(self.launcher)]
        command += [
            sys.executable, *entry, "serve", "--port", str(port),
            "--data-dir", str(data_dir), "--handler", handler, "--log-level", "WARNING",
            "--l16-byte-order", self.byte_order, "--max-calls", "0",
        ]  # fmt: skip
        if self.name in ("picows", "picows-floor", "asgi"):
            transport = self.name.removesuffix("-floor")
            command += ["--media-transport", transport, "--media-port", str(media_port)]
        else:
            command += ["--media-transport", "aiohttp"]
        return command


SERVERS = {
    "aiohttp": ServerKind("aiohttp", "vobiz-stream (aiohttp socket)"),
    "picows": ServerKind("picows", "vobiz-stream (picows socket)"),
    "asgi": ServerKind("asgi", "vobiz-stream (ASGI socket, uvicorn)"),
    "picows-floor": ServerKind(
        "picows-floor",
        "picows socket, frames dropped unread",
        launcher=ROOT / "bench" / "floor_server.py",
    ),
    "node": ServerKind("node", "Node sink (ws)"),
}


class RunningServer:
    """A server process pinned to the server core, with its own data folder; the bench itself
    moves off that core when it starts one (:func:`keep_off_server_core`)."""

    def __init__(self, kind: ServerKind, scratch: Path, handler: str = "record") -> None:
        keep_off_server_core()
        self.kind = kind
        self.port = free_port()
        self.data_dir = scratch / f"{kind.name}-{self.port}"
        self.url = f"http://127.0.0.1:{self.port}/"
        pin, _ = cores()
        self.command = kind.command(self.port, free_port(), self.data_dir, handler)
        self.log_path = scratch / f"{kind.name}-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*pin, *self.command], stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind.label} exited at start (status {self.process.returncode}); "
                    f"its log: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            with contextlib.suppress(OSError):
                get_json(self.url + "stats", timeout=1.0)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind.label} did not answer /stats in {seconds:.0f}s")
            time.sleep(0.1)

    def stats(self) -> dict[str, Any]:
        return get_json(self.url + "stats", timeout=5.0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# -- watching a run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    cpu: float
    rss_mb: float
    open_streams: int
    frames: int


@dataclass
class Watch:
    """Samples a server once a second from a background thread until stopped."""

    server: RunningServer
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._sample()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _sample(self) -> None:
        at = time.monotonic()
        cpu, rss = cpu_seconds(self.server.pid), rss_mb(self.server.pid)
        try:
            stats = self.server.stats()
        except OSError:
            return  # a busy server that misses a sample is seen in the next one
        if cpu is not None and rss is not None:
            self.samples.append(Sample(at, cpu, rss, stats["open_streams"], stats["frames"]))


@dataclass(frozen=True)
class Steady:
    """The stretch of a run where (nearly) every call was up, and what the server did in it."""

    seconds: float
    calls_up: int
    cpu_percent: float
    frames_per_second: float
    paced_fraction: float
    """Frames handled over those a paced load of ``calls_up`` calls sends (1.0: all of them)."""
    cpu_us_per_frame: float
    """Server CPU per frame handled: comparable even where the load did not keep pace."""


def steady(samples: list[Sample]) -> Steady | None:
    """The samples from the first to the last with at least 98 % of the most calls seen up."""
    if len(samples) < 2:
        return None
    most = max(sample.open_streams for sample in samples)
    if most == 0:
        return None
    up = [index for index, s in enumerate(samples) if s.open_streams >= 0.98 * most]
    first, last = samples[up[0]], samples[up[-1]]
    seconds = last.at - first.at
    if seconds < 1.5:
        return None
    frames_per_second = (last.frames - first.frames) / seconds
    calls = sum(s.open_streams for s in samples[up[0] : up[-1] + 1]) / (up[-1] - up[0] + 1)
    cpu = last.cpu - first.cpu
    return Steady(
        seconds=round(seconds, 1),
        calls_up=most,
        cpu_percent=round(100 * cpu / seconds, 1),
        frames_per_second=round(frames_per_second),
        paced_fraction=round(frames_per_second / (FRAMES_PER_SECOND * calls), 3),
        cpu_us_per_frame=round(1e6 * cpu / max(1, last.frames - first.frames), 2),
    )


def run_bounded(command: list[str], timeout: float, log: Path) -> int:
    """Run ``command`` pinned to the load cores; kill it past ``timeout`` seconds."""
    _, pin = cores()
    with log.open("wb") as output:
        process = subprocess.Popen([*pin, *command], stdout=output, stderr=subprocess.STDOUT)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise


def ramp_rate(calls: int, duration: float) -> float:
    """Calls started per second: the load ramps up over a third of a call (20 s at most), so
    every call is up for at least the last two thirds of the run. Each call costs the load a few
    ms of CPU to set up (answer POST, socket, StartStream callback): a slower ramp keeps that
    from making the frames of the calls already up late."""
    return max(10.0, calls / min(20.0, duration / 3))


def run_matrix(
    description: str,
    *,
    calls: str,
    duration: float,
    servers: str,
    run_one: Callable[[ServerKind, int, float, Path], dict[str, Any]],
    refuse: Callable[[ServerKind], str | None] = lambda _kind: None,
) -> list[dict[str, Any]]:
    """The command line every server bench shares (``--calls``, ``--duration``, ``--servers``,
    ``--json``): run ``run_one`` for every number of calls and server, each run's figures
    printed as a JSON line as it ends and all of them written to ``--json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--calls", default=calls, help="comma-separated numbers of calls")
    parser.add_argument(
        "--duration", type=float, default=duration, help="seconds of audio per call"
    )
    parser.add_argument("--servers", default=servers, help="which servers, in order")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    levels = [int(level) for level in args.calls.split(",")]
    if any(not 1 <= level <= 5000 for level in levels) or not 1 <= args.duration <= 300:
        parser.error("calls must be 1-5000 and duration 1-300 s")
    kinds = [SERVERS[name] for name in args.servers.split(",")]
    for kind in kinds:
        problem = refuse(kind)
        if problem is not None:
            parser.error(problem)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for level in levels:
            for kind in kinds:
                run = run_one(kind, level, args.duration, Path(scratch))
                runs.append(run)
                print(orjson.dumps(run).decode(), flush=True)
    if args.json:
        args.json.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))
    return runs
