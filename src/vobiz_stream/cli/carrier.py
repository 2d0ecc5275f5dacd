"""``vobiz-stream carrier``: a local Vobiz, serving its REST API until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from vobiz_stream.cli.arguments import add_wire_arguments, positive_float, wire_options
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.rest import CarrierSettings, run_carrier
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.loop import run as run_on_best_loop

CARRIER_EPILOG = """\
examples:
  VOBIZ_AUTH_ID=MA_LOCAL VOBIZ_AUTH_TOKEN=secret vobiz-stream carrier --audio caller.wav
                                             a local Vobiz on http://127.0.0.1:8090/api/v1
  vobiz-stream carrier --auth-id MA_LOCAL --auth-token secret --carrier strict --port 9000
  vobiz-stream carrier --scenario examples/scenarios/greeting.toml
                                             every caller follows the scenario; each call
                                             ends with its verdict (log, and GET below)

Point your app's Vobiz base URL at the address it prints (the Python SDK:
client.base_uri = "http://127.0.0.1:8090/api/v1/Account"; vobiz_stream.rest:
VobizClient(..., base_url="http://127.0.0.1:8090/api/v1")) and use the same auth id
and token. What it serves, under /api/v1/Account/<auth_id>/:

  POST   Call/                       place a call: from, to, answer_url (answer_method
                                     GET or POST); answers 201 with request_uuid, the
                                     call's uuid from then on
  GET    Call/?status=live           the uuids of the live calls
  GET    Call/<call_uuid>/           one call (?status=live: only while it is live)
  DELETE Call/<call_uuid>/           hang up (204)
  POST   Call/<call_uuid>/DTMF/      digits (0-9 * # A-D): dtmf events on the call's stream
  POST   Call/<call_uuid>/Stream/    start a stream on a live call whose answer had no
                                     <Stream>: service_url, bidirectional, audio_track,
                                     content_type, stream_timeout, status_callback_url,
                                     status_callback_method, extra_headers (202, stream_id)
  GET    Call/<call_uuid>/Stream/    its streams (limit 20, offset 0 by default)
  GET    Call/<call_uuid>/Stream/<stream_id>/
  DELETE Call/<call_uuid>/Stream/<stream_id>/ and DELETE Call/<call_uuid>/Stream/
                                     stop one or every stream (204); the call goes on

and, under /emulator/ (the local carrier's own, not Vobiz's; same two headers):

  GET    calls/<call_uuid>/report    an ended call's report, and with --scenario its
                                     verdict: every check with what was measured (409
                                     while the call is live)

Each call runs as `vobiz-stream call` runs one: the carrier fetches the answer URL
(signed with the auth token, as Vobiz signs with the account's), connects to the
<Stream>, and the caller says --audio (a 1 kHz tone without it) and hangs up when it
ends, or follows --scenario's steps and is judged on its expectations. A call whose
answer has no <Stream> stays up that long for one started through the API; the caller
audio starts with the stream. Every request needs X-Auth-ID and
X-Auth-Token (401 otherwise); errors are JSON with an "error" that says what to change;
more than --max-calls live calls are refused with 429 and Retry-After. One log line per
call event, with the call's uuid. Stop it with Ctrl-C: live calls are hung up.
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    carrier = commands.add_parser(
        "carrier",
        help="a local Vobiz: its REST API places emulated calls against your answer URL",
        description="Run a local Vobiz: apps place calls, press keys and start streams "
        "through its REST API as they do through Vobiz's, and each call runs against the "
        "app like a real one.",
        epilog=CARRIER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = carrier.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8090, help="port to listen on (default 8090; 0: any free)")
    add(
        "--auth-id",
        default=os.environ.get("VOBIZ_AUTH_ID"),
        help="the account's auth id (default: $VOBIZ_AUTH_ID, which the Vobiz SDK reads too)",
    )
    add(
        "--auth-token",
        default=os.environ.get("VOBIZ_AUTH_TOKEN"),
        help="the account's auth token (default: $VOBIZ_AUTH_TOKEN; prefer the variable, a "
        "flag shows in the process list)",
    )
    add(
        "--audio",
        type=Path,
        help="what every caller says (any WAV, FLAC, Ogg or MP3); the call hangs up when it ends",
    )
    add(
        "--scenario",
        type=Path,
        help="a scenario file (see docs/scenarios.md) every caller follows instead of saying "
        "--audio; each call's verdict is logged and served at /emulator/calls/<uuid>/report",
    )
    add(
        "--tone-seconds",
        type=positive_float,
        default=30.0,
        help="without --audio the caller says a 1 kHz tone this long (default 30)",
    )
    add(
        "--max-calls",
        type=int,
        default=50,
        help="live calls at once; one more is refused with 429 (default 50)",
    )
    add(
        "--speed",
        type=positive_float,
        default=1.0,
        help="run each call's clock this many times faster than real time (for tests)",
    )
    add_wire_arguments(carrier)
    add("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO")


def run(args: argparse.Namespace) -> int:
    if not args.auth_id or not args.auth_token:
        print(
            "vobiz-stream carrier: an auth id and an auth token are needed: set "
            "VOBIZ_AUTH_ID and VOBIZ_AUTH_TOKEN (or --auth-id and --auth-token); your app "
            "then uses the same two",
            file=sys.stderr,
        )
        return 2
    settings = CarrierSettings(
        auth_id=args.auth_id,
        auth_token=args.auth_token,
        host=args.host,
        port=args.port,
        audio=args.audio,
        tone_seconds=args.tone_seconds,
        scenario=args.scenario,
        max_calls=args.max_calls,
        call_options=CallOptions(speed=args.speed, **wire_options(args)),
    )
    settings.check()
    settings.caller()  # an unreadable file is said now, before the port opens
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)-7s %(message)s", stream=sys.stderr
    )
    run_on_best_loop(_serve(settings))
    return 0


async def _serve(settings: CarrierSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(base: str) -> None:
        print(f"local Vobiz carrier: {base}", flush=True)

    try:
        await run_carrier(settings, stop, ready)
    except OSError as exc:  # the port is taken, say
        raise VobizStreamError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
