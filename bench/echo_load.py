"""The load generator for echo (bidirectional) runs, measuring what the caller would hear.

    .venv/bin/python bench/echo_load.py ANSWER_URL --calls N --duration S --rate R
        --audio SPEECH.wav [--pauses 4,1] --max-lead 0.2 --report out.json

``vobiz-stream load`` (in this process, on uvloop) with speech as the caller's audio: ``--audio``
after each of ``--pauses`` seconds of silence in turn, looped. The echo handler answers each
utterance and marks the answer with a checkpoint; after a long pause the answer plays out (its
checkpoint comes back), after a short one the caller speaks over it (a barge-in: the server
clears it). Each call's playout model
(the carrier's queue) is one that also notes, for every ``playAudio`` it takes, how much audio it
then holds queued: the *lead*, which the server keeps at or under ``max_lead``. The report
(JSON) holds the load's own summary and:

* ``lead_ms``: the largest lead seen, and how many ``playAudio`` frames found the queue above
  ``max_lead`` + 1 ms, and above ``max_lead`` + 5 ms. The server keeps the bound on its own
  clock; the carrier plays its queue one 20 ms frame per tick of the call's clock (the frame
  playing is no longer queued), so on its clock the lead also holds the frame's delivery delay
  (loopback, and the load process's own loop) and the wait for the next tick;
* ``gap_ms``: the outbound gaps, i.e. silences in the middle of an answer (the queue ran dry
  before the answer ended, so the caller heard a hole): their count, and per ``playAudio``
  frame the hole that came before it (0 for almost all), as p50/p99/max;
* the checkpoint round trip (the app's ``checkpoint`` to the carrier's ``playedStream``: the
  queued audio's play time, at most the lead, plus the delays).

It reaches into the emulator for the queue depth (``vobiz_stream.emulator.call.Playout``); the
load's summary does not report it yet.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

import vobiz_stream.emulator.call as emulator_call
from vobiz_stream.audio import ByteOrder, WavWriter
from vobiz_stream.core.protocol import PlayAudio
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.load import LoadOptions, load_calls, summarize
from vobiz_stream.emulator.playout import Playout, PlayoutEvent
from vobiz_stream.emulator.source import read_caller_audio
from vobiz_stream.loop import run as run_on_best_loop

LEAD_TOLERANCES = {"frames_over_bound": 0.001, "frames_over_bound_plus_5ms": 0.005}


class MeasuredPlayout(Playout):
    """The emulator's playout queue, noting its depth after each ``playAudio``."""

    created: list[MeasuredPlayout] = []  # noqa: RUF012 (one list for the whole run)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leads: list[float] = []
        MeasuredPlayout.created.append(self)

    def play(self, command: PlayAudio, now: float) -> list[PlayoutEvent]:
        events = super().play(command, now)
        self.leads.append(self.queued_seconds)
        return events


def _distribution(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    data = np.asarray(values, dtype=np.float64) * 1000
    p50, p99 = np.percentile(data, [50, 99])
    return {"count": len(data), "p50": round(float(p50), 3), "p99": round(float(p99), 3),
            "max": round(float(data.max()), 3)}  # fmt: skip


def measure(max_lead: float) -> dict[str, Any]:
    """What the playout queues of every call saw."""
    playouts = MeasuredPlayout.created
    leads = [lead for playout in playouts for lead in playout.leads]
    holes = [gap.seconds for playout in playouts for gap in playout.gaps if gap.mid_utterance]
    frames = len(leads)
    per_frame = holes + [0.0] * max(0, frames - len(holes))
    return {
        "play_audio_frames": frames,
        "lead_ms": {
            "max": round(1000 * max(leads), 3) if leads else None,
            "bound": round(1000 * max_lead, 3),
            **{
                name: sum(lead > max_lead + tolerance for lead in leads)
                for name, tolerance in LEAD_TOLERANCES.items()
            },
        },
        "gap_ms": {
            "count": len(holes),
            "total": round(1000 * sum(holes), 3),
            "per_frame": _distribution(per_frame),
        },
    }


def with_pauses(audio: Path, pauses: list[float], folder: Path) -> Path:
    """``audio`` followed by each pause in turn, as one WAV in ``folder``: the caller's turns."""
    source = read_caller_audio(audio)
    parts = []
    for pause in pauses:
        parts += [source.pcm, np.zeros(round(pause * source.rate), dtype=np.int16)]
    path = folder / "turns.wav"
    with WavWriter(path, source.rate) as writer:
        writer.write(np.concatenate(parts))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("answer_url")
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument(
        "--pauses", default="4,1", help="seconds of silence after each utterance, in turn"
    )
    parser.add_argument("--max-lead", type=float, default=0.2)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    if not 1 <= args.calls <= 5000 or not 1 <= args.duration <= 300:
        parser.error("calls must be 1-5000 and duration 1-300 s")
    emulator_call.Playout = MeasuredPlayout  # type: ignore[misc]
    with tempfile.TemporaryDirectory(prefix="echo-load-") as scratch:
        pauses = [float(pause) for pause in args.pauses.split(",")]
        audio = with_pauses(args.audio, pauses, Path(scratch))
        # The harness tells the server big-endian L16 (bench/harness.py): send it so.
        carrier = CallOptions(l16_byte_order=ByteOrder.BIG)
        options = LoadOptions(
            calls=args.calls,
            rate=args.rate,
            duration=args.duration,
            audio=audio,
            call_options=carrier,
        )
        part = run_on_best_loop(load_calls(args.answer_url, options))
    summary = summarize(args.answer_url, options, [part], part.wall_seconds)
    report = {"load": summary.to_json(), **measure(args.max_lead)}
    args.report.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
