"""The ``vobiz-stream`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from vobiz_stream import __version__
from vobiz_stream.advice import missing_scheme
from vobiz_stream.audio import ByteOrder
from vobiz_stream.config import load_settings
from vobiz_stream.emulator import (
    CallOptions,
    Faults,
    SignatureForm,
    SignatureVersion,
    parse_key_press,
    run_call,
)
from vobiz_stream.emulator.load import LoadOptions, LoadProgress, run_load
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.loop import run as run_on_best_loop
from vobiz_stream.server import serve

DESCRIPTION = """\
vobiz-stream: serve, emulate and test Vobiz audio streams.

Vobiz streams a live call's audio to your app over a WebSocket and plays back the
audio your app sends. This tool is both sides of that conversation.
"""

SERVE_EPILOG = """\
examples:
  vobiz-stream serve                         record every call into ./data (the defaults)
  vobiz-stream serve --handler echo          play each caller utterance back
  vobiz-stream serve --handler myagent:handle --public-url https://abc.example
                                             your own async def handle(session), reached by
                                             Vobiz through a tunnel at abc.example

Point your Vobiz application's answer URL at http(s)://<this server>/ . Every setting
can also come from a VOBIZ_STREAM_<NAME> environment variable (VOBIZ_STREAM_PORT=3001)
or a vobiz-stream.toml file ([serve] section, same names with underscores).
Under --data-dir: recordings/ (one WAV per stream), webhook-events.log, vobiz-stream.db, and
.vobiz-stream.lock (held while a server runs on the folder).
"""


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the stream server (answer XML, WebSocket, recordings, status callbacks)",
        description="Run the stream server: answers calls with <Stream> XML, records every "
        "stream to WAV, stores status callbacks, and runs your handler per call.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = serve.add_argument
    add("--config", type=Path, help="TOML config file (default: ./vobiz-stream.toml if present)")
    add("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    add("--port", type=int, help="port to listen on (default 3000)")
    add(
        "--data-dir",
        type=Path,
        help="where recordings, the database and the log go (default ./data); one server per "
        "folder: a second one stops, naming the first's pid and port",
    )
    add("--handler", help="record (default), echo, or MODULE:FUNCTION of your async handler")
    add("--public-url", help="base URL Vobiz reaches this server at, e.g. https://abc.example")
    stream = serve.add_argument_group("the <Stream> element served to Vobiz")
    stream.add_argument(
        "--bidirectional", choices=["true", "false"], help="let the app play audio (default true)"
    )
    stream.add_argument(
        "--audio-track",
        choices=["inbound", "outbound", "both"],
        help="which audio Vobiz sends (default inbound; bidirectional needs inbound)",
    )
    stream.add_argument(
        "--content-type",
        help="audio/x-l16;rate=8000 (default), audio/x-l16;rate=16000 or audio/x-mulaw;rate=8000",
    )
    stream.add_argument("--stream-timeout", type=int, help="seconds before Vobiz ends the stream")
    stream.add_argument(
        "--keep-call-alive",
        choices=["true", "false"],
        help="hold the call while the stream runs (default true)",
    )
    stream.add_argument(
        "--status-callback-url",
        help="where Vobiz sends status callbacks (default: this server's /webhook)",
    )
    stream.add_argument("--status-callback-method", choices=["GET", "POST"])
    stream.add_argument("--extra-headers", help="key=value,key=value passed to status callbacks")
    stream.add_argument("--max-retries", type=int, help="reconnect attempts, 0-10 (default 0)")
    media = serve.add_argument_group("media")
    media.add_argument(
        "--l16-byte-order",
        choices=["auto", "little", "big"],
        help="inbound L16 byte order (default auto: detected per stream)",
    )
    media.add_argument(
        "--outbound-content-type", help="format the app plays in (default: the inbound format)"
    )
    media.add_argument(
        "--max-lead",
        type=float,
        help="most seconds of app audio queued at "
        "Vobiz (default 0.2; what a barge-in still lets through)",
    )
    media.add_argument("--max-message-bytes", type=int, help="largest frame accepted")
    media.add_argument(
        "--media-transport",
        choices=["aiohttp", "picows"],
        help="the carrier's WebSocket: aiohttp on --port (default), or picows on --media-port "
        "(less CPU per frame)",
    )
    media.add_argument(
        "--media-port", type=int, help="port of the picows media socket (default: a free one)"
    )
    other = serve.add_argument_group("security and lifecycle")
    other.add_argument(
        "--auth-token",
        help="Vobiz auth token: keep only status callbacks it signed, each once (a replay gets "
        "403). Prefer VOBIZ_STREAM_AUTH_TOKEN: flags show in ps",
    )
    other.add_argument(
        "--admin-token",
        help="bearer token (16+ random characters) that every page but the carrier's needs: "
        "/calls, /stats, /admission; send it as 'Authorization: Bearer TOKEN'. Unset: open on "
        "loopback only, 403 beyond it or through a proxy or tunnel. "
        "Prefer VOBIZ_STREAM_ADMIN_TOKEN",
    )
    other.add_argument(
        "--verify-answers",
        choices=["true", "false"],
        help="refuse answer requests not signed with --auth-token (default false: turn it on once "
        "the log says your answer requests are signed)",
    )
    other.add_argument(
        "--trust-proxy",
        choices=["true", "false"],
        help="believe X-Forwarded-Proto/-Host (answer XML URLs, callback signatures) from a "
        "proxy in front that sets them; default false: use --public-url instead",
    )
    other.add_argument(
        "--stream-secret",
        help="key of per-call stream tokens: 16+ characters, or auto (random per process); "
        "unset: any socket is accepted. Prefer VOBIZ_STREAM_STREAM_SECRET: flags show in ps",
    )
    other.add_argument(
        "--token-ttl", type=int, help="seconds a stream token admits sockets (default 3600)"
    )
    other.add_argument(
        "--max-calls",
        type=int,
        help="most concurrent calls, 503 beyond (default 1000; 0: no cap); lowered at start, "
        "saying so, to what the open-file limit (ulimit -n) carries: 3 per call",
    )
    other.add_argument(
        "--max-calls-per-ip",
        type=int,
        help="most concurrent calls from one address, 429 beyond (default 0: no cap)",
    )
    other.add_argument(
        "--heartbeat",
        type=float,
        help="ping a carrier silent this many seconds, drop it if it does not answer "
        "(default 5; 0: off)",
    )
    other.add_argument(
        "--start-timeout",
        type=float,
        help="close a socket that sends no start, no full request or body, or no media after "
        "its start, in this many seconds (default 10; 0: off)",
    )
    other.add_argument(
        "--send-timeout",
        type=float,
        help="drop a carrier that reads nothing for this many seconds (default 10; 0: off)",
    )
    other.add_argument(
        "--shutdown-grace",
        type=float,
        help="seconds open calls get to finish after SIGTERM (default 30)",
    )
    other.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


CALL_EPILOG = """\
examples:
  vobiz-stream call http://127.0.0.1:3000/ --audio caller.wav --heard heard.wav
                                             one call to a local server; heard.wav is what
                                             the caller heard, on the caller audio's clock
  vobiz-stream call https://abc.example/answer --audio hello.wav --report report.json
  vobiz-stream call http://127.0.0.1:3000/ --audio caller.wav --speed 4 --legacy-shape
                                             the legacy flat start, four times real time

