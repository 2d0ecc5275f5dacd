"""Soak: many short emulated calls, one after another, against ``vobiz-stream serve``; does the
server's memory stay flat?

    python scripts/soak_rss.py                          # 10000 calls of 0.5 s at 25x speed
    python scripts/soak_rss.py --calls 300 --report soak.json

The server runs as a subprocess on 127.0.0.1 with a fresh data folder (removed at the end unless
``--keep``); its resident set size (VmRSS) and open file descriptors are read from ``/proc`` every
``--sample-every`` calls. Recordings are deleted as the run goes (every 500 calls) so the disk does
not fill; that does not touch the server's memory. The run is bounded by ``--calls`` and
``--max-time``. Prints a table and a summary: RSS after warm-up (the first 5 % of the calls) and
at the end, the growth per 1000 calls fitted over the second half, and the failed calls.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import numpy as np
from serving import start_serve, tone

from vobiz_stream.emulator import CallOptions, run_call


@dataclass
class Sample:
    calls: int
    seconds: float
    rss_kib: int
    open_fds: int

    def line(self) -> str:
        return (
            f"{self.calls:>6} calls {self.seconds:7.1f} s  RSS {self.rss_kib / 1024:7.1f} MiB  "
            f"fds {self.open_fds:4d}"
        )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def soak(args: argparse.Namespace, data: Path) -> dict[str, object]:
    log = (data.parent / "serve.log").open("wb")
    process, base = await start_serve(
        data, log, "--handler", args.handler, "--log-level", "WARNING"
    )
    samples: list[Sample] = []
    failed = 0
    began = time.monotonic()
    try:
        audio = tone(args.seconds)
        options = CallOptions(speed=args.speed)
        async with aiohttp.ClientSession() as http:
            for number in range(1, args.calls + 1):
                report = await run_call(base + "/", audio, options, http=http)
                failed += not report.completed
                if number % args.sample_every == 0 or number in (1, args.calls):
                    sample = Sample(
                        number,
                        time.monotonic() - began,
                        rss_kib(process.pid),
                        open_fds(process.pid),
                    )
                    samples.append(sample)
                    print(f"{sample.line()}  failed {failed}", flush=True)
                if number % 500 == 0:
                    for path in (data / "recordings").glob("*.wav"):
                        path.unlink()
                if time.monotonic() - began > args.max_time:
                    print(f"stopped at the time limit ({args.max_time} s)", flush=True)
                    break
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    return summarise(samples, failed, time.monotonic() - began)


def summarise(samples: list[Sample], failed: int, seconds: float) -> dict[str, object]:
    done = samples[-1].calls
    warm = next(sample for sample in samples if sample.calls >= max(1, done // 20))
    second_half = [sample for sample in samples if sample.calls >= done // 2]
    slope = 0.0
    if len(second_half) >= 2:
        calls = np.array([sample.calls for sample in second_half], dtype=float)
        rss = np.array([sample.rss_kib for sample in second_half], dtype=float)
        slope = float(np.polyfit(calls, rss, 1)[0]) * 1000 / 1024  # MiB per 1000 calls
    return {
        "calls": done,
        "failed": failed,
        "seconds": round(seconds, 1),
        "rss_after_warmup_mib": round(warm.rss_kib / 1024, 1),
        "rss_at_end_mib": round(samples[-1].rss_kib / 1024, 1),
        "rss_max_mib": round(max(sample.rss_kib for sample in samples) / 1024, 1),
        "growth_second_half_mib_per_1000_calls": round(slope, 3),
        "open_fds_after_warmup": warm.open_fds,
        "open_fds_at_end": samples[-1].open_fds,
        "samples": [asdict(sample) for sample in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls to place (10000)")
    parser.add_argument("--seconds", type=float, default=0.5, help="caller audio per call (0.5)")
    parser.add_argument("--speed", type=float, default=25.0, help="emulator clock speed (25)")
    parser.add_argument("--handler", default="record", help="the server's handler (record)")
    parser.add_argument("--sample-every", type=int, default=250, help="calls between samples")
    parser.add_argument("--max-time", type=float, default=3600, help="seconds at most (3600)")
    parser.add_argument("--report", type=Path, help="write the summary as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and log")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vobiz-stream-soak-"))
    try:
        summary = asyncio.run(soak(args, work / "data"))
    finally:
        if args.keep:
            print(f"data and serve.log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    shown = {key: value for key, value in summary.items() if key != "samples"}
    print(json.dumps(shown, indent=2))
    if args.report is not None:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
