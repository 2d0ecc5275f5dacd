"""The one cap on what the emulator takes from an app: an answer body, one socket message.

One value for both, the same 1 MiB as the server's own ``max_message_bytes`` default: a
``playAudio`` of 20-60 ms (what Vobiz recommends) is a few kilobytes, and even 1 MiB holds 49 s
of 8 kHz L16 in base64. Anything larger is a bug or an attack, and the emulator says so instead
of buffering it.
"""

from __future__ import annotations

__all__ = ["MAX_APP_BYTES", "describe_bytes"]

MAX_APP_BYTES = 1 << 20
"""The most the emulator reads of one answer body or one message from the app."""


def describe_bytes(size: int) -> str:
    """``1 MiB (1048576 bytes)``: a size as people read it, with the exact count."""
    if size >= 1 << 20:
        return f"{size / (1 << 20):.3g} MiB ({size} bytes)"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.3g} KiB ({size} bytes)"
    return f"{size} bytes"
