"""A small streaming voice-activity detector on frame energy, for barge-in and utterance ends.

Telephone audio is band-limited and its background is usually quiet comfort noise, so frame
energy against a threshold, with a short onset and a longer hang-over, separates speech from
pauses well enough to know when the caller starts talking over the agent and when they stop.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from vobiz_stream.audio import Pcm


class VoiceChange(StrEnum):
    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"


class EnergyVad:
    """Feed PCM chunks to :meth:`update`; it reports when speech starts and ends.

    Speech starts after ``onset_ms`` of frames above ``threshold_dbfs`` and ends after
    ``hangover_ms`` below it.
    """

    def __init__(
        self,
        sample_rate: int,
        threshold_dbfs: float = -40.0,
        onset_ms: int = 60,
        hangover_ms: int = 500,
    ) -> None:
        self.sample_rate = sample_rate
        self._threshold = 32768.0 * 10 ** (threshold_dbfs / 20)
        self._onset = sample_rate * onset_ms // 1000
        self._hangover = sample_rate * hangover_ms // 1000
        self._loud_run = 0
        self._quiet_run = 0
        self.speaking = False

    def update(self, pcm: Pcm) -> VoiceChange | None:
        """Take the next chunk; return the change it caused, if any."""
        if not len(pcm):
            return None
        rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
        if rms >= self._threshold:
            self._loud_run += len(pcm)
            self._quiet_run = 0
        else:
            self._quiet_run += len(pcm)
            self._loud_run = 0
        if not self.speaking and self._loud_run >= self._onset:
            self.speaking = True
            return VoiceChange.SPEECH_STARTED
        if self.speaking and self._quiet_run >= self._hangover:
            self.speaking = False
            return VoiceChange.SPEECH_ENDED
        return None
