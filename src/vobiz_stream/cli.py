"""The ``vobiz-stream`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from vobiz_stream import __version__
from vobiz_stream.config import load_settings
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.server import serve

try:
    import uvloop
except ImportError:  # uvloop does not build on Windows; asyncio's own loop works too
    uvloop = None  # type: ignore[assignment]

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
Under --data-dir: recordings/ (one WAV per stream), webhook-events.log, vobiz-stream.db.
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
        help="where recordings, the database and the log go (default ./data)",
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
    other = serve.add_argument_group("security and lifecycle")
    other.add_argument("--auth-token", help="Vobiz auth token: require signed status callbacks")
    other.add_argument(
        "--shutdown-grace",
        type=float,
        help="seconds open calls get to finish after SIGTERM (default 30)",
    )
    other.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vobiz-stream",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vobiz-stream {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(commands)
    return parser


def _run_serve(args: argparse.Namespace) -> int:
    flags = {key: value for key, value in vars(args).items() if key not in {"command", "config"}}
    settings = load_settings(flags, config_file=args.config)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        stream=sys.stderr,
    )
    run = asyncio.run if uvloop is None else uvloop.run
    run(serve(settings))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "serve":
            return _run_serve(args)
    except VobizStreamError as exc:
        print(f"vobiz-stream {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vobiz-stream {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
