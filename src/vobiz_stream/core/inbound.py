"""Turning one stream's inbound media payloads into PCM, byte order included.

mu-law decodes directly. L16 needs its byte order (protocol.md section 4), which is either given
or detected from the audio. While detecting, frames are held back (at most ``hold_frames``) so that
none is decoded in the wrong order; if the audio does not decide by then (a very short call, or
audio that never tells), they are released in the best guess from the evidence so far, and
detection goes on for the frames after them. A frame that reads the same in either order (digital
silence, such as the all-``0xFF`` frames a carrier sends as a call winds up or down) is not held
unless frames are held before it: holding it would only delay it.

A frame is 20 ms of audio; one with more than :data:`LONGEST_FRAME_SECONDS` of it is refused
(:class:`~vobiz_stream.errors.AudioError`), so a single frame cannot stretch the recording.
"""

from __future__ import annotations

from collections.abc import Callable

from vobiz_stream.audio import (
    ByteOrder,
    ByteOrderDetector,
    Pcm,
    decode_l16,
    decode_mulaw,
    encode_l16,
    l16_little_endian,
    swap_bytes,
)
from vobiz_stream.core.protocol import Media
from vobiz_stream.errors import AudioError
from vobiz_stream.formats import INBOUND_RATES, AudioFormat, Encoding

Decoded = list[tuple[Media, Pcm]]

_MULAW = Encoding.MULAW  # looked up per frame: a module name is cheaper than an enum member

LONGEST_FRAME_SECONDS = 1
"""Most audio one media frame may carry (the carrier sends 20 ms)."""


def longest_payload(audio_format: AudioFormat) -> int:
    """Bytes of :data:`LONGEST_FRAME_SECONDS` of audio in ``audio_format``."""
    return audio_format.sample_rate * audio_format.encoding.sample_width * LONGEST_FRAME_SECONDS


LONGEST_INBOUND_PAYLOAD = max(
    longest_payload(AudioFormat(encoding, rate))
    for encoding, rates in INBOUND_RATES.items()
    for rate in rates
)
"""The longest payload a frame may have in any inbound format (for a frame whose format is not
known yet)."""


def _refuse_if_too_long(media: Media, stream_format: AudioFormat) -> None:
    """Raise for a payload longer than a frame may be: in the frame's own encoding, if it names
    one, at the stream's rate (the rate its samples are recorded at, whatever the frame says)."""
    audio_format = stream_format
    if media.media_format is not None:
        audio_format = AudioFormat(media.media_format.encoding, stream_format.sample_rate)
    if len(media.payload) > longest_payload(audio_format):
        raise AudioError(
            f"media payload of {len(media.payload)} bytes holds more than "
            f"{LONGEST_FRAME_SECONDS} s of {audio_format.content_type}"
        )


class InboundDecoder:
    """Decodes media frames in arrival order; :meth:`push` may return held frames with new ones.

    ``byte_order`` None means detect, falling back to ``default_order``. ``on_decided`` is called
    once, with the order and the number of frames seen, when detection settles.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        byte_order: ByteOrder | None = None,
        *,
        default_order: ByteOrder = ByteOrder.LITTLE,
        hold_frames: int = 25,
        on_decided: Callable[[ByteOrder, int], None] | None = None,
    ) -> None:
        self.audio_format = audio_format
        self._l16 = audio_format.encoding is Encoding.L16
        self._longest = longest_payload(audio_format)
        """A payload up to this long, in the stream's format, passes with one comparison."""
        self._detector = None if byte_order is not None else ByteOrderDetector(default_order)
        self._order = byte_order if byte_order is not None else default_order
        self._hold_frames = hold_frames
        self._held: list[Media] = []
        self._seen = 0
        self._on_decided = on_decided
        self.settled = self._detector is None
        """The byte order is known and nothing is held: each frame decodes alone
        (:meth:`decode`), as it comes."""

    @property
    def byte_order(self) -> ByteOrder:
        """The order L16 is read in now: decided, else the best guess from the evidence so far."""
        return self._order if self._detector is None else self._detector.best_guess

    def decode(self, media: Media) -> bytes:
        """One frame of a :attr:`settled` stream as little-endian L16 bytes: the samples
        :meth:`push` would return for it alone, laid out as the WAV holds them."""
        if len(media.payload) > self._longest or media.media_format is not None:
            _refuse_if_too_long(media, self.audio_format)
        if media.media_format is None and self._l16:
            return l16_little_endian(media.payload, self._order)  # every frame, once decided
        encoding = media.media_format.encoding if media.media_format else self.audio_format.encoding
        if encoding is _MULAW:
            return encode_l16(decode_mulaw(media.payload), ByteOrder.LITTLE)
        return l16_little_endian(media.payload, self._order)

    def push(self, media: Media) -> Decoded:
        """Take one frame; return the frames ready to use, in order."""
        if len(media.payload) > self._longest or media.media_format is not None:
            _refuse_if_too_long(media, self.audio_format)
        detector = self._detector
        if detector is None:
            return [(media, decode_l16(self.decode(media), ByteOrder.LITTLE))]
        encoding = media.media_format.encoding if media.media_format else self.audio_format.encoding
        if encoding is _MULAW:
            return [(media, decode_mulaw(media.payload))]
        self._seen += 1
        detector.observe(media.payload)
        if not self._held and not detector.decided and swap_bytes(media.payload) == media.payload:
            return [(media, decode_l16(media.payload, self.byte_order))]  # reads the same anyway
        if detector.decided:
            self._detector = None
            self.settled = True
            self._order = detector.order
            if self._on_decided is not None:
                self._on_decided(self._order, self._seen)
        elif len(self._held) < self._hold_frames and self._seen <= self._hold_frames:
            self._held.append(media)
            return []
        if not self._held:
            return [(media, decode_l16(media.payload, self.byte_order))]
        self._held.append(media)
        return self.flush()

    def flush(self) -> Decoded:
        """Release every held frame in the current order (at the end of a stream)."""
        held, self._held = self._held, []
        order = self.byte_order
        return [(media, decode_l16(media.payload, order)) for media in held]
