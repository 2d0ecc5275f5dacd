"""Audio formats as the protocol names them: encodings, sample rates and content types.

The wire names encodings loosely (``audio/x-l16``, ``l16``, ``linear16``, ``audio/x-mulaw``,
``ulaw``, ``pcmu``...). Everything in vobiz-stream turns them into an :class:`Encoding` here, once,
at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vobiz_stream.errors import AudioError

FRAME_MS = 20
"""The carrier sends, and plays, audio in 20 ms frames."""
FRAME_SECONDS = FRAME_MS / 1000
"""One frame's length in seconds."""


class Encoding(StrEnum):
    """A sample encoding; the value is the bare content type used on the wire."""

    L16 = "audio/x-l16"
    MULAW = "audio/x-mulaw"

    @property
    def sample_width(self) -> int:
        """Bytes per sample."""
        return 2 if self is Encoding.L16 else 1


_ENCODING_ALIASES: dict[str, Encoding] = {
    "audio/x-l16": Encoding.L16,
    "audio/l16": Encoding.L16,
    "l16": Encoding.L16,
    "linear": Encoding.L16,
    "linear16": Encoding.L16,
    "pcm": Encoding.L16,
    "audio/x-mulaw": Encoding.MULAW,
    "audio/mulaw": Encoding.MULAW,
    "audio/x-ulaw": Encoding.MULAW,
    "audio/ulaw": Encoding.MULAW,
    "audio/basic": Encoding.MULAW,
    "mulaw": Encoding.MULAW,
    "ulaw": Encoding.MULAW,
    "pcmu": Encoding.MULAW,
    "g711_ulaw": Encoding.MULAW,
}

INBOUND_RATES: dict[Encoding, tuple[int, ...]] = {
    Encoding.L16: (8000, 16000),
    Encoding.MULAW: (8000,),
}
"""Rates the carrier may send to the app (docs/protocol.md section 4)."""

OUTBOUND_RATES: dict[Encoding, tuple[int, ...]] = {
    Encoding.L16: (8000, 16000, 24000),
    Encoding.MULAW: (8000,),
}
"""Rates the app may send in ``playAudio`` (docs/protocol.md section 4)."""


def parse_encoding(name: str) -> Encoding:
    """Read an encoding name the way the carrier writes it, case and ``x-`` prefix aside."""
    key = name.strip().lower()
    encoding = _ENCODING_ALIASES.get(key)
    if encoding is None and key.startswith("audio/x-"):
        encoding = _ENCODING_ALIASES.get(key.replace("audio/x-", "", 1))
    if encoding is None and key.startswith("audio/"):
        encoding = _ENCODING_ALIASES.get(key.replace("audio/", "", 1))
    if encoding is None:
        raise AudioError(
            f"unknown audio encoding {name!r}: expected L16 (audio/x-l16) or mu-law (audio/x-mulaw)"
        )
    return encoding


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """An encoding at a sample rate, mono (the only channel count the protocol has)."""

    encoding: Encoding
    sample_rate: int

    @property
    def content_type(self) -> str:
        """The XML/flat-start spelling, e.g. ``audio/x-l16;rate=8000``."""
        return f"{self.encoding.value};rate={self.sample_rate}"

    @property
    def frame_bytes(self) -> int:
        """Bytes in one 20 ms frame."""
        return self.sample_rate * FRAME_MS // 1000 * self.encoding.sample_width

    @property
    def frame_samples(self) -> int:
        """Samples in one 20 ms frame."""
        return self.sample_rate * FRAME_MS // 1000


DEFAULT_FORMAT = AudioFormat(Encoding.L16, 8000)
"""What the carrier sends when nothing else is said (docs/protocol.md section 1)."""


def parse_content_type(text: str, default_rate: int | None = None) -> AudioFormat:
    """Parse ``audio/x-l16;rate=16000`` (parameters in any order; rate may be missing).

    A missing rate takes ``default_rate``, else 8000 (the only rate mu-law has, and L16's default).
    """
    parts = [part.strip() for part in text.split(";")]
    encoding = parse_encoding(parts[0])
    rate = default_rate if default_rate is not None else 8000
    for param in parts[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            try:
                rate = int(value.strip())
            except ValueError:
                raise AudioError(f"content type {text!r} has a rate that is not a number") from None
    if rate <= 0:
        raise AudioError(f"content type {text!r} has a rate that is not positive")
    return AudioFormat(encoding, rate)
