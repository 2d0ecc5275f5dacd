"""The ``Host`` a request names (or a trusted proxy forwards), checked before it goes into a URL.

The server builds the answer's stream and callback URLs, and the callback URL a signature
covers, from this host when no ``--public-url`` is given. Anything may arrive there: a byte
that is not ASCII made the URL library raise (500, and a traceback in the log per request), a
line separator reached the log, 8 000 characters went into every URL. Only a host name or an
IP address, with an optional port, is taken; anything else gets 400 saying what was expected.
"""

from __future__ import annotations

import re

from aiohttp import web

from vobiz_stream.logtext import loggable

__all__ = ["MAX_HOST_CHARS", "checked_host"]

MAX_HOST_CHARS = 261
"""A DNS name (253) and a port (``:65535``)."""
_HOST = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def checked_host(host: str) -> str:
    """``host`` if it is ``name[:port]``, ``ip[:port]`` or ``[ipv6][:port]``; else 400."""
    if len(host) <= MAX_HOST_CHARS and _HOST.fullmatch(host):
        return host
    raise web.HTTPBadRequest(
        text=f"the Host header {loggable(host, 80)!r} is not a host name or address with an "
        "optional port; send the host this server is reached at, or start it with --public-url\n"
    )
