"""The media socket's shells: each carries the carrier's WebSocket for one library.

* :mod:`vobiz_stream.transports.aiohttp`: on the aiohttp app's port, beside the answer XML and
  the pages (the default);
* :mod:`vobiz_stream.transports.picows`: on a port of its own, with less CPU per frame (needs
  the ``picows`` extra);
* :mod:`vobiz_stream.transports.asgi`: a pure ASGI app, to mount in a Starlette or FastAPI app.

Every shell drives :mod:`vobiz_stream.app.media_socket` (admission, session, recording, handler) and
only moves frames; none imports another.
"""

from __future__ import annotations

from urllib.parse import parse_qsl


def first_values(query: str) -> dict[str, str]:
    """A URL's query string as a dict; a repeated key keeps its first value, as aiohttp's."""
    values: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(key, value)
    return values
