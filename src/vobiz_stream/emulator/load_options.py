"""What a load is (:class:`LoadOptions`), when each of its calls starts, and its caller audio."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vobiz_stream.audio.speech import tone
from vobiz_stream.emulator.options import CallOptions
from vobiz_stream.emulator.source import CallerSource, EmulatorError, read_caller_audio

__all__ = ["TONE_RATE", "LoadOptions", "load_audio", "start_offset"]

TONE_RATE = 8000
"""The rate of the default caller audio (a tone, or silence)."""

_GOLDEN_FRACTION = (5**0.5 - 1) / 2


def start_offset(index: int, rate: float) -> float:
    """Seconds from the load's start to when call ``index`` is placed.

    Each call has a slot of ``1 / rate`` seconds and starts at a point inside it taken from the
    golden-ratio sequence, so the calls' 20 ms frame deadlines fall evenly across the frame
    period, as real calls' do. Calls placed exactly on the rate's grid would send in lockstep:
    at 50 calls/s every call's frame would be due in the same millisecond, and the load would
    measure its own bursts instead of the app.
    """
    return (index + index * _GOLDEN_FRACTION % 1.0) / rate


@dataclass(frozen=True)
class LoadOptions:
    """How many calls, how fast, how long, and the carrier each call emulates."""

    calls: int
    rate: float = 20.0
    """Calls started per second (over all processes); call ``i`` starts within its own slot
    ``[i / rate, (i + 1) / rate)``, at :func:`start_offset`."""
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
        return self.calls / self.rate + self.duration / speed + self.grace


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
