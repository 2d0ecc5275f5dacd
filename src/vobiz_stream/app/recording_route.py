"""``GET /recordings/<file name>``: a recording, from wherever it lives, with HTTP Range.

A file on this machine is served as a file (aiohttp's ``FileResponse``: Range, ``If-*``). One in
the bucket is read a piece at a time (:data:`PIECE` bytes) through the
:class:`~vobiz_stream.recordings.RecordingStore` and streamed, a ``Range`` header honoured.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from vobiz_stream.logtext import loggable
from vobiz_stream.recordings import ObjectStoreError, RecordingStore, recording_file_name

__all__ = ["PIECE", "serve_recording"]

PIECE = 1 << 20
"""Bytes read from the bucket per request while streaming a recording."""


async def serve_recording(
    recordings: RecordingStore,
    request: web.Request,
    name: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """The recording ``name`` (by default the route's ``name``), with ``headers`` added; 404
    if there is none, 502 if the bucket cannot be read."""
    name = request.match_info["name"] if name is None else name
    headers = {"Content-Type": "audio/wav", **(headers or {})}
    if recording_file_name(name) is None:
        return web.Response(
            status=404, text=f"no recording {loggable(name, 60)!r}: names end in .wav\n"
        )
    local = recordings.local_path(name)
    if local is not None:
        return web.FileResponse(local, headers=headers)
    try:
        size = await recordings.size(name)
    except ObjectStoreError as exc:
        return web.Response(status=502, text=f"cannot reach the recording: {exc}\n")
    if size is None:
        return web.Response(status=404, text=f"no recording {name!r} here or in the bucket\n")
    try:
        start, stop, _ = request.http_range.indices(size)  # no Range header: the whole
    except ValueError:
        start, stop = 0, 0
    if start >= stop and size:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    partial = (start, stop) != (0, size)
    response = web.StreamResponse(
        status=206 if partial else 200,
        headers={**headers, "Accept-Ranges": "bytes"},
    )
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    await response.prepare(request)
    position = start
    try:
        while position < stop:
            piece = await recordings.read(name, position, min(stop, position + PIECE))
            if not piece:
                break
            await response.write(piece)
            position += len(piece)
    except ObjectStoreError:
        return response  # headers are sent: the short body tells the client
    await response.write_eof()
    return response
