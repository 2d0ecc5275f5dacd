"""The picows server with its media frames dropped unread: what the socket, the event loop and
the kernel cost per frame on this machine, before the server does anything with a frame.

    python bench/floor_server.py serve --media-transport picows ...   # the same options as
                                                                      # vobiz-stream serve

Each text frame is still taken out of the socket as bytes and looked at for the word "media"
(the least a server can do to tell audio from a stop); 63 media frames in 64 go no further.
The 64th, and every other frame (start, stop, close), goes through the server as usual, so
each call is admitted, kept up past the start timeout, and ended by its stop as in a real run.
Dropped frames are counted in ``GET /stats``' ``frames``, so a benchmark's CPU per frame is per
frame received. The figure is a ceiling of the floor: the 64th frame's work is in it too.

Used by ``bench/gates.py`` (the ``picows, frames dropped`` server) to split the picows server's
CPU per frame into what the socket costs and what the server adds to it.
"""

from __future__ import annotations

import itertools
import runpy
import sys
from typing import Any

from vobiz_stream.app import keeper, server
from vobiz_stream.transports import picows

KEPT_ONE_IN = 64
_latencies: list[keeper.HandlingLatency] = []
_media_frames = itertools.count(1)


class _RegisteredLatency(keeper.HandlingLatency):
    """The server's histogram, known to the dropping listener so dropped frames count."""

    def __init__(self) -> None:
        super().__init__()
        _latencies.append(self)


def _dropping_on_ws_frame(self: picows.MediaListener, transport: Any, frame: Any) -> None:
    if frame.msg_type is picows.WSMsgType.TEXT and frame.fin:
        payload = frame.get_payload_as_bytes()
        if b'"media"' in payload[:120] and next(_media_frames) % KEPT_ONE_IN:
            latency = _latencies[0]
            latency.frames += 1
            latency.unstamped += 1  # counted, out of the histogram
            return
    _handle_frame(self, transport, frame)


_handle_frame = picows.MediaListener.on_ws_frame
server.HandlingLatency = _RegisteredLatency  # type: ignore[misc]
picows.MediaListener.on_ws_frame = _dropping_on_ws_frame  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "vobiz-stream"
    runpy.run_module("vobiz_stream", run_name="__main__")
