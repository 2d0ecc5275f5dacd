"""How the emulated carrier behaves on one call (:class:`CallOptions`), and their checks."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vobiz_stream.audio import ByteOrder
from vobiz_stream.core.protocol import DTMF_DIGITS
from vobiz_stream.emulator.callbacks import CALLBACK_TIMEOUT, SignatureForm, SignatureVersion
from vobiz_stream.emulator.faults import Faults
from vobiz_stream.emulator.playout import DEFAULT_JITTER_BUFFER, DEFAULT_QUEUE_CAP
from vobiz_stream.emulator.report import TimelineEntry
from vobiz_stream.emulator.source import EmulatorError

__all__ = ["CallOptions", "parse_key_press"]


def parse_key_press(text: str) -> tuple[float, str]:
    """``SECONDS:DIGIT`` (``5:4``, ``7.5:#``) as a :attr:`CallOptions.dtmf` entry."""
    seconds, _, digit = text.partition(":")
    try:
        at = float(seconds)
    except ValueError:
        at = math.nan
    if not at >= 0 or len(digit) != 1 or digit not in DTMF_DIGITS:
        raise EmulatorError(
            f"a key press is SECONDS:DIGIT with a digit among 0-9 * # A-D (5:4), got {text!r}"
        )
    return at, digit


@dataclass(frozen=True)
class CallOptions:
    """How the emulated carrier behaves; the defaults are a live Vobiz call."""

    from_number: str = "+919876543210"
    to_number: str = "+918045678901"
    account_id: str = "500025"
    legacy_shape: bool = False
    """Send the legacy flat ``start`` and legacy-shape ``media`` instead of the live shapes."""
    l16_byte_order: ByteOrder = ByteOrder.LITTLE
    """Byte order of the L16 the carrier sends: little-endian, as live Vobiz sends it (big-endian,
    network order, is what older documents describe)."""
    playback_byte_order: ByteOrder = ByteOrder.LITTLE
    """How the carrier reads ``playAudio`` L16."""
    send_stop: bool = False
    """Send the documented ``stop`` before closing (live Vobiz sends none)."""
    hangup_after: float | None = None
    """Call seconds until hangup: cuts the caller audio short or pads it with silence."""
    speed: float = 1.0
    """Run the call's clock this many times faster than the wall clock (for tests)."""
    heard_path: Path | None = None
    """Write what the caller heard here (WAV at the stream's rate, on the call clock)."""
    caller_path: Path | None = None
    """Write the caller audio exactly as sent (after resampling and padding)."""
    queue_cap: float = DEFAULT_QUEUE_CAP
    jitter_buffer: float = DEFAULT_JITTER_BUFFER
    """Seconds of the app's audio the carrier holds before playing it out (0: none): app frames
    up to this late are not heard as gaps."""
    late_tolerance: float = 0.005
    """Wall-clock seconds after its deadline past which a media frame counts as late."""
    http_timeout: float = 10.0
    on_event: Callable[[TimelineEntry], None] | None = None
    """Called with each timeline entry as it happens (the CLI prints them)."""
    frame_lateness: array[float] | None = None
    """Also append here how late each media frame left, in wall-clock seconds after its deadline:
    a load's calls share one array, its pacing histogram."""
    auth_token: str | None = None
    """Sign status callbacks with ``X-Vobiz-Signature-V3`` (or ``signature``) keyed by this
    token."""
    signature: SignatureVersion = SignatureVersion.V3
    """Which signature signed callbacks carry: V3, or the older V2."""
    signature_form: SignatureForm = SignatureForm.SDK
    """What the signature covers: as Vobiz's Python SDK verifies it (the URL and the sorted
    fields), or as the docs describe it (the full URL alone)."""
    callback_timeout: float = CALLBACK_TIMEOUT
    """Wall-clock seconds a status callback may take before it counts as failed."""
    retry_delay: float = 0.5
    """Call-clock seconds between a dropped socket and the reconnect (``maxRetries``)."""
    faults: Faults = field(default_factory=Faults)
    """Jitter, bunched, dropped and reordered frames, a cut connection (none by default)."""
    dtmf: tuple[tuple[float, str], ...] = ()
    """Keys the caller presses: (call seconds, digit) pairs, each sent as a ``dtmf`` event."""

    def check(self) -> None:
        for at, digit in self.dtmf:
            if not at >= 0 or len(digit) != 1 or digit not in DTMF_DIGITS:
                raise EmulatorError(
                    f"a key press is (seconds >= 0, one of 0-9 * # A-D), got ({at}, {digit!r})"
                )
        if not self.speed > 0:
            raise EmulatorError(f"speed must be positive, got {self.speed}")
        if self.hangup_after is not None and not self.hangup_after > 0:
            raise EmulatorError(f"hangup_after must be positive seconds, got {self.hangup_after}")
        if not self.queue_cap > 0:
            raise EmulatorError(f"queue_cap must be positive seconds, got {self.queue_cap}")
        if not 0 <= self.jitter_buffer < self.queue_cap:
            raise EmulatorError(
                "jitter_buffer must be 0 or more seconds, under queue_cap, "
                f"got {self.jitter_buffer}"
            )
        if not self.callback_timeout > 0:
            raise EmulatorError(
                f"callback_timeout must be positive seconds, got {self.callback_timeout}"
            )
        if not self.retry_delay >= 0:
            raise EmulatorError(f"retry_delay must be 0 or more seconds, got {self.retry_delay}")
        self.faults.check()
