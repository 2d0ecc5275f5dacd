"""The media socket's shells: each carries the carrier's WebSocket for one library.

* :mod:`vobiz_stream.transports.aiohttp`: on the aiohttp app's port, beside the answer XML and
  the pages (the default);
* :mod:`vobiz_stream.transports.picows`: on a port of its own, with less CPU per frame (needs
  the ``picows`` extra);

Every shell drives :mod:`vobiz_stream.media_socket` (admission, session, recording, handler) and
only moves frames; none imports another.
"""
