"""A call's timeline: its streams, events and status callbacks in order, each said in words.

Times are offsets in seconds from the start of the call's first stream (its recording's zero),
so the page can place each entry under the waveform and seek the player to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypedDict

from vobiz_stream.logtext import loggable
from vobiz_stream.store import CallRecord

__all__ = ["TimelineItem", "describe_event", "timeline"]

DETAIL_CHARS = 160


class TimelineItem(TypedDict):
    at: str
    offset: float | None
    """Seconds from the first stream's start; None for a call known from callbacks only."""
    kind: str
    text: str


def _said(detail: Mapping[str, object], key: str) -> str:
    return loggable(str(detail.get(key, "")), 60)


def _clear(detail: Mapping[str, object]) -> str:
    voided = detail.get("voided") or []
    text = "clear sent"
    if "barge_in_onset_to_clear_ms" in detail:
        text = (
            "barge-in: the app's audio ran over the caller for "
            f"{_said(detail, 'barge_in_onset_to_clear_ms')} ms before the clear"
        )
    if isinstance(voided, list) and voided:
        names = ", ".join(loggable(str(name), 30) for name in voided[:5])
        text += f"; checkpoints voided: {names}" + (" ..." if len(voided) > 5 else "")
    return text


_WORDS: dict[str, Callable[[Mapping[str, object]], str]] = {
    "dtmf": lambda d: f"DTMF digit {_said(d, 'digit')}",
    "checkpoint_sent": lambda d: f"checkpoint {_said(d, 'name')} sent",
    "checkpoint_played": lambda d: f"checkpoint {_said(d, 'name')} played",
    "checkpoint_lost": lambda d: f"checkpoint {_said(d, 'name')} never confirmed",
    "clear": _clear,
    "cleared": lambda d: f"cleared: silent {_said(d, 'round_trip_ms')} ms after the clear",
    "malformed_frame": lambda d: f"malformed frame: {_said(d, 'problem')}",
    "byte_order": lambda d: f"byte order {_said(d, 'order')} (after {_said(d, 'frames')} frames)",
    "speech_started": lambda _d: "the caller started speaking",
    "speech_ended": lambda _d: "the caller stopped speaking",
    "stop": lambda d: f"the carrier stopped the stream ({_said(d, 'reason') or 'no reason'})",
    "app_stop": lambda _d: "the app stopped the stream",
    "unknown_event": lambda d: f"unknown event {_said(d, 'event')}",
    "error": lambda d: f"error: {_said(d, 'error') or _said(d, 'message')}",
}


def describe_event(kind: str, detail: Mapping[str, object]) -> str:
    """An event in words (the live feed and the timeline say them alike)."""
    words = _WORDS.get(kind)
    if words is not None:
        return words(detail)[:DETAIL_CHARS]
    shown = ", ".join(
        f"{key}={loggable(str(value), 40)}" for key, value in list(detail.items())[:4]
    )
    return f"{loggable(kind, 40)} {shown}".strip()[:DETAIL_CHARS]


def timeline(call: CallRecord) -> list[TimelineItem]:
    """Every stream start and end, event and status callback of ``call``, oldest first."""
    streams = call["streams"]
    zero = datetime.fromisoformat(streams[0]["started_at"]) if streams else None

    def entry(at: str, kind: str, text: str) -> TimelineItem:
        offset = None if zero is None else (datetime.fromisoformat(at) - zero).total_seconds()
        return {"at": at, "offset": offset, "kind": kind, "text": text}

    entries = []
    for stream in streams:
        tracks = "+".join(stream["tracks"])
        entries.append(
            entry(
                stream["started_at"],
                "start",
                f"stream started: {stream['encoding']} {stream['sample_rate']} Hz, {tracks}",
            )
        )
        if stream["ended_at"] is not None:
            reason = stream["end_reason"] or "unknown"
            entries.append(entry(stream["ended_at"], "end", f"stream ended: {reason}"))
    for event in call["events"]:
        entries.append(
            entry(event["at"], event["kind"], describe_event(event["kind"], event["detail"]))
        )
    for callback in call["status_callbacks"]:
        text = f"status callback: {loggable(callback['event'], 60)} ({callback['signature']})"
        entries.append(entry(callback["received_at"], "callback", text))
    entries.sort(key=lambda item: item["at"])
    return entries
