"""The messages of the Vobiz stream protocol as values: what the carrier sends
(:data:`CarrierEvent`) and what the app sends back (:data:`AppCommand`), with the bounds on their
text fields."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeAlias

import msgspec

from vobiz_stream.formats import AudioFormat, Encoding

MAX_ID_CHARS = 128
"""Most characters of an id (``streamId``, ``callId``, ``accountId``) or phone number in a frame."""

MAX_NAME_CHARS = 256
"""Most characters of a name in a frame: an event name, a checkpoint name, a stop reason, the
``extra_headers`` text."""

DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""The keys a ``dtmf`` event may name, one per event."""


class Track(StrEnum):
    """Which leg a media frame carries: the caller (``inbound``) or the other leg (``outbound``)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class StartShape(StrEnum):
    """The two wire shapes of ``start``: live Vobiz nests the metadata, the legacy shape is flat."""

    NESTED = "nested"
    FLAT = "flat"


# --- carrier to app --------------------------------------------------------------------------


class Start(msgspec.Struct, frozen=True):
    """Once per socket: who the call is and what audio comes.

    ``media_format`` is None when the frame does not say; the app then falls back to the format
    its answer XML asked for. ``tracks`` is in canonical order (inbound before outbound).
    """

    stream_id: str | None = None
    call_id: str | None = None
    account_id: str | None = None
    tracks: tuple[Track, ...] = (Track.INBOUND,)
    media_format: AudioFormat | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    sequence_number: int | None = None
    extra_headers: str | None = None
    shape: StartShape = StartShape.NESTED


class Media(msgspec.Struct, frozen=True):
    """20 ms of one track's audio. Only ``payload`` is always there.

    ``media_format`` is set only by the legacy shape, which repeats the format in every frame.
    ``timestamp`` is epoch milliseconds on the carrier's clock; ``chunk`` a per-stream index.
    """

    payload: bytes
    track: Track = Track.INBOUND
    timestamp: int | None = None
    chunk: int | None = None
    sequence_number: int | None = None
    stream_id: str | None = None
    media_format: AudioFormat | None = None


class PlayedStream(msgspec.Struct, frozen=True):
    """Everything queued before checkpoint ``name`` has played (``playedStream``/``played``)."""

    name: str
    stream_id: str | None = None
    sequence_number: int | None = None


class ClearedAudio(msgspec.Struct, frozen=True):
    """The carrier applied a ``clearAudio``: its queue is empty."""

    stream_id: str | None = None
    sequence_number: int | None = None


class Dtmf(msgspec.Struct, frozen=True):
    """The caller pressed a key."""

    digit: str
    stream_id: str | None = None
    sequence_number: int | None = None


class Stop(msgspec.Struct, frozen=True):
    """The carrier ends the stream (legacy shape only; live Vobiz just closes the socket)."""

    stream_id: str | None = None
    reason: str | None = None
    sequence_number: int | None = None


class Unknown(msgspec.Struct, frozen=True):
    """An event this version does not know: kept whole so it can be logged, never fatal."""

    event: str
    fields: Mapping[str, Any] = msgspec.field(default_factory=dict)


# --- app to carrier --------------------------------------------------------------------------


class PlayAudio(msgspec.Struct, frozen=True):
    """Queue raw mono audio for the caller. ``payload`` holds samples, no file header."""

    payload: bytes
    encoding: Encoding = Encoding.L16
    sample_rate: int = 8000
    stream_id: str | None = None

    @property
    def media_format(self) -> AudioFormat:
        return AudioFormat(self.encoding, self.sample_rate)


class Checkpoint(msgspec.Struct, frozen=True):
    """Ask for ``playedStream`` named ``name`` once everything queued before it has played."""

    name: str
    stream_id: str | None = None


class ClearAudio(msgspec.Struct, frozen=True):
    """Drop everything queued; pending checkpoints never get ``playedStream``."""

    stream_id: str | None = None


class StopCommand(msgspec.Struct, frozen=True):
    """The app ends the stream (wire event ``stop`` from app to carrier)."""

    stream_id: str | None = None


CarrierEvent: TypeAlias = Start | Media | PlayedStream | ClearedAudio | Dtmf | Stop | Unknown
AppCommand: TypeAlias = PlayAudio | Checkpoint | ClearAudio | StopCommand | Unknown
