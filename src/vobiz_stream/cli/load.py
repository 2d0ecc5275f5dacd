"""``vobiz-stream load``: emulate the carrier at scale."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import orjson

from vobiz_stream.audio import ByteOrder
from vobiz_stream.cli.arguments import (
    FAULTS_EPILOG,
    add_fault_arguments,
    add_playout_argument,
    add_wire_arguments,
    answer_url,
    faults,
    positive_float,
    positive_int,
)
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.load import LoadOptions, LoadProgress, run_load

LOAD_EPILOG = """\
examples:
  vobiz-stream load http://127.0.0.1:3000/ --calls 100
                                             100 calls of a 1 kHz tone, 10 s each, started
                                             at 20 calls/s
  vobiz-stream load http://127.0.0.1:3000/ --calls 1000 --rate 100 --duration 30 \\
      --audio caller.wav --processes 2 --report load.json
                                             1000 calls saying caller.wav (looped to 30 s)
                                             from two processes; the figures in load.json

Each call is a full emulated carrier (see vobiz-stream call --help): answer XML, socket,
20 ms media frames on their deadlines, playout, checkpoints and clears. A progress line
goes to stderr about once a second, the summary to stdout: calls completed and failed,
frames sent and late, pacing (how late each frame left after its deadline; a p99 of a
few ms means this process kept up), first-audio latency and checkpoint and clear round
trips when the app plays, and the CPU the load itself used. Run the load on another
core than the server (taskset) to measure the server. Exit status: 0 when every call
completed, 1 when some failed, 2 for bad arguments.
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = commands.add_parser(
        "load",
        help="emulate the carrier at scale: many concurrent calls against an answer URL",
        description="Place many concurrent emulated Vobiz calls against an answer URL and "
        "report pacing, the app's round trips and the load's own CPU.",
        epilog=LOAD_EPILOG
        + "\n"
        + FAULTS_EPILOG % " per call (with --seed every call gets the same faults)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = load.add_argument
    add(
        "answer_url",
        metavar="ANSWER_URL",
        type=answer_url,
        help="the app's answer URL (http or https)",
    )
    add("--calls", type=positive_int, required=True, help="how many calls to place")
    add(
        "--rate",
        type=positive_float,
        default=LoadOptions.rate,
        help=f"calls started per second (default {LoadOptions.rate:g}); each starts at a spread "
        "moment inside its 1/RATE slot, so the calls' frames are not all due in the same "
        "millisecond",
    )
    add(
        "--duration",
        type=positive_float,
        default=LoadOptions.duration,
        help=f"seconds of caller audio per call (default {LoadOptions.duration:g})",
    )
    add(
        "--audio",
        type=Path,
        help="audio file the caller says (any WAV, FLAC, Ogg or MP3), looped to --duration "
        "(default: a 1 kHz tone)",
    )
    add("--silence", action="store_true", help="without --audio, send silence, not a tone")
    add("--report", type=Path, help="write the summary as JSON here")
    add(
        "--processes",
        type=positive_int,
        default=1,
        help="split the calls over this many processes (default 1)",
    )
    add_wire_arguments(load)
    add("--quiet", action="store_true", help="no progress line, only the summary")
    add_playout_argument(load)
    add_fault_arguments(load)


def run(args: argparse.Namespace) -> int:
    options = LoadOptions(
        calls=args.calls,
        rate=args.rate,
        duration=args.duration,
        audio=args.audio,
        silence=args.silence,
        processes=args.processes,
        call_options=CallOptions(
            legacy_shape=args.legacy_shape,
            l16_byte_order=ByteOrder(args.l16_byte_order),
            faults=faults(args),
            jitter_buffer=args.jitter_buffer / 1000,
        ),
    )
    tty = sys.stderr.isatty()
    # One warning per call (a slow status callback, say) would drown the progress line; what
    # failed is in the summary.
    logging.getLogger("vobiz_stream.emulator").setLevel(logging.ERROR)

    def progress(state: LoadProgress) -> None:
        if tty:
            print(f"\r{state.line()}", end="", file=sys.stderr, flush=True)
        else:
            print(state.line(), file=sys.stderr, flush=True)

    summary = run_load(args.answer_url, options, None if args.quiet else progress)
    if tty and not args.quiet:
        print(file=sys.stderr)
    for line in summary.lines():
        print(line)
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
    return 0 if summary.failed == 0 else 1
