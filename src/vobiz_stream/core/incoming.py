"""The carrier's audio on one stream, I/O-free: decoded in arrival order (the L16 byte order
detected on the way), reported to whoever asked (a recorder, a listener at its own rate, the
speech detector)."""

from __future__ import annotations

from collections.abc import Callable

from vobiz_stream.audio import ByteOrder, Pcm, Resampler, decode_l16, encode_l16
from vobiz_stream.audio.vad import SpeechStarted
from vobiz_stream.core.inbound import InboundDecoder
from vobiz_stream.core.listening import CallerVoice
from vobiz_stream.core.protocol import Media, Track
from vobiz_stream.core.stream_events import (
    BargeIn,
    ByteOrderFound,
    CallerAudio,
    FrameSink,
    SpeechDetection,
    StreamEvent,
)
from vobiz_stream.formats import AudioFormat

_INBOUND = Track.INBOUND  # looked up per frame: a module name is cheaper than an enum member
_LITTLE = ByteOrder.LITTLE

SpeechStartedHook = Callable[[SpeechStarted, float, float], BargeIn | None]
"""Called with a speech start, its onset on the stream's clock and the time it was noticed."""


class IncomingAudio:
    """One started stream's inbound audio, from media frames to the events they make."""

    def __init__(
        self,
        audio_format: AudioFormat,
        byte_order: ByteOrder | None,
        caller_rate: int | None,
        caller_audio: bool,
        record: FrameSink | None,
    ) -> None:
        self.audio_format = audio_format
        self.decoder = InboundDecoder(audio_format, byte_order, on_decided=self._on_decided)
        self.caller_rate = caller_rate
        self.caller_audio = caller_audio
        self.record = record
        self.voice: CallerVoice | None = None
        self.on_speech_started: SpeechStartedHook | None = None
        self._found: ByteOrderFound | None = None
        self._arrivals: list[float] = []
        """Arrival times of the frames the decoder holds, oldest first."""
        self._resamplers: dict[Track, Resampler] = {}
        self.only_recorder: FrameSink | None = None
        self._update()

    def listen_for_speech(self, speech: SpeechDetection | None) -> None:
        self.voice = None if speech is None else CallerVoice(speech, self.audio_format.sample_rate)
        self._update()

    def listen(self, sample_rate: int | None) -> None:
        """Report :class:`CallerAudio` from now on, at ``sample_rate`` (None: the stream's)."""
        self.caller_audio = True
        self.caller_rate = sample_rate
        self._update()

    def _update(self) -> None:
        fast = self.decoder.settled and not self.caller_audio and self.voice is None
        self.only_recorder = self.record if fast else None
        """The recorder's sink, while each frame decodes alone (the byte order is known) and nothing
        else wants it: the stream's fast path. Else None."""

    def _on_decided(self, order: ByteOrder, frames: int) -> None:
        self._found = ByteOrderFound(order, frames)

    def push(self, media: Media, now: float, out: list[StreamEvent]) -> None:
        """One media frame that arrived at ``now``; raises for a payload that cannot be audio."""
        decoder = self.decoder
        if decoder.settled:
            self.deliver(media, decoder.decode(media), now, out)
            return
        decoded = decoder.push(media)
        if self._found is not None:
            out.append(self._found)
            self._found = None
            self._update()
        self._arrivals.append(now)
        arrivals = self._arrivals
        released, self._arrivals = arrivals[: len(decoded)], arrivals[len(decoded) :]
        for (frame, pcm), arrival in zip(decoded, released, strict=True):
            self.deliver(frame, encode_l16(pcm, _LITTLE), arrival, out)

    def deliver(self, media: Media, samples: bytes, arrival: float, out: list[StreamEvent]) -> None:
        """One frame's little-endian samples to whoever asked: recorder, listener, detector."""
        if self.record is not None:
            self.record(media, samples, arrival)
        detect = self.voice is not None and media.track is _INBOUND
        if self.caller_audio or detect:
            pcm = decode_l16(samples, _LITTLE)
            if self.caller_audio:
                out.append(self._caller_audio(pcm, media.track, media.timestamp))
            if detect:
                self._detect(pcm, arrival, out)

    def _caller_audio(self, pcm: Pcm, track: Track, timestamp: int | None) -> CallerAudio:
        stream_rate = self.audio_format.sample_rate
        rate = self.caller_rate or stream_rate
        if rate != stream_rate:
            resampler = self._resamplers.get(track)
            if resampler is None or resampler.out_rate != rate:
                resampler = self._resamplers[track] = Resampler(stream_rate, rate)
            pcm = resampler.process(pcm)
        return CallerAudio(pcm, rate, track, timestamp)

    def _detect(self, pcm: Pcm, arrival: float, out: list[StreamEvent]) -> None:
        voice = self.voice
        assert voice is not None
        for event in voice.push(pcm, arrival):
            out.append(event)
            if isinstance(event, SpeechStarted) and self.on_speech_started is not None:
                barge_in = self.on_speech_started(event, voice.onset_time(event, arrival), arrival)
                if barge_in is not None:
                    out.append(barge_in)

    def flush(self, out: list[StreamEvent]) -> None:
        """The end of the stream: the frames held for the byte order, the resamplers' tails."""
        for (frame, pcm), arrival in zip(self.decoder.flush(), self._arrivals, strict=False):
            self.deliver(frame, encode_l16(pcm, _LITTLE), arrival, out)
        self._arrivals = []
        if self.caller_audio:
            for track, resampler in self._resamplers.items():
                out.append(CallerAudio(resampler.flush(), resampler.out_rate, track))
