"""The carrier side: emulated Vobiz calls against an app's answer URL and stream socket, one
at a time (:func:`run_call`) or many at once (:func:`run_load`), with network faults on request
(:class:`Faults`)."""

from vobiz_stream.emulator.call import CallOptions, parse_key_press, run_call
from vobiz_stream.emulator.callbacks import SignatureForm, SignatureVersion
from vobiz_stream.emulator.faults import Faults, InjectedFaults
from vobiz_stream.emulator.load import LoadOptions, LoadProgress, LoadSummary, run_load
from vobiz_stream.emulator.playout import (
    CheckpointReached,
    Degraded,
    Gap,
    PlaybackStarted,
    Playout,
    PlayoutEvent,
    QueueCleared,
)
from vobiz_stream.emulator.profiles import CarrierProfile
from vobiz_stream.emulator.report import (
    CallbackSent,
    CallReport,
    StreamLeg,
    TimelineEntry,
    VerbTiming,
)

__all__ = [
    "CallOptions",
    "CallReport",
    "CallbackSent",
    "CarrierProfile",
    "CheckpointReached",
    "Degraded",
    "Faults",
    "Gap",
    "InjectedFaults",
    "LoadOptions",
    "LoadProgress",
    "LoadSummary",
    "PlaybackStarted",
    "Playout",
    "PlayoutEvent",
    "QueueCleared",
    "SignatureForm",
    "SignatureVersion",
    "StreamLeg",
    "TimelineEntry",
    "VerbTiming",
    "parse_key_press",
    "run_call",
    "run_load",
]