The emulator plays Vobiz: it POSTs the answer URL, connects to the <Stream> URL in the
XML, streams the audio file (any rate, mono or stereo) as 20 ms media frames, plays the app's
playAudio in real time and answers checkpoints and clears. The call hangs up at the end
of the audio, or, after a <Stream> without keepCallAlive (which runs in the background),
when the verbs after it end: <Speak> is spoken with espeak-ng (a tone without it) into
--heard, <Wait> waits, <Play> is a 1 s 440 Hz tone per loop (audio is not fetched),
<Hangup> hangs up, <Dial> is noted and skipped. A hangup closes the socket without a
stop, as live Vobiz does. Status callbacks go to the <Stream>'s statusCallbackUrl
(signed with --auth-token), and a socket the app drops is reconnected up to the
<Stream>'s maxRetries times. Commands a real carrier would not take as sent (no or
another streamId, unknown events, invalid JSON...) are counted warnings in the report.
The answer body and each message from the app may be up to 1 MiB. Exit status: 0 for a
completed call, 1 when the call failed (bad answer XML or a forbidden <Stream>, no
socket, a redirect loop, an answer over 1 MiB) or the app sent a message over 1 MiB,
2 for bad arguments or caller audio that cannot be read.

The app's audio plays as the carrier plays it: one 20 ms frame per tick of the call's
clock, behind a jitter buffer (--jitter-buffer). The report counts underruns (the app's
audio ran out in the middle of an utterance) apart from pauses between utterances
(silences after a checkpoint or a clear, or of 0.5 s or more).
"""

FAULTS_EPILOG = """faults (to test how an app copes with a bad network; all off by default):
  --jitter 40         each frame leaves up to 40 ms after its 20 ms deadline (uniformly
                      random); TCP keeps order, so a frame behind a late one waits for it
                      and the two arrive back to back
  --bunch 5           frames leave five at a time, every 100 ms, at the deadline of the
                      group's last frame
  --drop-frames 0.05  each frame is never sent with probability 5 %%; --drop-frames 10
                      skips every 10th frame. Its chunk and timestamp are simply missing
                      from the stream: a gap the app should fill with silence
  --reorder 0.02      2 %% of frames are sent right after the frame that follows them
                      (adjacent frames swapped, both at the later deadline)
  --drop-at 12.5      at 12.5 s of call time the TCP connection is cut: no close frame,
                      no stop, no reconnect; the stream is over (a DroppedStream callback)
  --seed 7            the seed of every random choice, to repeat a run exactly; without
                      it a random seed is drawn%s and shown in the report
