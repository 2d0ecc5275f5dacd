"""The app's audio as ``playAudio`` frames: encoded once, built as the bytes the socket sends.

A handler's audio reaches this module as 20 ms frames of little-endian L16 at the outbound rate
(the PCM the heard-channel recording keeps). Each frame is encoded to the stream's outbound
format, base64-encoded and spliced into a template of the whole JSON frame, once, when the
handler plays it; the sender then hands those bytes to the socket as they are. The template is
made by :func:`~.protocol.encode_bytes` itself, so the frames are byte for byte what
the reference encoder writes, at about a third of its cost (0.8 us against 2.4 us for a frame of
L16 at 8 kHz).
"""

from __future__ import annotations

import binascii

from vobiz_stream.audio import ByteOrder, decode_l16, encode_l16, encode_mulaw
from vobiz_stream.core.playback import OutboundFrame
from vobiz_stream.core.protocol import PlayAudio, encode_bytes
from vobiz_stream.errors import ProtocolError
from vobiz_stream.formats import AudioFormat, Encoding

_b2a_base64 = binascii.b2a_base64
_EMPTY_PAYLOAD = b'"payload":""'


class PlayAudioEncoder:
    """The ``playAudio`` frames of one stream in one outbound format and byte order."""

    def __init__(self, outbound: AudioFormat, byte_order: ByteOrder, stream_id: str | None) -> None:
        self.stream_id = stream_id
        """The ``streamId`` the frames carry (a session makes a new encoder if it changes)."""
        text = encode_bytes(
            PlayAudio(b"", outbound.encoding, outbound.sample_rate, stream_id)
        ).replace(b"%", b"%%")
        if text.count(_EMPTY_PAYLOAD) != 1:
            raise ProtocolError(f"cannot make a playAudio template for stream id {stream_id!r}")
        self._template = text.replace(_EMPTY_PAYLOAD, b'"payload":"%b"')
        self._mulaw = outbound.encoding is Encoding.MULAW
        self._swap = not self._mulaw and byte_order is ByteOrder.BIG

    def frames(self, chunks: list[bytes]) -> list[OutboundFrame]:
        """A frame per chunk of little-endian L16 (the last may be short); ``pcm`` is the chunk."""
        template = self._template
        return [
            OutboundFrame(template % _b2a_base64(payload, newline=False), chunk)
            for payload, chunk in zip(self._payloads(chunks), chunks, strict=True)
        ]

    def _payloads(self, chunks: list[bytes]) -> list[bytes]:
        """The chunks in the outbound encoding: themselves for little-endian L16."""
        if not (self._mulaw or self._swap) or not chunks:
            return chunks
        # One numpy pass over the whole batch, then cut at the frames' edges.
        samples = decode_l16(b"".join(chunks), ByteOrder.LITTLE)
        if self._mulaw:
            encoded, width = encode_mulaw(samples), 1
        else:
            encoded, width = encode_l16(samples, ByteOrder.BIG), 2
        payloads = []
        start = 0
        for chunk in chunks:
            end = start + len(chunk) // 2 * width
            payloads.append(encoded[start:end])
            start = end
        return payloads
