"""``vobiz-stream load``: emulate the carrier at scale."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import orjson

from vobiz_stream.cli.arguments import (
    FAULTS_EPILOG,
    add_fault_arguments,
    add_playout_argument,
    add_wire_arguments,
    answer_url,
    faults,
    positive_float,
    positive_int,
    wire_options,
)
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.load import LoadOptions, LoadProgress, run_load
from vobiz_stream.emulator.load_gates import LoadGates, check_gates
from vobiz_stream.emulator.load_html import load_report_html
from vobiz_stream.emulator.load_profiles import LoadProfile
from vobiz_stream.emulator.scenario import load_scenario
from vobiz_stream.emulator.source import EmulatorError

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

profiles, scenarios and gates:
  vobiz-stream load http://127.0.0.1:3000/ --calls 200 --rate 20 --profile ramp \
      --scenario examples/scenarios/echo.toml --gate-setup 99 --gate-first-audio-p95 1500 \
      --gate-response-p95 1500 --gate-gap-rate 1 --html load.html
                                             200 calls, the start rate climbing to 20/s,
                                             each caller following the scenario; exit 1 if
                                             a gate fails; plots of calls and latency over
                                             time in load.html
--profile ramp climbs evenly to --rate; spike runs a quarter of the calls at a fifth of
--rate, half at --rate, the rest at a fifth again; soak holds --rate (run it long and
watch latency over time). With --scenario each call's caller follows that scenario file
(vobiz-stream test --help) and lasts at most its max_seconds. With any --gate-* the
gates decide the exit status (0 all held, 1 one failed) and failed calls count against
--gate-setup: the percentage of calls that were answered and streamed. The gap rate is
the percentage of completed calls in which the app's audio ran dry mid-utterance.
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
    _add_profile_arguments(load)
    add_fault_arguments(load)


def _add_profile_arguments(load: argparse.ArgumentParser) -> None:
    group = load.add_argument_group("profiles, scenarios and gates (see below)")
    add = group.add_argument
    add(
        "--profile",
        choices=[profile.value for profile in LoadProfile],
        default=LoadProfile.STEADY.value,
        help="how the calls' starts spread over time (default steady: --rate throughout)",
    )
    add("--scenario", type=Path, help="a scenario file every call's caller follows")
    add("--gate-setup", type=percent, metavar="PCT", help="at least PCT %% of calls complete")
    add(
        "--gate-first-audio-p95",
        type=positive_float,
        metavar="MS",
        help="p95 time to the app's first audio at most MS",
    )
    add(
        "--gate-response-p95",
        type=positive_float,
        metavar="MS",
        help="p95 response after a caller turn at most MS (needs --scenario)",
    )
    add(
        "--gate-gap-rate",
        type=percent,
        metavar="PCT",
        help="at most PCT %% of completed calls with a mid-utterance gap",
    )
    add("--html", type=Path, help="write the report with its plots as one HTML file here")


def percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    duration = args.duration
    if args.scenario is not None:
        if args.audio is not None:
            raise EmulatorError("--audio and --scenario both say what the caller says: pick one")
        duration = load_scenario(args.scenario).max_seconds  # a mistake in it stops us here
    options = LoadOptions(
        calls=args.calls,
        rate=args.rate,
        duration=duration,
        profile=LoadProfile(args.profile),
        scenario=args.scenario,
        audio=args.audio,
        silence=args.silence,
        processes=args.processes,
        call_options=CallOptions(
            **wire_options(args),
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
    gates = LoadGates(
        setup_success=args.gate_setup,
        first_audio_p95_ms=args.gate_first_audio_p95,
        response_p95_ms=args.gate_response_p95,
        gap_rate=args.gate_gap_rate,
    )
    results = check_gates(gates, summary.outcomes)
    for result in results:
        print(f"gate {result}")
    if args.report is not None:
        data = summary.to_json()
        data["gates"] = [dataclasses.asdict(result) for result in results]
        args.report.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    if args.html is not None:
        args.html.write_text(load_report_html(summary, results), encoding="utf-8")
    if gates.any:
        return 0 if all(result.passed for result in results) else 1
    return 0 if summary.failed == 0 else 1
