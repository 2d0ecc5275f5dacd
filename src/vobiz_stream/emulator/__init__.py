"""The carrier side: an emulated Vobiz call against an app's answer URL and stream socket."""

from vobiz_stream.emulator.call import CallOptions, run_call
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
    "Playout",
    "PlayoutEvent",
    "QueueCleared",
    "run_call",
]
