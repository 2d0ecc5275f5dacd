"""SIGKILL trials: kill ``vobiz-stream serve`` mid-call again and again, and measure what was lost.

    python scripts/crash_trials.py                      # 10 trials of 4 calls each
    python scripts/crash_trials.py --trials 30 --calls 8

Each trial is the test ``tests/e2e/test_reliability_crash.py`` runs once, with the same checks
(imported from it): emulated calls at real time, ``kill -9`` after a random 2.5-5 s, then every
WAV must open and hold its caller's audio sample for sample, SQLite's integrity check must pass,
and a restart must mark every call interrupted. Prints, per trial and overall, the seconds of
audio sent before the kill that the recordings do not hold (the design bound is one second:
200 ms of jitter buffer plus 800 ms between WAV flushes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package

from tests.e2e.test_reliability_crash import (
    IN_FLIGHT,
    assert_store_whole,
    caller_audio,
    kill_mid_call,
    restart_and_list_calls,
    seconds_lost,
)
from tests.e2e.test_server_process import free_port


async def trial(number: int, calls: int, kill_after: float, work: Path) -> list[float]:
    data = work / f"trial-{number}"
    audio = [caller_audio(number * 100 + call) for call in range(calls)]
    port = free_port()
    reports = await kill_mid_call(port, data, audio, kill_after)
    lost = seconds_lost(data, reports, audio)
    assert_store_whole(data, open_streams=calls)
    listed, _ = await restart_and_list_calls(port, data)
    assert {call["status"] for call in listed} == {"interrupted"}
    assert len(listed) == calls
    return lost


async def run(trials: int, calls: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    losses: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vobiz-stream-crash-") as work:
        for number in range(trials):
            kill_after = rng.uniform(2.5, 5.0)
            lost = await trial(number, calls, kill_after, Path(work))
            losses += lost
            print(
                f"trial {number + 1:>3}: killed {kill_after:.2f} s into {calls} calls; "
                f"lost {min(lost):.3f}-{max(lost):.3f} s; WAVs valid, SQLite ok, "
                "all marked interrupted",
                flush=True,
            )
    return {
        "trials": trials,
        "recordings": len(losses),
        "max_seconds_lost": round(max(losses), 3),
        "mean_seconds_lost": round(sum(losses) / len(losses), 3),
        "over_one_second": sum(loss > 1.0 for loss in losses),
        "over_the_test_bound": sum(loss > 1.0 + IN_FLIGHT for loss in losses),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--calls", type=int, default=4, help="concurrent calls per trial")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    # The emulated calls warn that their DroppedStream callbacks failed: the server was killed.
    logging.getLogger("vobiz_stream.emulator").setLevel(logging.ERROR)
    summary = asyncio.run(run(args.trials, args.calls, args.seed))
    print(json.dumps(summary, indent=2))
    return 1 if summary["over_the_test_bound"] else 0


if __name__ == "__main__":
    sys.exit(main())
