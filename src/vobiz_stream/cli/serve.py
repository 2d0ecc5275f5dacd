"""``vobiz-stream serve``: run the stream server."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vobiz_stream.app.config import load_settings
from vobiz_stream.app.server import serve
from vobiz_stream.app.workers import Supervisor
from vobiz_stream.loop import run as run_on_best_loop

SERVE_EPILOG = """\
examples:
  vobiz-stream serve                         record every call into ./data (the defaults)
  vobiz-stream serve --handler echo          play each caller utterance back
  vobiz-stream serve --handler myagent:handle --public-url https://abc.example
                                             your own async def handle(session), reached by
                                             Vobiz through a tunnel at abc.example
  AWS_ENDPOINT_URL=https://s3.example.net vobiz-stream serve --recordings s3://calls/rec
                                             each recording uploaded to the bucket calls
                                             once its call ends (keys from AWS_* variables)

Point your Vobiz application's answer URL at http(s)://<this server>/ . The web console
(calls, recordings, live calls) is at http://<this server>/ui . Every setting
can also come from a VOBIZ_STREAM_<NAME> environment variable (VOBIZ_STREAM_PORT=3001)
or a vobiz-stream.toml file ([serve] section, same names with underscores).
Under --data-dir: recordings/ (one WAV per stream), webhook-events.log, vobiz-stream.db (the
calls, unless --database names another store), and .vobiz-stream.lock (held while a server
runs on the folder).
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add(
        "--database",
        metavar="URL",
        help="where calls are stored: sqlite:///path/calls.db (default: vobiz-stream.db in "
        "--data-dir) or postgresql://user@host:5432/dbname to share one store between server "
        "processes or machines (pip install 'vobiz-stream[postgres]'; give the password in "
        "PGPASSWORD or ~/.pgpass: flags show in ps). See docs/database.md",
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
        choices=["aiohttp", "picows", "asgi"],
        help="the carrier's WebSocket: aiohttp on --port (default); picows on --media-port "
        "(less CPU per frame; pip install 'vobiz-stream[picows]'); or asgi, the ASGI stream "
        "endpoint under uvicorn on --media-port (pip install 'vobiz-stream[asgi]')",
    )
    media.add_argument(
        "--media-port",
        type=int,
        help="port of the picows or asgi media socket (default: a free one)",
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
        "/calls, /stats, /admission, the console's /api; send it as 'Authorization: Bearer "
        "TOKEN', or sign in to the web console at /ui with it. Unset: open on "
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
    scale = serve.add_argument_group("workers and metrics")
    scale.add_argument(
        "--workers",
        type=int,
        help="run N worker processes on --port (one per core is usual) under a supervisor that "
        "starts a new one when one dies and stops all on SIGTERM; above 1 needs "
        "--database postgresql://... (default: one process, no supervisor)",
    )
    scale.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics on this port too, without the admin token (keep it "
        "private); /metrics on --port always needs the admin token. Default: off",
    )
    scale.add_argument(
        "--metrics-host",
        help="address of --metrics-port (default 127.0.0.1; 0.0.0.0 for a scraper elsewhere)",
    )
    _add_recording_flags(serve)


def _add_recording_flags(serve: argparse.ArgumentParser) -> None:
    recordings = serve.add_argument_group(
        "recordings",
        "Each call is written to a WAV under --data-dir/recordings while it goes on. With an "
        "s3:// target it is uploaded once the stream ends (retried until it works; the local "
        "file goes only once S3 holds all of it; uploads left pending resume at the next "
        "start). S3 settings default to the AWS variables (AWS_ENDPOINT_URL, AWS_REGION, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); needs pip install 'vobiz-stream[s3]'.",
    )
    recordings.add_argument(
        "--recordings",
        metavar="FOLDER_OR_URL",
        help="where finished recordings go: a folder (default DATA_DIR/recordings) or "
        "s3://bucket/prefix on any S3-compatible service",
    )
    recordings.add_argument(
        "--s3-endpoint-url", help="the S3 service, https://s3.example.net (default: Amazon S3)"
    )
    recordings.add_argument("--s3-region", help="its region (default us-east-1)")
    recordings.add_argument("--s3-access-key-id", help="the access key (prefer the variable)")
    recordings.add_argument(
        "--s3-secret-access-key",
        help="its secret; a flag shows in the process list: prefer AWS_SECRET_ACCESS_KEY",
    )
    recordings.add_argument(
        "--upload-concurrency", type=int, help="recordings uploaded at once (default 2)"
    )
    recordings.add_argument(
        "--recording-webhook",
        metavar="URL",
        help="POST each recording.saved event (where the recording went) to URL as JSON, "
        "signed with --auth-token when set",
    )


def run(args: argparse.Namespace) -> int:
    flags = {key: value for key, value in vars(args).items() if key not in {"command", "config"}}
    settings = load_settings(flags, config_file=args.config)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        stream=sys.stderr,
    )
    if settings.workers:
        return Supervisor(settings, settings.workers).run()
    run_on_best_loop(serve(settings))
    return 0
