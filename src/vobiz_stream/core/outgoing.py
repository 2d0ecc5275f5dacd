"""The app's side of one stream, I/O-free: audio to play, checkpoints, clears, as wire frames.

Played audio is resampled to the outbound rate, cut into 20 ms frames, encoded once as the
``playAudio`` bytes the socket sends (:mod:`vobiz_stream.core.outbound`) and paced by the ledger
(:mod:`vobiz_stream.core.playback`) so the carrier never holds more than ``max_lead`` seconds of it.
A clear drops everything unsent and puts its ``clearAudio`` ahead of anything else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from vobiz_stream.audio import ByteOrder, FrameSlicer, Pcm, Resampler, as_pcm, decode_l16
from vobiz_stream.core.outbound import PlayAudioEncoder
from vobiz_stream.core.playback import HeardAudio, OutboundFrame, PlaybackLedger, PlayMark
from vobiz_stream.core.protocol import Checkpoint, ClearAudio, encode_bytes
from vobiz_stream.formats import OUTBOUND_RATES, AudioFormat, Encoding


def outbound_format_for(chosen: AudioFormat) -> AudioFormat:
    """``chosen`` if the carrier plays it, else L16 at 8 kHz (which it always plays)."""
    if chosen.sample_rate in OUTBOUND_RATES[chosen.encoding]:
        return chosen
    return AudioFormat(Encoding.L16, 8000)


class OutgoingAudio:
    """What the app queued for the caller, until it is due on the wire."""

    def __init__(
        self,
        audio_format: AudioFormat,
        byte_order: ByteOrder,
        max_lead: float,
        grace: float,
        mark: Callable[[str], PlayMark],
    ) -> None:
        self._mark = mark
        """Makes the mark of each play and checkpoint (the server's can be awaited)."""
        self.format = outbound_format_for(audio_format)
        self._byte_order = byte_order
        self.ledger = PlaybackLedger(max_lead, grace)
        self._slicer = FrameSlicer(
            AudioFormat(Encoding.L16, self.format.sample_rate).frame_bytes, 2
        )
        self._resampler: Resampler | None = None
        self._encoder: PlayAudioEncoder | None = None
        self._names = itertools.count(1)
        self._urgent: list[bytes] = []
        """``clearAudio`` frames to send before anything else."""
        self.clears = 0
        """Clears so far: a sender that sees it change drops what it was about to send."""
        self.clear_sent_at: float | None = None
        """When the last ``clearAudio`` left (was handed out by :meth:`due`), until confirmed."""
        self.checkpoints_sent: list[str] = []
        """Names of the checkpoints :meth:`due` handed out, until the driver takes them."""

    def play(
        self, audio: Pcm | bytes, sample_rate: int, final: bool, stream_id: str | None
    ) -> PlayMark:
        pcm = decode_l16(audio, ByteOrder.LITTLE) if isinstance(audio, bytes) else as_pcm(audio)
        resampler = self._resampler
        if resampler is None or resampler.in_rate != sample_rate:
            resampler = self._resampler = Resampler(sample_rate, self.format.sample_rate)
        converted = resampler.process(pcm)
        if final:
            converted = np.concatenate([converted, resampler.flush()])
        chunks = self._slicer.push(converted.astype("<i2", copy=False).tobytes())
        if final:
            tail = self._slicer.flush(pad=0)
            if tail:
                chunks.append(tail)
        encoder = self._encoder
        if encoder is None or encoder.stream_id != stream_id:
            encoder = self._encoder = PlayAudioEncoder(self.format, self._byte_order, stream_id)
        handle = self._mark(f"play-{next(self._names)}")
        self.ledger.enqueue(encoder.frames(chunks), handle)
        return handle

    def checkpoint(self, name: str) -> PlayMark:
        handle = self._mark(name)
        self.ledger.enqueue([], handle)
        return handle

    def clear(self, now: float, stream_id: str | None) -> list[PlayMark]:
        """Drop all unsent audio, void the checkpoints and queue a ``clearAudio`` first."""
        voided = self.ledger.clear(now)
        self._slicer.clear()
        if self._resampler is not None:
            self._resampler.reset()
        self._urgent.append(encode_bytes(ClearAudio(stream_id=stream_id)))
        self.clears += 1
        return voided

    def due(self, now: float, stream_id: str | None) -> list[bytes]:
        """The frames to send now, in order: a pending ``clearAudio``, then paced audio and
        the checkpoints that follow it."""
        out: list[bytes] = []
        if self._urgent:
            out, self._urgent = self._urgent, []
            self.clear_sent_at = now
        for item in self.ledger.due(now):
            if isinstance(item, OutboundFrame):
                out.append(item.wire)
            else:
                out.append(encode_bytes(Checkpoint(item.name, stream_id)))
                self.checkpoints_sent.append(item.name)
        return out

    def next_deadline(self, now: float) -> float | None:
        if self._urgent:
            return now
        return self.ledger.next_deadline(now)

    def cleared(self, now: float) -> float | None:
        """The carrier confirmed a clear: its round trip, or None if none was in flight."""
        if self.clear_sent_at is None:
            return None
        round_trip = now - self.clear_sent_at
        self.clear_sent_at = None
        return round_trip

    def heard(self, now: float) -> list[HeardAudio]:
        return self.ledger.pop_heard(now)

    def playing(self, now: float) -> bool:
        """The caller may be hearing app audio now, or is about to."""
        return self.ledger.lead(now) > 0 or self.ledger.pending_seconds > 0
