"""What a load is (:class:`LoadOptions`) and its caller audio; when each call starts is
:mod:`~vobiz_stream.emulator.load_profiles`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vobiz_stream.audio.speech import tone
from vobiz_stream.emulator.load_profiles import LoadProfile, profile_offset, start_offset
from vobiz_stream.emulator.options import CallOptions
from vobiz_stream.emulator.source import CallerSource, EmulatorError, read_caller_audio

__all__ = ["TONE_RATE", "LoadOptions", "load_audio", "start_offset"]

TONE_RATE = 8000
"""The rate of the default caller audio (a tone, or silence)."""


@dataclass(frozen=True)
class LoadOptions:
    """How many calls, how fast, how long, and the carrier each call emulates."""

    calls: int
    rate: float = 20.0
    """Calls started per second (over all processes); call ``i`` starts within its own slot
    ``[i / rate, (i + 1) / rate)``, at :func:`start_offset`. With a ``profile``, the highest
    start rate it reaches."""
    duration: float = 10.0
    """Seconds of caller audio per call: the audio is looped or cut to this length."""
    audio: Path | None = None
    """The caller's WAV; None is a generated 1 kHz tone (or silence, with ``silence``)."""
    silence: bool = False
    processes: int = 1
    call_options: CallOptions = field(default_factory=CallOptions)
    """The carrier of every call; ``frame_lateness`` is the load's own, and no call may write a
    WAV. With ``processes`` above 1 it is pickled, so ``on_event`` must be a picklable function."""
    grace: float = 30.0
    """Seconds past the last call's expected end before the calls still running are cancelled."""
    profile: LoadProfile = LoadProfile.STEADY
    """How the calls' starts are spread: steady, ramp, spike or soak."""
    scenario: Path | None = None
    """A scenario file each call follows as its caller (instead of ``audio``); ``duration``
    should then be its ``max_seconds``."""

    def check(self) -> None:
        """Raise :class:`EmulatorError` for values that cannot make a load."""
        if self.calls < 1:
            raise EmulatorError(f"calls must be at least 1, got {self.calls}")
        if not self.rate > 0 or math.isinf(self.rate):
            raise EmulatorError(f"rate must be a positive number of calls/s, got {self.rate}")
        if not self.duration > 0 or math.isinf(self.duration):
            raise EmulatorError(f"duration must be positive seconds, got {self.duration}")
        if not 1 <= self.processes <= self.calls:
            raise EmulatorError(
                f"processes must be between 1 and the number of calls ({self.calls}), "
                f"got {self.processes}"
            )
        if not self.grace >= 0:
            raise EmulatorError(f"grace must be zero or more seconds, got {self.grace}")
        if self.call_options.heard_path is not None or self.call_options.caller_path is not None:
            raise EmulatorError(
                "heard_path and caller_path name one file, and a load has many calls; "
                "use run_call for a call whose audio you want"
            )
        if self.call_options.hangup_after is not None:
            raise EmulatorError("hangup_after does not apply to a load: set duration instead")
        self.call_options.check()

    @property
    def deadline(self) -> float:
        """Wall seconds from the first call's start after which the load is cut short."""
        speed = self.call_options.speed
        last = profile_offset(self.profile, self.calls - 1, self.calls, self.rate)
        return last + self.duration / speed + self.grace


def load_audio(path: Path | None, duration: float, *, silence: bool = False) -> CallerSource:
    """The caller audio of every call: ``path`` (or a 1 kHz tone, or silence) looped or cut to
    exactly ``duration`` seconds."""
    if path is not None:
        source = read_caller_audio(path)
        if not len(source.pcm):
            raise EmulatorError(f"caller audio {path} has no samples")
        wanted = round(duration * source.rate)
        return CallerSource(
            np.resize(source.pcm, wanted).astype(np.int16), source.rate, source.source
        )
    wanted = round(duration * TONE_RATE)
    if silence:
        return CallerSource(np.zeros(wanted, dtype=np.int16), TONE_RATE)
    return CallerSource(tone(duration, TONE_RATE), TONE_RATE)
