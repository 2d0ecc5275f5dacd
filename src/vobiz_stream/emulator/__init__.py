"""The carrier side: emulated Vobiz calls against an app's answer URL and stream socket, one
at a time (:func:`run_call`) or many at once (:func:`run_load`)."""

from vobiz_stream.emulator.call import CallOptions, run_call
from vobiz_stream.emulator.load import LoadOptions, LoadProgress, LoadSummary, run_load
from vobiz_stream.emulator.playout import (
    CheckpointPlayed,
    Degraded,
    Gap,
    Playout,
    PlayoutEvent,
    QueueCleared,
)
from vobiz_stream.emulator.report import CallReport

__all__ = [
    "CallOptions",
    "CallReport",
    "CheckpointPlayed",
    "Degraded",
    "Gap",
    "LoadOptions",
    "LoadProgress",
    "LoadSummary",
    "Playout",
    "PlayoutEvent",
    "QueueCleared",
    "run_call",
    "run_load",
]
