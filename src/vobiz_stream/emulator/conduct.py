"""How the app spoke to the carrier: every sloppy or hostile command, counted by kind.

Live Vobiz reports nothing on the socket about a bad command (it plays wrong formats as noise,
ignores what it does not understand), so an app can be wrong for months without knowing. The
emulator says it instead: each kind of mistake is counted, its first example kept (escaped and
cut short, since it comes from the app) and logged once, with what the carrier did about it.
Nothing here grows with the app's misbehaviour: one record per kind, whatever the app sends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from vobiz_stream.emulator.limits import MAX_APP_BYTES, describe_bytes
from vobiz_stream.logtext import loggable

__all__ = ["AppConduct", "AppWarning", "Misstep", "example_of"]

log = logging.getLogger("vobiz_stream.emulator")

EXAMPLE_CHARS = 160
"""How much of the first offending message a warning keeps (escaped)."""


class Misstep(StrEnum):
    """One kind of thing an app should not send; the value is its key in the report."""

    NO_STREAM_ID = "no_stream_id"
    WRONG_STREAM_ID = "wrong_stream_id"
    UNKNOWN_EVENT = "unknown_event"
    FORMAT_MISMATCH = "format_mismatch"
    INVALID_JSON = "invalid_json"
    MALFORMED = "malformed_command"
    BINARY_FRAME = "binary_frame"
    OVERSIZED = "oversized_message"
    UNDOCUMENTED_PLAY_AUDIO = "undocumented_play_audio"
    """Noticed by the ``strict`` carrier profile only."""
    ONE_WAY_COMMAND = "one_way_command"
    """Noticed by the ``strict`` carrier profile only (the others count ``ignored_commands``)."""


_CARRIER_DOES = {
    Misstep.NO_STREAM_ID: (
        "commands without streamId",
        "acted on (older Vobiz documents leave streamId out; current ones require it, so a "
        "carrier that checks would ignore them): send the streamId of the start message",
    ),
    Misstep.WRONG_STREAM_ID: (
        "commands naming another stream",
        "ignored: their streamId is not the stream on this socket (after a reconnect the "
        "streamId changes; take it from the newest start message)",
    ),
    Misstep.UNKNOWN_EVENT: (
        "commands with an unknown event",
        "ignored, as Vobiz ignores them; the app's commands are playAudio, checkpoint, "
        "clearAudio and stop",
    ),
    Misstep.FORMAT_MISMATCH: (
        "playAudio in another format than the stream's",
        "played, converted to the stream's format (playAudio may declare its own format, but "
        "converting costs quality; send the stream's format unless you mean it)",
    ),
    Misstep.INVALID_JSON: (
        "messages that are not JSON",
        "ignored: Vobiz says nothing on the socket, so the app never learns",
    ),
    Misstep.MALFORMED: (
        "commands the carrier cannot use",
        "dropped (a playAudio among them plays as silence)",
    ),
    Misstep.BINARY_FRAME: (
        "binary frames",
        "ignored: commands are JSON text frames",
    ),
    Misstep.OVERSIZED: (
        f"messages over the {describe_bytes(MAX_APP_BYTES)} cap",
        "the carrier closed the socket (1009, message too big): send audio in chunks of 20-60 ms",
    ),
}


_REFUSED = {
    Misstep.NO_STREAM_ID: (
        "commands without streamId",
        "refused (strict carrier): the published documents require the streamId of the start "
        "message in every command",
    ),
    Misstep.UNDOCUMENTED_PLAY_AUDIO: (
        "playAudio not in the documented form",
        "refused (strict carrier): media.contentType must be audio/x-l16 or audio/x-mulaw, "
        "with no ;rate, and media.sampleRate a number",
    ),
    Misstep.ONE_WAY_COMMAND: (
        "commands on a stream that is not bidirectional",
        'refused (strict carrier): playAudio, checkpoint and clearAudio need bidirectional="true" '
        "on the <Stream>",
    ),
}
"""What the ``strict`` carrier profile says instead: each of these fails the call."""

_FATAL = frozenset({Misstep.OVERSIZED})
"""Missteps after which the carrier closes the socket."""


@dataclass(slots=True)
class AppWarning:
    """``count`` messages of one kind; ``first`` is the first one's text, escaped and cut."""

    kind: str
    count: int
    first: str
    what: str
    """What they were, in words."""
    carrier: str
    """What the carrier did with them, and what to do instead."""
    fatal: bool = False
    """The stream could not go on as the app meant (the call exits non-zero)."""

    def __str__(self) -> str:
        return f"{self.what} ({self.count}): {self.carrier} (first: {self.first})"


def example_of(data: bytes | str) -> str:
    """A message from the app as a warning's example: escaped and cut, whatever its size."""
    if isinstance(data, bytes):
        # Decode only the head: the message may be megabytes.
        text = data[: EXAMPLE_CHARS * 4].decode("utf-8", "replace")
        if len(data) > EXAMPLE_CHARS * 4:
            return f"{loggable(text, EXAMPLE_CHARS)} ({len(data)} bytes)"
        return loggable(text, EXAMPLE_CHARS)
    return loggable(data, EXAMPLE_CHARS)


class AppConduct:
    """The app's missteps on one call, one :class:`AppWarning` per kind."""

    def __init__(self, call_id: str, *, strict: bool = False) -> None:
        self._call_id = call_id
        self._strict = strict
        self._warnings: dict[Misstep, AppWarning] = {}

    def note(self, kind: Misstep, example: str) -> AppWarning:
        """Count one misstep; the first of its kind keeps ``example`` (already escaped: see
        :func:`example_of`) and is logged."""
        warning = self._warnings.get(kind)
        if warning is None:
            refused = self._strict and kind in _REFUSED
            what, carrier = _REFUSED[kind] if refused else _CARRIER_DOES[kind]
            warning = self._warnings[kind] = AppWarning(
                kind.value, 0, example, what, carrier, fatal=refused or kind in _FATAL
            )
            log.warning(
                "call %s: the app sent %s: %s (first: %s); counted in the report from now on",
                self._call_id,
                warning.what,
                warning.carrier,
                warning.first,
            )
        warning.count += 1
        return warning

    @property
    def warnings(self) -> list[AppWarning]:
        return list(self._warnings.values())
