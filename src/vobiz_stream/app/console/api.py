"""The console's JSON API (Bearer token, or the console's sign-in cookie), read-only.

* ``GET /api/calls``: a search (:mod:`.queries`), newest first: ``{"calls": [...], "page",
  "per_page", "next", "previous"}`` (the links to the neighbouring pages, or null);
* ``GET /api/calls/<id>``: the call with its streams, events and callbacks (as ``/calls/<id>``);
* ``GET /api/calls/<id>/events``: its timeline, each entry in words with its offset;
* ``GET /api/calls/<id>/peaks``: per recorded stream, the waveform peaks and the talk figures;
* ``GET /api/calls/<id>/streams/<row>/recording``: the WAV, with HTTP ranges (a player seeks);
  ``?download=1`` asks the browser to save it;
* ``GET /api/live``: the live calls as Server-Sent Events (:mod:`.live`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import soundfile
from aiohttp import web

from vobiz_stream.app.calls_api import call_id_problem, one_call
from vobiz_stream.app.console.peaks import PeaksCache
from vobiz_stream.app.console.queries import SearchError, parse_search
from vobiz_stream.app.console.timeline import timeline
from vobiz_stream.app.console.views import recording_streams
from vobiz_stream.app.recording_route import serve_recording
from vobiz_stream.logtext import loggable
from vobiz_stream.recordings import ObjectStoreError, RecordingStore, recording_file_name
from vobiz_stream.store import CallHistory, CallRecord, StreamRecord
from vobiz_stream.store.interface import call_from_json

__all__ = ["ConsoleApi", "json_error", "stream_recording_file"]

log = logging.getLogger("vobiz_stream.console")


def json_error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"error": message}), content_type="application/json"
    )


def stream_recording_file(stream: StreamRecord) -> str | None:
    """The file name of the stream's recording, read back through the server's
    :class:`RecordingStore` (its folder or its bucket): a path the store holds is never
    followed elsewhere."""
    if not stream["recording_path"]:
        return None
    return recording_file_name(Path(stream["recording_path"]).name)


class ConsoleApi:
    """The API's handlers over the server's store and its recordings, wherever they live."""

    def __init__(self, store: CallHistory, recordings: RecordingStore, peaks: PeaksCache) -> None:
        self.store = store
        self.recordings = recordings
        self.peaks_cache = peaks

    async def find_call(self, request: web.Request) -> CallRecord | web.Response:
        """The call the path names, or the 400/404 answer saying why not."""
        call_id = request.match_info["call_id"]
        problem = call_id_problem(call_id)
        if problem is not None:
            return problem
        call = call_from_json(await self.store.call_json(call_id))
        if call is None:
            return json_error(404, f"no call {call_id!r} is known here; /api/calls lists them")
        return call

    async def calls(self, request: web.Request) -> web.Response:
        try:
            search = parse_search(request.query)
        except SearchError as exc:
            return json_error(400, str(exc))
        text, more = await self.store.search_calls_json(search.query)
        head = {
            "page": search.page,
            "per_page": search.per_page,
            "next": search.link(request.path, search.page + 1) if more else None,
            "previous": search.link(request.path, search.page - 1) if search.page > 1 else None,
        }
        body = orjson.dumps(head)[:-1] + b',"calls":' + text.encode() + b"}"
        return web.Response(body=body, content_type="application/json")

    async def call(self, request: web.Request) -> web.Response:
        response = await one_call(self.store, request)
        if "download" in request.query and response.status == 200:
            name = request.match_info["call_id"]
            response.headers["Content-Disposition"] = f'attachment; filename="call-{name}.json"'
        return response

    async def events(self, request: web.Request) -> web.Response:
        call = await self.find_call(request)
        if isinstance(call, web.Response):
            return call
        body = {"call_id": call["call_id"], "timeline": timeline(call)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def stream_peaks(self, call: CallRecord) -> list[dict[str, object]]:
        """Each recorded stream of ``call`` with its peaks (or the error reading it)."""
        found: list[dict[str, object]] = []
        for stream in recording_streams(call["streams"]):
            item: dict[str, object] = {
                "stream_row": stream["id"],
                "started_at": stream["started_at"],
                "recording": f"/api/calls/{call['call_id']}/streams/{stream['id']}/recording",
            }
            name = stream_recording_file(stream)
            try:
                peaks = await self.peaks_cache.peaks(self.recordings, name) if name else None
            except (OSError, soundfile.LibsndfileError, ObjectStoreError) as exc:
                log.warning(
                    "call %s: cannot read %s: %s",
                    loggable(call["call_id"]),
                    name,
                    loggable(str(exc), 200),
                )
                item["error"] = "the recording cannot be read"
            else:
                if peaks is None:
                    item["error"] = "the recording file is missing"
                else:
                    item.update(peaks)
            found.append(item)
        return found

    async def peaks(self, request: web.Request) -> web.Response:
        call = await self.find_call(request)
        if isinstance(call, web.Response):
            return call
        body = {"call_id": call["call_id"], "streams": await self.stream_peaks(call)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def recording(self, request: web.Request) -> web.StreamResponse:
        call = await self.find_call(request)
        if isinstance(call, web.Response):
            return call
        row = request.match_info["row"]
        stream = next((s for s in call["streams"] if str(s["id"]) == row), None)
        name = None if stream is None else stream_recording_file(stream)
        if name is None or await self.recordings.size(name) is None:
            return json_error(404, f"call {call['call_id']!r} has no recording for stream {row}")
        headers = {"Cache-Control": "no-cache"}
        if "download" in request.query:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return await serve_recording(self.recordings, request, name, headers)
