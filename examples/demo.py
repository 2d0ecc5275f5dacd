"""What every example's one command does: serve the example on 127.0.0.1 and place one emulated
Vobiz call to it, then print what happened and keep what the caller heard.

    .venv/bin/python examples/<example>.py [--audio caller.wav] [--heard heard.wav]
        [--report report.json] [--data-dir DIR] [--speed N] [--dtmf SECONDS:DIGIT ...]
        [--media-transport aiohttp|picows|asgi]

The call is :func:`vobiz_stream.emulator.run_call` (``vobiz-stream call`` in code): it fetches
the answer XML, opens the ``<Stream>`` socket, sends the caller audio in real time as 20 ms
``media`` frames and plays the example's audio back, answering its checkpoints and clears. The
exit status is 0 when the call completed. ``--dtmf 5:4`` has the caller press 4 at 5 s.
Nothing is written to the working directory: what the caller heard goes to a temporary folder
unless ``--heard`` says where, the recordings to ``--data-dir`` (default: a temporary one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from vobiz_stream import (
    CallerSource,
    CallOptions,
    Handler,
    Settings,
    StreamServer,
    parse_key_press,
    read_caller_audio,
    run,
    run_call,
)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data"
"""The speech the examples' callers say by default (espeak-ng recordings in the repository)."""
HEARD_DIR = Path(tempfile.gettempdir()) / "vobiz-stream-examples"
"""Where what the caller heard goes without ``--heard``: not the folder the example runs in."""

Serving = Callable[[argparse.Namespace], AbstractAsyncContextManager[str]]
"""Starts the example's server for the call and yields its answer URL."""


def main(serving: Serving, caller: Path | CallerSource, *, name: str) -> None:
    """Parse the example's command line, place the call, exit with its outcome."""
    parser = argparse.ArgumentParser(
        prog=f".venv/bin/python examples/{name}.py",
        description=f"Serve the {name} example on 127.0.0.1 and place one emulated Vobiz call.",
    )
    parser.add_argument("--audio", type=Path, help="WAV the caller says (default: built in)")
    parser.add_argument(
        "--heard",
        type=Path,
        default=HEARD_DIR / f"{name}-heard.wav",
        help=f"what the caller heard (default {HEARD_DIR / f'{name}-heard.wav'})",
    )
    parser.add_argument("--report", type=Path, help="write the emulator's JSON report here")
    parser.add_argument("--data-dir", type=Path, help="recordings and database (default: temp)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="run the call N times faster (only for examples that play nothing: the server "
        "paces its playback in real time)",
    )
    parser.add_argument(
        "--dtmf",
        type=parse_key_press,
        action="append",
        default=[],
        metavar="SECONDS:DIGIT",
        help="the caller presses DIGIT at SECONDS into the call (repeatable)",
    )
    parser.add_argument(
        "--media-transport",
        choices=["aiohttp", "picows", "asgi"],
        default="aiohttp",
        help="the server's media socket, as vobiz-stream serve --media-transport",
    )
    args = parser.parse_args()
    args.heard.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s")
    # The emulated carrier's picows connections log without a call id; the server's lines say it.
    logging.getLogger("picows").setLevel(logging.WARNING)
    sys.exit(run(_call(serving, args, args.audio or caller)))


async def _call(serving: Serving, args: argparse.Namespace, caller: Path | CallerSource) -> int:
    options: dict[str, Any] = {
        "speed": args.speed,
        "heard_path": args.heard,
        "on_event": lambda entry: print(f"  {entry}"),
        "dtmf": tuple(args.dtmf),
    }
    audio = caller if isinstance(caller, CallerSource) else read_caller_audio(caller)
    async with serving(args) as answer_url:
        print(f"calling {answer_url} ({audio.seconds:.1f}s of caller audio)")
        report = await run_call(answer_url, audio, CallOptions(**options))
    for line in report.summary():
        print(line)
    print(f"what the caller heard: {args.heard}")
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return 0 if report.completed else 1


def serving_handler(handler: Handler, **settings: Any) -> Serving:
    """Serve ``handler`` with vobiz-stream's own server, as ``vobiz-stream serve`` would."""

    @contextlib.asynccontextmanager
    async def serve(args: argparse.Namespace) -> AsyncIterator[str]:
        with contextlib.ExitStack() as stack:
            data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            config = dataclasses.replace(
                Settings(),
                data_dir=data_dir,
                port=0,
                media_transport=args.media_transport,
                **settings,
            )
            earlier = set(config.recordings_dir.glob("*.wav"))  # a reused --data-dir's calls
            server = StreamServer(config, handler)
            runner = web.AppRunner(server.app(), access_log=None)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                yield f"http://{host}:{port}/"
                for _ in range(500):  # the handler's last words, the recording's end: <= 5 s
                    if not server.sockets:
                        break
                    await asyncio.sleep(0.01)
                if args.data_dir is not None:
                    for recording in sorted(set(config.recordings_dir.glob("*.wav")) - earlier):
                        print(f"recording: {recording}")
            finally:
                await runner.cleanup()

    return serve


def serving_asgi(app: Callable[..., Any]) -> Serving:
    """Serve an ASGI app (FastAPI: the Pipecat example) with uvicorn on a free port."""

    @contextlib.asynccontextmanager
    async def serve(args: argparse.Namespace) -> AsyncIterator[str]:
        import uvicorn  # noqa: PLC0415  (only this example needs it: vobiz-stream[pipecat])

        listener = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            for _ in range(500):  # up in well under 5 s
                if server.started or serving.done():
                    break
                await asyncio.sleep(0.01)
            if not server.started:
                raise RuntimeError("uvicorn did not start; see its log above")
            yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
        finally:
            server.should_exit = True
            await serving
            listener.close()

    return serve
