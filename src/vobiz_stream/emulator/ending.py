"""How a stream ends, and with it (or after the verbs after the ``<Stream>``) the call.

A socket's end is the call's hangup, a drop followed by a reconnect (``maxRetries``), or a stream
that ends first while the verbs after it keep the call up; each sends the status callback a real
carrier sends then, and the last of the app's audio into the heard WAV.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np

from vobiz_stream.core.protocol import Stop
from vobiz_stream.emulator.announce import announce_verbs, announce_verbs_on_time
from vobiz_stream.emulator.callbacks import CallbackEvent
from vobiz_stream.emulator.playout import CheckpointReached, QueueCleared
from vobiz_stream.emulator.replies import PlayoutReplies
from vobiz_stream.emulator.report import StreamLeg
from vobiz_stream.emulator.state import CallState
from vobiz_stream.emulator.verbs import plan_verbs

__all__ = ["CALL_ENDINGS", "drop_leg", "end_stream", "end_without_socket", "go_on_with_verbs"]

CALL_ENDINGS = frozenset({"hangup", "xml_hangup", "xml_done", "answer_ended"})
"""End reasons where the stream ends because the call does (no ``StopStream`` is sent)."""

_ENDING_DETAIL = {
    "xml_hangup": "<Hangup>: the call ends",
    "xml_done": "the verbs after the <Stream> ran out: the call ends",
    "answer_ended": "the last verb is a <Stream> without keepCallAlive: the call ends",
}


def end_stream(
    call: CallState, replies: PlayoutReplies, leg: StreamLeg, reason: str, end: float
) -> None:
    """The stream ends at ``end`` (call clock) with this socket, and with it the call,
    unless verbs after the ``<Stream>`` keep it up (:func:`go_on_with_verbs`)."""
    playout = call.playout
    assert playout is not None
    call.report.end_reason = leg.end_reason = reason
    leg.ended_at = round(end, 4)
    announce_verbs(call, end)
    events, voided = playout.hang_up(end)
    replies.handle(events)
    if voided:
        call.timeline.add(end, "voided", f"checkpoints never played: {', '.join(voided)}")
    call.write_heard(playout.pop_heard(partial=True))
    if call.options.send_stop and (reason in CALL_ENDINGS or reason == "stream_timeout"):
        call.send(Stop(leg.stream_id, "call_ended", call.next_sequence()))
        call.timeline.add(call.now(), "stop", "sent the documented stop")
    call.report.duration = end
    if reason in _ENDING_DETAIL:
        call.timeline.add(end, "hangup", _ENDING_DETAIL[reason])
    if reason in ("app_closed", "cut"):
        call.callback(CallbackEvent.DROPPED, leg.stream_id, error=call.drop_error)
    elif reason not in CALL_ENDINGS:  # the app's stop, streamTimeout
        call.callback(CallbackEvent.STOP, leg.stream_id)


def drop_leg(call: CallState, leg: StreamLeg, end: float) -> None:
    """The app dropped this socket and a reconnect follows: what was queued is lost.

    Checkpoints still pending (even one that came due as the socket went) are void: there is
    no socket to answer them on.
    """
    playout = call.playout
    assert playout is not None
    leg.ended_at, leg.end_reason = round(end, 4), "dropped"
    voided: list[str] = []
    dropped = 0.0
    if playout.bidirectional:
        for event in playout.clear(end):
            match event:
                case CheckpointReached():
                    voided.append(event.name)
                case QueueCleared():
                    voided.extend(event.voided)
                    dropped = event.dropped_seconds
                case _:
                    pass
    call.checkpoints.clear()
    call.write_heard(playout.pop_heard())
    call.timeline.add(
        end,
        "dropped",
        call.drop_error
        + (f"; {dropped:.3f}s of queued audio lost" if dropped else "")
        + (f"; checkpoints void: {', '.join(voided)}" if voided else ""),
    )
    call.callback(CallbackEvent.DROPPED, leg.stream_id, error=call.drop_error)


def end_without_socket(call: CallState) -> None:
    """A reconnect failed with no retries left: the stream is over, and with no XML after
    it the call hangs up now (its ``DroppedStream`` has gone)."""
    playout = call.playout
    assert playout is not None
    end = call.now()
    announce_verbs(call, end)
    playout.hang_up(end)
    call.write_heard(playout.pop_heard(partial=True))
    call.report.end_reason = "app_closed"
    call.report.duration = end


async def go_on_with_verbs(call: CallState, end: float) -> None:
    """The stream ended at ``end`` on its own: the call stays up while verbs after the
    ``<Stream>`` last (those still running for a background stream, all of them after a
    ``keepCallAlive`` one), and no longer than the caller's audio; then it hangs up."""
    if call.report.end_reason in CALL_ENDINGS:
        return
    plan = call.plan
    playout = call.playout
    assert playout is not None
    if plan is None:
        plan = call.plan = plan_verbs(
            call.verbs_after, playout.rate, call.voice, start=round(end * playout.rate)
        )
        call.announcer = asyncio.create_task(announce_verbs_on_time(call, plan))
    announce_verbs(call, end)
    verbs_end = math.inf if plan.end_seconds is None else plan.end_seconds
    hangup = min(verbs_end, call.caller_end)
    if hangup <= end:
        return
    call.timeline.add(end, "call goes on", "with the verbs after the <Stream>")
    delay = call.began + hangup / call.options.speed - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    announce_verbs(call, hangup)
    if call.heard is not None:
        silence = round(hangup * playout.rate) - call.heard.position
        call.write_heard(np.zeros(max(0, silence), np.int16))
    call.report.duration = hangup
    by_caller = "the caller hangs up: the end of the caller audio"
    by_verbs = _ENDING_DETAIL.get(plan.reason, by_caller)
    call.timeline.add(hangup, "hangup", by_verbs if hangup < call.caller_end else by_caller)
