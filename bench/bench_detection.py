"""What detecting the L16 byte order costs a server: handling latency with ``auto`` against a
server told the order, under the same paced load.

    python bench/bench_detection.py [--calls 100] [--duration 20]

Each server records ``--calls`` calls of speech sent little-endian (as live Vobiz sends L16) and
reports ``/stats`` (per-frame handling latency: from a frame's due time to when it is recorded).
A detecting server holds a stream's frames back until the audio has told the order (1-4 frames of
speech, once per stream), so its p99 shows what that hold costs over a whole call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from harness import SPEECH, RunningServer, ServerKind, load_core_count, ramp_rate, run_bounded


def latency(byte_order: str, calls: int, duration: float, scratch: Path) -> dict[str, float]:
    kind = ServerKind("aiohttp", f"vobiz-stream, byte order {byte_order}", byte_order)
    server = RunningServer(kind, scratch)
    command = [
        sys.executable, "-m", "vobiz_stream", "load", server.url, "--calls", str(calls),
        "--rate", f"{ramp_rate(calls, duration):g}", "--duration", f"{duration:g}",
        "--processes", str(min(calls, load_core_count())), "--audio", str(SPEECH),
        "--l16-byte-order", "little", "--quiet",
    ]  # fmt: skip
    try:
        server.wait_ready()
        run_bounded(command, calls / ramp_rate(calls, duration) + duration + 120, scratch / "l.log")
        time.sleep(1.5)  # the last closes land in the server's figures
        figures: dict[str, float] = server.stats()["handling_latency_ms"]
    finally:
        server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for order in ("little", "auto"):
            figures = latency(order, args.calls, args.duration, Path(scratch))
            shown = ", ".join(f"{name} {figures[name]} ms" for name in ("p50", "p99", "max"))
            print(f"{args.calls} calls, --l16-byte-order {order}: {shown}", flush=True)


if __name__ == "__main__":
    main()
