"""Listening for the caller's voice on one stream, I/O-free: the detector and the arrival times
that place a speech onset on the stream's clock (for barge-in timing)."""

from __future__ import annotations

from collections import deque

from vobiz_stream.audio import Pcm
from vobiz_stream.audio.vad import (
    SpeechStarted,
    VoiceActivityDetector,
    VoiceEvent,
    WebRtcClassifier,
)
from vobiz_stream.core.stream_events import SpeechDetection


class CallerVoice:
    """The caller's speech, as :class:`~vobiz_stream.audio.vad.VoiceActivityDetector` hears it."""

    def __init__(self, speech: SpeechDetection, sample_rate: int) -> None:
        self.settings = speech
        self._detector = VoiceActivityDetector(
            sample_rate,
            classifier=WebRtcClassifier(sample_rate, speech.aggressiveness),
            start_ms=speech.start_ms,
            stop_ms=speech.stop_ms,
        )
        self._window = (speech.start_ms + 200) / 1000  # the onset is at most start_ms back
        self._arrivals: deque[tuple[float, float]] = deque()
        """(audio seconds at the end of a frame, its arrival) for recent frames."""

    def push(self, pcm: Pcm, arrival: float) -> list[VoiceEvent]:
        """The caller's audio that arrived at ``arrival``; the speech starts and ends in it."""
        detector = self._detector
        position = detector.position
        arrivals = self._arrivals
        arrivals.append((position + len(pcm) / detector.sample_rate, arrival))
        while arrivals[0][0] < position - self._window:
            arrivals.popleft()
        return detector.push(pcm)

    def onset_time(self, speech: SpeechStarted, now: float) -> float:
        """When the caller started the speech, on the stream's clock: a frame arrives once it
        has been spoken, so the onset is its arrival less the audio after the onset in it."""
        onset_time = now
        for end, arrival in reversed(self._arrivals):
            if end <= speech.onset:
                break
            onset_time = arrival - (end - speech.onset)
        return onset_time
