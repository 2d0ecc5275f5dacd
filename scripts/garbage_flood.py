"""What a flood of malformed frames costs the server: frames per second handled, and the bytes of
database and log each one leaves behind.

    python scripts/garbage_flood.py                     # 20000 malformed frames on one socket
    python scripts/garbage_flood.py --frames 100000 --kind start

``serve`` runs as a subprocess on 127.0.0.1 with a fresh data folder; one socket sends a ``start``
and then ``--frames`` frames of one kind: ``json`` (not JSON), ``base64`` (media with a payload that
is not base64), ``start`` (a flood of second starts), ``unknown`` (an unknown event). Then a clean
call checks the server still records exactly. Prints frames/s and the growth of the database
(with its WAL) and of the server's log per frame. Bounded by ``--frames`` and 600 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from serving import start_serve, tone

from vobiz_stream.emulator import CallOptions, run_call

KINDS = {
    "json": "this is not JSON",
    "base64": '{"event": "media", "media": {"payload": "@@@@", "chunk": 1}}',
    "start": orjson.dumps(
        {"event": "start", "start": {"callId": "impostor", "streamId": "s"}}
    ).decode(),
    "unknown": '{"event": "somethingNew", "x": 1}',
}


def size(paths: list[Path]) -> int:
    return sum(path.stat().st_size for path in paths if path.exists())


async def flood(args: argparse.Namespace, work: Path) -> dict[str, object]:
    data, log_path = work / "data", work / "serve.log"
    with log_path.open("wb") as log:
        process, base = await start_serve(data, log)
        try:
            database = [data / "vobiz-stream.db", data / "vobiz-stream.db-wal"]
            db_before, log_before = size(database), log_path.stat().st_size
            frame = KINDS[args.kind]
            async with aiohttp.ClientSession() as client:
                socket = await client.ws_connect(base.replace("http", "ws") + "/stream")
                start = {"event": "start", "start": {"callId": "flood", "streamId": "s-1"}}
                await socket.send_str(orjson.dumps(start).decode())
                began = time.monotonic()
                for _ in range(args.frames):
                    await socket.send_str(frame)
                await socket.close()  # the server has read every frame once the close is answered
                seconds = time.monotonic() - began
            await asyncio.sleep(0.5)
            clean = await run_call(base + "/", tone(1.0), CallOptions(speed=4.0))
        finally:
            process.terminate()
            process.wait(30)
    return {
        "kind": args.kind,
        "frames": args.frames,
        "seconds": round(seconds, 2),
        "frames_per_second": round(args.frames / seconds),
        "database_bytes_per_frame": round((size(database) - db_before) / args.frames, 1),
        "log_bytes_per_frame": round((log_path.stat().st_size - log_before) / args.frames, 1),
        "clean_call_after_completed": clean.completed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--kind", choices=sorted(KINDS), default="base64")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vobiz-stream-flood-"))
    try:
        result = asyncio.run(asyncio.wait_for(flood(args, work), 600))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0 if result["clean_call_after_completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
