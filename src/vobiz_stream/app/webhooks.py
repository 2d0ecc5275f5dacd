"""The server's side of status callbacks that touches the outside: reading a request body
within bounds (:func:`read_capped_body`), counting what was accepted and refused
(:class:`CallbackCounters`), and :class:`WebhookLog`, which appends one JSON line per callback,
like a reference sink's ``webhook-events.log``. Parsing and checking are
:mod:`vobiz_stream.core.callbacks`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import orjson
from aiohttp import web

from vobiz_stream.closing import Closeable
from vobiz_stream.core.callbacks import (
    MAX_BODY_BYTES,
    CallbackError,
    SignatureCheck,
    StatusCallback,
    format_utc,
)

__all__ = ["CallbackCounters", "WebhookLog", "one_line_json", "read_capped_body"]


async def read_capped_body(
    request: web.Request, limit: int = MAX_BODY_BYTES, timeout: float = 0.0
) -> bytes:
    """The body of ``request``, never buffering more than ``limit`` bytes of it.

    A ``Content-Length`` past the limit is refused before a byte is read; a body without one
    (chunked) is read until it passes the limit. Raises :class:`CallbackError`: 413 for a body
    too large, 415 for a compressed one, 408 for one not whole within ``timeout`` seconds (0: no
    limit; a sender that trickles or stalls would hold its connection for ever), 400 for one
    whose sender hung up halfway (else each such request logs a traceback).
    """
    too_large = CallbackError(
        413, f"body over {limit} bytes; the carrier sends a small form", "too_large"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        request.protocol.force_close()  # 60 KB of gzip inflate to 60 MB: not one byte of it
        raise CallbackError(
            415, "a compressed body is not accepted; the carrier sends a plain form", "compressed"
        )
    body = bytearray()
    try:
        async with asyncio.timeout(timeout or None):
            while chunk := await request.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise too_large
    except TimeoutError:
        request.protocol.force_close()  # answered, then closed: the rest is not waited for
        raise CallbackError(
            408, f"the body did not arrive within {timeout:g} s", "body_timeout"
        ) from None
    except ConnectionResetError:
        raise CallbackError(
            400, "the connection closed before the body was whole", "body_incomplete"
        ) from None
    return bytes(body)


class CallbackCounters:
    """Callbacks accepted, and refused by reason (``signature``, ``replayed``, ``too_large``,
    ``unreadable``, ``not_stored``, ``nonce_unchecked`` when a shared store could not say whether
    it was a replay), for ``/stats``.

    A flood of bad callbacks must not flood the log: :meth:`refused` says to log the first of
    each reason, then at most one every ``quiet`` seconds (its line carries the count so far).
    """

    def __init__(self, quiet: float = 60.0) -> None:
        self.accepted = 0
        self.truncated = 0
        """Accepted callbacks with at least one field cut."""
        self.refusals: dict[str, int] = {}
        self._quiet = quiet
        self._last_logged: dict[str, float] = {}

    def refused(self, reason: str) -> bool:
        """Count one refusal; True when it deserves a log line."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        now = time.monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self._quiet:
            return False
        self._last_logged[reason] = now
        return True

    def snapshot(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "truncated": self.truncated,
            "refused": dict(self.refusals),
        }


_LINE_SAFE = {
    # Valid JSON inside a string, raw in orjson's output, yet line breaks to many readers
    # (str.splitlines, JavaScript) or terminal controls: written as \\u escapes instead.
    chr(code).encode(): f"\\u{code:04x}".encode()
    for code in (0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)
}


def one_line_json(record: Mapping[str, object]) -> bytes:
    """``record`` as one JSON line that every line reader sees as one line: orjson escapes
    the C0 controls, this the rest (DEL, C1, U+2028, U+2029). Lossless: a JSON reader reads back
    the same strings. (UTF-8 is self-synchronising, so these byte runs are only ever these
    characters.)"""
    line = orjson.dumps(record)
    for raw, escaped in _LINE_SAFE.items():
        if raw in line:
            line = line.replace(raw, escaped)
    return line + b"\n"


class WebhookLog(Closeable):
    """Appends each callback to a file as one JSON object per line (:func:`one_line_json`).

    A line holds the callback's fields as received (each cut to :data:`MAX_FIELD_CHARS`), then
    ``receivedAt``, ``signature`` and, when a field was cut, ``truncated`` (these win over a
    received field of the same name). Each line is written unbuffered with one call, so a crash
    of the process loses no line already written; a write that fails (the disk full) raises
    :class:`OSError` and leaves no partial line behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("ab", buffering=0)
        self._size = self._file.seek(0, os.SEEK_END)

    def write(
        self, callback: StatusCallback, received_at: datetime, signature: SignatureCheck
    ) -> None:
        record: dict[str, object] = {
            **callback.fields,
            "receivedAt": format_utc(received_at),
            "signature": signature.value,
        }
        if callback.truncated:
            record["truncated"] = list(callback.truncated)
        line = one_line_json(record)
        try:
            written = 0
            while written < len(line):
                written += self._file.write(line[written:]) or 0
        except OSError:
            with contextlib.suppress(OSError):  # shrinking a file needs no space
                os.ftruncate(self._file.fileno(), self._size)
            raise
        self._size += len(line)

    def close(self) -> None:
        self._file.close()
