"""Cutting a byte stream into the protocol's 20 ms frames, whatever chunks it arrives in."""

from __future__ import annotations

from vobiz_stream.errors import AudioError
from vobiz_stream.formats import AudioFormat, Encoding


def silence_byte(encoding: Encoding) -> int:
    """The byte value that is silence in ``encoding``: ``0xFF`` for mu-law, ``0x00`` for L16."""
    return 0xFF if encoding is Encoding.MULAW else 0x00


class FrameSlicer:
    """Turns chunks of any size into frames of exactly ``frame_bytes``, carrying the remainder.

    ``frame_bytes`` must be a whole number of samples of ``sample_width`` bytes, so frames start
    on sample boundaries even when a chunk ends in the middle of a sample.
    """

    __slots__ = ("_pending", "frame_bytes", "sample_width")

    def __init__(self, frame_bytes: int, sample_width: int = 1) -> None:
        if sample_width < 1 or frame_bytes < 1 or frame_bytes % sample_width:
            raise AudioError(
                f"a frame of {frame_bytes} bytes is not a whole number of "
                f"{sample_width}-byte samples"
            )
        self.frame_bytes = frame_bytes
        self.sample_width = sample_width
        self._pending = b""

    @classmethod
    def for_format(cls, audio_format: AudioFormat) -> FrameSlicer:
        """A slicer for 20 ms frames of ``audio_format``."""
        return cls(audio_format.frame_bytes, audio_format.encoding.sample_width)

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of their frame."""
        return len(self._pending)

    def push(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every frame now complete (possibly none)."""
        if self._pending:
            data = self._pending + data
        end = len(data) - len(data) % self.frame_bytes
        self._pending = data[end:]
        return [data[start : start + self.frame_bytes] for start in range(0, end, self.frame_bytes)]

    def flush(self, pad: int | None = None) -> bytes:
        """Return and forget the partial frame held back (``b""`` if none).

        With ``pad`` (a byte value, see :func:`silence_byte`) a partial frame is filled up to a
        whole frame. Raises :class:`AudioError`, keeping the bytes, if they end mid-sample.
        """
        rest = self._pending
        if len(rest) % self.sample_width:
            raise AudioError(
                f"the stream ended in the middle of a {self.sample_width}-byte sample "
                f"({len(rest)} bytes pending); call clear() to drop them"
            )
        self._pending = b""
        if pad is not None and rest:
            rest += bytes([pad]) * (self.frame_bytes - len(rest))
        return rest

    def clear(self) -> None:
        """Drop the partial frame held back (for example at a barge-in clear)."""
        self._pending = b""