A frame's chunk and timestamp always give its true place in the call, which is how an
app can put reordered frames back and find dropped ones; sequenceNumber counts the
messages in the order they are sent. Pacing is measured against each frame's own
scheduled time, so injected delays do not count as late frames.
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _answer_url(text: str) -> str:
    problem = missing_scheme(text, "answer URL")
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _key_press(text: str) -> tuple[float, str]:
    try:
        return parse_key_press(text)
    except VobizStreamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text}")
    return value


def _drop_rate(text: str) -> float:
    """A probability below 1, or a whole number N of 2 or more (every Nth frame)."""
    value = float(text)
    if 0 <= value < 1 or (value >= 2 and value.is_integer()):
        return value
    raise argparse.ArgumentTypeError(
        f"must be a probability below 1 (0.05) or a whole number of 2 or more "
        f"(10: every 10th frame), got {text}"
    )


def _add_wire_arguments(parser: argparse.ArgumentParser) -> None:
    """How the emulated carrier speaks: the message shapes and the L16 byte order."""
    add = parser.add_argument
    add("--legacy-shape", action="store_true", help="send the legacy flat start and media")
    add(
        "--l16-byte-order",
        choices=[order.value for order in ByteOrder],
        default=CallOptions.l16_byte_order.value,
        help="byte order of the L16 sent to the app (default little, as live Vobiz sends it; "
        "big for apps written to the older documents' network order)",
    )


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults (see below)")
    add = faults.add_argument
    add(
        "--jitter",
        type=_non_negative_float,
        default=0.0,
        metavar="MS",
        help="delay each frame by up to MS milliseconds, at random",
    )
    add("--bunch", type=_positive_int, default=1, metavar="K", help="send frames K at a time")
    add(
        "--drop-frames",
        type=_drop_rate,
        default=0.0,
        metavar="P",
        help="never send a frame: with probability P (below 1), or every Pth frame (2 or more)",
    )
    add(
        "--reorder",
        type=_probability,
        default=0.0,
        metavar="P",
        help="swap a frame with the next one with probability P",
    )
    add(
        "--drop-at",
        type=_positive_float,
        metavar="SECONDS",
        help="cut the TCP connection at this call time, with no close frame",
    )
    add("--seed", type=int, metavar="N", help="seed of the random faults (repeatable runs)")


def _add_playout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jitter-buffer",
        type=_non_negative_float,
        default=CallOptions.jitter_buffer * 1000,
        metavar="MS",
        help="how many milliseconds of the app's audio the carrier holds before playing it "
        f"(default {CallOptions.jitter_buffer * 1000:g}): an app frame up to this late still "
        "plays on time, a later one is an underrun; 0 plays each frame from the next 20 ms tick",
    )


def _faults(args: argparse.Namespace) -> Faults:
    drop = args.drop_frames
    return Faults(
        jitter_ms=args.jitter,
        bunch=args.bunch,
        drop_probability=drop if drop < 1 else 0.0,
        drop_every=int(drop) if drop >= 1 else None,
        reorder=args.reorder,
        drop_at=args.drop_at,
        seed=args.seed,
    )


