"""One quiet line for HTTP requests the server cannot parse, instead of a traceback each.

aiohttp answers a request it cannot parse (a control character in a header, a request line past
8 KiB, a bad method) with 400, and logs it as an ERROR with its traceback: about 2.5 KB of log
per request, so a stranger sending garbage in a loop grows the log without bound.
:class:`MalformedRequests` turns those records into one WARNING line with a count, at most one
every ``quiet`` seconds; every other record of the logger (a handler that raised) passes as is.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

from vobiz_stream.logtext import loggable

__all__ = ["AIOHTTP_SERVER_LOGGER", "MalformedRequests"]

AIOHTTP_SERVER_LOGGER = "aiohttp.server"


class MalformedRequests(logging.Filter):
    """A filter for :data:`AIOHTTP_SERVER_LOGGER` (see the module's docstring)."""

    def __init__(self, quiet: float = 60.0) -> None:
        super().__init__()
        self.count = 0
        self._quiet = quiet
        self._last_logged: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        self.count += 1
        now = time.monotonic()
        if self._last_logged is not None and now - self._last_logged < self._quiet:
            return False
        self._last_logged = now
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "refused a malformed HTTP request with %d (%d so far, one line a minute): %s"
        record.args = (error.code, self.count, loggable(error.message.strip(), 120))
        record.exc_info, record.exc_text = None, None
        return True
