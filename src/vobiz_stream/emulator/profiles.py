"""How the emulated carrier speaks: the three carrier profiles, without I/O.

Vobiz's live calls and its published documents disagree (the shape of ``start``, whether a
``stop`` comes, the byte order of L16), and the documents call some of what a lenient carrier
takes invalid. An app that passes under every profile works whichever way Vobiz goes next:

* ``live``: what Vobiz sends today: the nested ``start`` with live-shape ``media``, no ``stop``
  (the socket just closes), little-endian L16. Sloppy commands are acted on and counted.
* ``documented``: what the published documents describe: the flat ``start`` (with ``from``,
  ``to``, ``direction``, ``contentType``), ``media`` naming its format, a ``stop`` before the
  socket closes, big-endian (network order) L16.
* ``strict``: ``documented``, and it also refuses what the documents call invalid: a command
  without the ``streamId`` of the stream, a command on a stream that is not bidirectional, a
  ``playAudio`` whose ``media`` lacks a bare ``contentType`` (``audio/x-l16``,
  ``audio/x-mulaw``) or a ``sampleRate``. A refused command is not acted on and fails the call.
"""

from __future__ import annotations

from enum import StrEnum

import orjson

from vobiz_stream.audio import ByteOrder
from vobiz_stream.logtext import loggable

__all__ = ["DOCUMENTED_CONTENT_TYPES", "CarrierProfile", "undocumented_play_audio"]

DOCUMENTED_CONTENT_TYPES = frozenset({"audio/x-l16", "audio/x-mulaw"})
"""The ``contentType`` values the documents give a ``playAudio``: bare, with no ``;rate``."""


class CarrierProfile(StrEnum):
    """Which Vobiz the emulated carrier plays (see the module's description)."""

    LIVE = "live"
    DOCUMENTED = "documented"
    STRICT = "strict"

    @property
    def flat_start(self) -> bool:
        """The documents' flat ``start`` and self-describing ``media`` (else the live shapes)."""
        return self is not CarrierProfile.LIVE

    @property
    def sends_stop(self) -> bool:
        """A ``stop`` before the socket closes at the end of the call."""
        return self is not CarrierProfile.LIVE

    @property
    def l16_byte_order(self) -> ByteOrder:
        """The byte order of the caller's L16: little-endian live, network order documented."""
        return ByteOrder.LITTLE if self is CarrierProfile.LIVE else ByteOrder.BIG

    @property
    def refuses_invalid(self) -> bool:
        """Commands the documents call invalid are refused rather than acted on."""
        return self is CarrierProfile.STRICT

    def describe(self) -> str:
        """One line for reports: the profile and what it means on the wire."""
        refuses = "; refuses what the documents call invalid" if self.refuses_invalid else ""
        if self.flat_start:
            return (
                f"carrier profile {self.value}: flat start, a stop at the end, "
                f"big-endian L16{refuses}"
            )
        return f"carrier profile {self.value}: nested start, no stop, little-endian L16"


def undocumented_play_audio(text: bytes) -> str | None:
    """What makes a ``playAudio`` frame (already parsed once as valid) differ from the
    documents' form, or None: ``media.contentType`` must be bare and ``media.sampleRate`` given
    as a number."""
    try:
        media = orjson.loads(text).get("media")
    except (orjson.JSONDecodeError, AttributeError):
        return "not a JSON object"
    if not isinstance(media, dict):
        return "no media object"
    content_type = media.get("contentType")
    if content_type not in DOCUMENTED_CONTENT_TYPES:
        return (
            f"media.contentType {loggable(repr(content_type), 40)} is not one of "
            f"{', '.join(sorted(DOCUMENTED_CONTENT_TYPES))}"
        )
    rate = media.get("sampleRate")
    if not isinstance(rate, int) or isinstance(rate, bool):
        return "media.sampleRate is missing or not a whole number"
    return None