def _call_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    call = commands.add_parser(
        "call",
        help="emulate the carrier: place one call against an answer URL",
        description="Emulate Vobiz for one call: fetch the answer XML, stream a WAV as the "
        "caller, play the app's audio back and report what happened.",
        epilog=CALL_EPILOG + "\n" + FAULTS_EPILOG % " per call",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = call.add_argument
    add(
        "answer_url",
        metavar="ANSWER_URL",
        type=_answer_url,
        help="the app's answer URL (http or https)",
    )
    add(
        "--audio",
        type=Path,
        required=True,
        help="audio file the caller says: any WAV (8-48 kHz, 8-32-bit, float, mu-law, A-law, "
        "stereo), FLAC, Ogg or MP3; converted for the stream, and the report says how",
    )
    add("--heard", type=Path, help="write what the caller heard to this WAV")
    add("--caller-out", type=Path, help="write the caller audio exactly as sent to this WAV")
    add("--report", type=Path, help="write the JSON report here")
    add("--from", dest="from_number", default=CallOptions.from_number, help="caller number")
    add("--to", dest="to_number", default=CallOptions.to_number, help="called number")
    _add_wire_arguments(call)
    add("--send-stop", action="store_true", help="send the documented stop before closing")
    add(
        "--hangup-after",
        type=_positive_float,
        help="hang up after this many seconds (cuts the audio, or pads it with silence)",
    )
    add(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="run the call's clock this many times faster than real time (default 1)",
    )
    add(
        "--auth-token",
        help="sign status callbacks (X-Vobiz-Signature-V3) with this Vobiz auth token",
    )
    add(
        "--signature",
        choices=[version.value for version in SignatureVersion],
        default=SignatureVersion.V3.value,
        help="which signature signed callbacks carry: v3 (default) or the older v2",
    )
    add(
        "--signature-form",
        choices=[form.value for form in SignatureForm],
        default=SignatureForm.SDK.value,
        help="what the signature covers: sdk (default; the URL and the sorted form fields, as "
        "Vobiz's Python SDK checks it) or docs (the full URL alone, as Vobiz's docs describe it)",
    )
    add(
        "--callback-timeout",
        type=_positive_float,
        default=CallOptions.callback_timeout,
        metavar="SECONDS",
        help="how long a status callback may take before it counts as failed "
        f"(default {CallOptions.callback_timeout:g}, as Vobiz)",
    )
    add(
        "--retry-delay",
        type=_non_negative_float,
        default=CallOptions.retry_delay,
        metavar="SECONDS",
        help="call time between a dropped socket and the reconnect, with maxRetries "
        f"(default {CallOptions.retry_delay:g})",
    )
    add(
        "--dtmf",
        type=_key_press,
        action="append",
        default=[],
        metavar="SECONDS:DIGIT",
        help="the caller presses DIGIT (0-9 * # A-D) at SECONDS into the call; repeatable",
    )
    add("--quiet", action="store_true", help="print only the summary, not the timeline")
    _add_playout_argument(call)
    _add_fault_arguments(call)


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _load_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        type=_answer_url,
        help="the app's answer URL (http or https)",
    )
    add("--calls", type=_positive_int, required=True, help="how many calls to place")
    add(
        "--rate",
        type=_positive_float,
        default=LoadOptions.rate,
        help=f"calls started per second (default {LoadOptions.rate:g}); each starts at a spread "
        "moment inside its 1/RATE slot, so the calls' frames are not all due in the same "
        "millisecond",
    )
    add(
        "--duration",
        type=_positive_float,
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
        type=_positive_int,
        default=1,
        help="split the calls over this many processes (default 1)",
    )
    _add_wire_arguments(load)
    add("--quiet", action="store_true", help="no progress line, only the summary")
    _add_playout_argument(load)
    _add_fault_arguments(load)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vobiz-stream",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vobiz-stream {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(commands)
    _call_parser(commands)
    _load_parser(commands)
    return parser


def _run_serve(args: argparse.Namespace) -> int:
    flags = {key: value for key, value in vars(args).items() if key not in {"command", "config"}}
    settings = load_settings(flags, config_file=args.config)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        stream=sys.stderr,
    )
    run_on_best_loop(serve(settings))
    return 0


def _run_call(args: argparse.Namespace) -> int:
    options = CallOptions(
        from_number=args.from_number,
        to_number=args.to_number,
        legacy_shape=args.legacy_shape,
        l16_byte_order=ByteOrder(args.l16_byte_order),
        send_stop=args.send_stop,
        hangup_after=args.hangup_after,
        speed=args.speed,
        heard_path=args.heard,
        caller_path=args.caller_out,
        on_event=None if args.quiet else lambda entry: print(entry, flush=True),
        auth_token=args.auth_token,
        signature=SignatureVersion(args.signature),
        signature_form=SignatureForm(args.signature_form),
        callback_timeout=args.callback_timeout,
        retry_delay=args.retry_delay,
        faults=_faults(args),
        dtmf=tuple(args.dtmf),
        jitter_buffer=args.jitter_buffer / 1000,
    )
    report = run_on_best_loop(run_call(args.answer_url, args.audio, options))
    for line in report.summary():
        print(line)
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return 0 if report.completed and not report.app_broke_stream else 1


def _run_load(args: argparse.Namespace) -> int:
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
            faults=_faults(args),
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "serve":
            return _run_serve(args)
        if args.command == "call":
            return _run_call(args)
        if args.command == "load":
            return _run_load(args)
    except VobizStreamError as exc:
        print(f"vobiz-stream {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vobiz-stream {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
