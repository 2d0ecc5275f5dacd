"""Calls as the console's pages show them: times, durations and formats said plainly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict, cast

import orjson

from vobiz_stream.store import CallSummary, StreamRecord

__all__ = [
    "CallRow",
    "call_row",
    "duration_text",
    "recording_streams",
    "summaries_from_json",
    "when",
]


class CallRow(TypedDict):
    call_id: str
    when: str
    from_number: str
    to_number: str
    duration: str
    status: str
    end_reason: str
    audio: str
    streams: int
    recording_row: int | None
    """The stream row of the call's first recording (its link), None without one."""


def summaries_from_json(text: str) -> list[CallSummary]:
    """The calls of a search (``search_calls_json``) as Python objects."""
    return cast(list[CallSummary], orjson.loads(text))


def when(text: str) -> str:
    """An ISO 8601 UTC time as ``2026-12-06 21:50:03``."""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S")


def duration_text(seconds: float | None) -> str:
    """``1:05`` (minutes and seconds), ``1:02:05`` past an hour; an em dash when unknown."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _duration(streams: Sequence[StreamRecord]) -> float | None:
    ends = [stream["ended_at"] for stream in streams]
    if not streams or any(end is None for end in ends):
        return None  # still open: the live feed shows its elapsed time
    first = min(datetime.fromisoformat(stream["started_at"]) for stream in streams)
    last = max(datetime.fromisoformat(end) for end in ends if end is not None)
    return (last - first).total_seconds()


def _audio(stream: StreamRecord) -> str:
    order = f", {stream['byte_order']}-endian" if stream["byte_order"] else ""
    return f"{stream['encoding']} {stream['sample_rate'] / 1000:g} kHz{order}"


def recording_streams(streams: Sequence[StreamRecord]) -> list[StreamRecord]:
    """The streams that have a recording, oldest first."""
    return [stream for stream in streams if stream["recording_path"]]


def call_row(call: CallSummary) -> CallRow:
    """One line of the calls list."""
    streams = call["streams"]
    last = streams[-1] if streams else None
    recorded = recording_streams(streams)
    return {
        "call_id": call["call_id"],
        "when": when(call["first_seen"]),
        "from_number": call["from_number"] or "—",
        "to_number": call["to_number"] or "—",
        "duration": duration_text(_duration(streams)),
        "status": call["status"],
        "end_reason": (last["end_reason"] or "—") if last else "—",
        "audio": _audio(last) if last else "—",
        "streams": len(streams),
        "recording_row": recorded[0]["id"] if recorded else None,
    }
