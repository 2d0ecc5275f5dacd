"""The caller's side of an emulated call: an audio file turned into the stream's 20 ms frames.

Many calls of a load share one :class:`CallerSource`, so what each call makes of it (the audio at
the stream's rate, its frames in base64) is made once and kept on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vobiz_stream.audio import (
    ByteOrder,
    FrameSlicer,
    Pcm,
    Resampler,
    encode_l16,
    encode_mulaw,
    silence_byte,
)
from vobiz_stream.audio.files import AudioFile, read_audio_file
from vobiz_stream.core.protocol import encode_payload
from vobiz_stream.errors import AudioError, VobizStreamError
from vobiz_stream.formats import AudioFormat, Encoding

__all__ = ["CallerSource", "EmulatorError", "caller_frames", "read_caller_audio"]


class EmulatorError(VobizStreamError, ValueError):
    """The emulator cannot run as asked (unreadable caller audio, bad option values)."""


@dataclass(frozen=True, slots=True)
class CallerSource:
    """What the caller says: mono int16 samples at ``rate``; ``source`` is the file they came
    from, if any (to say what was converted)."""

    pcm: Pcm
    rate: int
    source: AudioFile | None = None
    _made: dict[tuple[object, ...], object] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate

    def at_rate(self, rate: int, seconds: float | None = None) -> Pcm:
        """The same audio at ``rate`` (whole file at once, so nothing is held back), cut or
        padded with silence to ``seconds`` when given."""
        key = ("pcm", rate, seconds)
        made = self._made.get(key)
        if made is None:
            pcm = self.pcm
            if rate != self.rate:
                resampler = Resampler(self.rate, rate)
                pcm = np.concatenate([resampler.process(pcm), resampler.flush()])
            if seconds is not None:
                wanted = round(seconds * rate)
                pcm = np.concatenate([pcm[:wanted], np.zeros(max(0, wanted - len(pcm)), np.int16)])
            made = self._made[key] = pcm
        assert isinstance(made, np.ndarray)
        return made

    def payloads(
        self, media_format: AudioFormat, byte_order: ByteOrder, seconds: float | None = None
    ) -> list[bytes]:
        """The audio as the stream's 20 ms frames, each in base64 as a ``media`` payload (the
        bytes :class:`~vobiz_stream.core.protocol.MediaEncoder` takes)."""
        key = ("payloads", media_format, byte_order, seconds)
        made = self._made.get(key)
        if made is None:
            frames = caller_frames(
                self.at_rate(media_format.sample_rate, seconds), media_format, byte_order
            )
            made = self._made[key] = [encode_payload(frame).encode() for frame in frames]
        assert isinstance(made, list)
        return made


def read_caller_audio(path: Path) -> CallerSource:
    """Read an audio file (any WAV, FLAC, Ogg, MP3...: :mod:`vobiz_stream.audio.files`) as
    mono int16 at its own rate."""
    try:
        source = read_audio_file(path)
    except AudioError as exc:
        raise EmulatorError(str(exc)) from None
    return CallerSource(source.pcm, source.rate, source)


def caller_frames(pcm: Pcm, media_format: AudioFormat, byte_order: ByteOrder) -> list[bytes]:
    """``pcm`` (at the format's rate) as 20 ms payloads; the last is padded with silence."""
    if media_format.encoding is Encoding.MULAW:
        data = encode_mulaw(pcm)
    else:
        data = encode_l16(pcm, byte_order)
    slicer = FrameSlicer.for_format(media_format)
    frames = slicer.push(data)
    last = slicer.flush(pad=silence_byte(media_format.encoding))
    return [*frames, last] if last else frames
