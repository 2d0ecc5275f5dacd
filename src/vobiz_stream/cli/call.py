"""``vobiz-stream call``: emulate the carrier for one call."""

from __future__ import annotations

import argparse
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
    key_press,
    non_negative_float,
    positive_float,
)
from vobiz_stream.emulator import CallOptions, SignatureForm, SignatureVersion, run_call
from vobiz_stream.loop import run as run_on_best_loop

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


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        type=answer_url,
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
    add_wire_arguments(call)
    add("--send-stop", action="store_true", help="send the documented stop before closing")
    add(
        "--hangup-after",
        type=positive_float,
        help="hang up after this many seconds (cuts the audio, or pads it with silence)",
    )
    add(
        "--speed",
        type=positive_float,
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
        type=positive_float,
        default=CallOptions.callback_timeout,
        metavar="SECONDS",
        help="how long a status callback may take before it counts as failed "
        f"(default {CallOptions.callback_timeout:g}, as Vobiz)",
    )
    add(
        "--retry-delay",
        type=non_negative_float,
        default=CallOptions.retry_delay,
        metavar="SECONDS",
        help="call time between a dropped socket and the reconnect, with maxRetries "
        f"(default {CallOptions.retry_delay:g})",
    )
    add(
        "--dtmf",
        type=key_press,
        action="append",
        default=[],
        metavar="SECONDS:DIGIT",
        help="the caller presses DIGIT (0-9 * # A-D) at SECONDS into the call; repeatable",
    )
    add("--quiet", action="store_true", help="print only the summary, not the timeline")
    add_playout_argument(call)
    add_fault_arguments(call)


def run(args: argparse.Namespace) -> int:
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
        faults=faults(args),
        dtmf=tuple(args.dtmf),
        jitter_buffer=args.jitter_buffer / 1000,
    )
    report = run_on_best_loop(run_call(args.answer_url, args.audio, options))
    for line in report.summary():
        print(line)
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return 0 if report.completed and not report.app_broke_stream else 1
