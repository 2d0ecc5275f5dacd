"""PlaybackLedger (pacing, checkpoints, clears, the heard estimate) and PlayMark, driven with
explicit ``now`` values: no sleeping, no event loop."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vobiz_stream.core.playback import (
    OutboundFrame,
    PlaybackLedger,
    PlayMark,
    PlayOutcome,
)
from vobiz_stream.formats import FRAME_SECONDS

FRAME_SAMPLES = 160
"""20 ms at 8 kHz."""
EPS = 1e-9
TICK = FRAME_SECONDS
"""Audio sent to a carrier that holds none starts playing at its next tick: at the latest one
frame after it was sent, which is what the ledger counts on."""


def frame(value: int) -> OutboundFrame:
    """A 20 ms frame whose every sample is ``value`` (so frames can be told apart)."""
    pcm = np.full(FRAME_SAMPLES, value, dtype="<i2").tobytes()
    return OutboundFrame(wire=pcm, pcm=pcm)


def frames(count: int, first: int = 0) -> list[OutboundFrame]:
    return [frame(first + index) for index in range(count)]


def value_of(pcm: bytes) -> int:
    """The one sample value a frame made by :func:`frame` holds."""
    samples = np.frombuffer(pcm, dtype="<i2")
    assert len(samples) > 0
    assert (samples == samples[0]).all()
    return int(samples[0])


def sent_frames(items: list[OutboundFrame | PlayMark]) -> list[OutboundFrame]:
    return [item for item in items if isinstance(item, OutboundFrame)]


# --- construction ------------------------------------------------------------------------------


def test_max_lead_below_one_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        PlaybackLedger(max_lead=0.019)
    PlaybackLedger(max_lead=FRAME_SECONDS)  # exactly one frame is allowed


def test_empty_ledger_has_nothing_due_and_no_deadline() -> None:
    ledger = PlaybackLedger()
    assert ledger.due(0.0) == []
    assert ledger.next_deadline(0.0) is None
    assert ledger.lead(0.0) == 0.0
    assert ledger.pending_seconds == 0.0


# --- pacing ------------------------------------------------------------------------------------


def test_initial_fill_sends_max_lead_then_one_frame_per_20_ms() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    ledger.enqueue(frames(50))
    assert ledger.pending_seconds == pytest.approx(1.0)

    first = ledger.due(100.0)
    assert [value_of(item.pcm) for item in sent_frames(first)] == list(range(10))
    assert len(first) == 10
    assert ledger.lead(100.0) == pytest.approx(0.2)
    assert ledger.lead(100.0 + TICK) == pytest.approx(0.2)  # none played before the tick
    assert ledger.pending_seconds == pytest.approx(0.8)

    # Nothing more until the first frame, from the carrier's next tick, has played out.
    assert ledger.next_deadline(100.0) == pytest.approx(100.0 + TICK + 0.02)
    assert ledger.due(100.0 + TICK + 0.01) == []
    second = ledger.due(100.0 + TICK + 0.02)
    assert [value_of(item.pcm) for item in sent_frames(second)] == [10]
    assert ledger.lead(100.0 + TICK + 0.02) == pytest.approx(0.2)
    assert ledger.next_deadline(100.0 + TICK + 0.02) == pytest.approx(100.0 + TICK + 0.04)


def test_max_lead_of_one_frame_sends_one_frame_at_a_time() -> None:
    ledger = PlaybackLedger(max_lead=FRAME_SECONDS)
    ledger.enqueue(frames(5))
    assert len(ledger.due(0.0)) == 1
    assert ledger.due(TICK + 0.01) == []
    # Sent as the frame before it ends, each frame follows it: one frame per 20 ms, no gap.
    assert len(ledger.due(TICK + 0.02)) == 1
    assert len(ledger.due(TICK + 0.04)) == 1
    starts = [item.started_at for item in ledger.pop_heard(1.0)]
    assert starts == pytest.approx([TICK, TICK + 0.02, TICK + 0.04])


def test_ten_seconds_at_deadlines_never_exceed_max_lead_and_keep_real_time() -> None:
    max_lead = 0.2
    ledger = PlaybackLedger(max_lead=max_lead)
    ledger.enqueue(frames(1000))  # 20 s, more than the simulation plays
    start = 50.0
    now = start
    sent = 0
    wakeups = 0
    while now - start <= 10.0 + EPS:
        sent += len(ledger.due(now))
        assert ledger.lead(now) <= max_lead + EPS
        # Everything the carrier was given fits between the start and now + max_lead.
        assert sent * FRAME_SECONDS <= now - start + max_lead + EPS
        deadline = ledger.next_deadline(now)
        assert deadline is not None
        assert deadline > now
        now = deadline
        wakeups += 1
    assert ledger.stats.max_lead <= max_lead + EPS
    assert ledger.stats.max_lead == pytest.approx(max_lead)
    # Initial fill (max_lead) plus one frame per 20 ms of the 10 s, woken once per frame.
    assert sent == pytest.approx((10.0 + max_lead) / FRAME_SECONDS, abs=1)
    assert wakeups == pytest.approx(10.0 / FRAME_SECONDS, abs=1)
    assert ledger.stats.frames_sent == sent


def test_irregular_wakeups_catch_up_without_exceeding_max_lead() -> None:
    """A caller that wakes late (but within max_lead) still keeps the carrier fed exactly."""
    max_lead = 0.1
    ledger = PlaybackLedger(max_lead=max_lead)
    ledger.enqueue(frames(1000))
    rng = random.Random(7)
    now = 0.0
    sent: list[OutboundFrame] = []
    while now < 10.0:
        sent.extend(sent_frames(ledger.due(now)))
        assert ledger.lead(now) <= max_lead + EPS
        # The carrier is never starved, so the frames sent by ``now`` are exactly those that
        # fit before now + max_lead, counted from the tick it started playing at.
        played_for = max(now, TICK) - TICK
        assert len(sent) == int((played_for + max_lead) / FRAME_SECONDS + EPS)
        # Late, but never so late that the carrier's queue (at least max_lead - 20 ms) runs dry.
        now += rng.uniform(0.0, max_lead - FRAME_SECONDS - 0.005)
    assert [value_of(item.pcm) for item in sent] == list(range(len(sent)))


def test_after_the_queue_runs_dry_pacing_restarts_from_now() -> None:
    ledger = PlaybackLedger(max_lead=0.1)
    ledger.enqueue(frames(3))
    assert len(ledger.due(0.0)) == 3
    assert ledger.next_deadline(0.0) is None  # nothing pending, no checkpoint
    assert ledger.lead(TICK + 0.06) == 0.0
    ledger.enqueue(frames(10))
    # The carrier emptied its queue at 0.08: a new initial fill of max_lead, from its next tick.
    assert len(ledger.due(1.0)) == 5
    assert ledger.lead(1.0) == pytest.approx(0.1)
    assert ledger.pop_heard(5.0)[3].started_at == pytest.approx(1.0 + TICK)


# --- checkpoints -------------------------------------------------------------------------------


def test_mark_follows_its_frames_with_their_expected_play_out_time() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    handle = PlayMark("greeting")
    ledger.enqueue(frames(15), handle)

    first = ledger.due(10.0)
    assert len(first) == 10
    assert handle not in first
    assert handle.expected_at is None
    # Only when the last frame before it is sent does the mark follow, in the same batch.
    now = 10.0
    batches: list[list[OutboundFrame | PlayMark]] = []
    while not handle.expected_at:
        deadline = ledger.next_deadline(now)
        assert deadline is not None
        now = deadline
        batches.append(ledger.due(now))
    assert batches[-1][-1] is handle
    assert sum(len(sent_frames(batch)) for batch in batches) == 5
    assert handle.expected_at == pytest.approx(10.0 + TICK + 15 * FRAME_SECONDS)
    assert not handle.done


def test_a_mark_with_no_frames_is_due_at_once() -> None:
    ledger = PlaybackLedger()
    handle = PlayMark("empty")
    ledger.enqueue([], handle)
    assert ledger.next_deadline(3.0) == 3.0
    assert ledger.due(3.0) == [handle]
    assert handle.expected_at == 3.0


def test_confirm_on_time_resolves_played() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    handle = PlayMark("a")
    ledger.enqueue(frames(5), handle)
    ledger.due(0.0)
    assert handle.expected_at == pytest.approx(0.12)

    assert ledger.confirm("a", 0.12) is handle
    assert handle.outcome is PlayOutcome.PLAYED
    assert handle.confirmed_at == 0.12
    assert ledger.stats.checkpoint_delays == [pytest.approx(0.0)]
    # Only once, and unknown names are ignored.
    assert ledger.confirm("a", 0.2) is None
    assert ledger.confirm("never-sent", 0.2) is None
    assert handle.confirmed_at == 0.12


def test_unsent_mark_cannot_be_confirmed() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    handle = PlayMark("later")
    ledger.enqueue(frames(20), handle)
    ledger.due(0.0)  # the mark is still behind 10 unsent frames
    assert ledger.confirm("later", 0.1) is None
    assert not handle.done


def test_late_confirmation_shifts_the_estimate_of_what_is_still_queued() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    mark = PlayMark("mark")
    ledger.enqueue(frames(5), mark)
    ledger.enqueue(frames(15, first=5))
    sent = ledger.due(0.0)
    # 5 frames, the mark (expected at 0.12), 5 more frames filling the lead.
    assert sent[5] is mark
    assert [value_of(item.pcm) for item in sent_frames(sent)] == list(range(10))
    assert mark.expected_at == pytest.approx(0.12)

    # The carrier plays 30 ms behind our clock.
    assert ledger.confirm("mark", 0.15) is mark
    assert ledger.stats.checkpoint_delays == [pytest.approx(0.03)]
    # Frames 5-9 now end at 0.25, not 0.22: the lead is 0.1, not 0.07.
    assert ledger.lead(0.15) == pytest.approx(0.1)
    # So fewer frames are due: the queue is refilled only up to 0.15 + max_lead.
    refill = sent_frames(ledger.due(0.15))
    assert len(refill) == 5
    assert ledger.lead(0.15) == pytest.approx(0.2)

    # Heard estimate: frames 0-4 from the tick at 0.02, frames 5.. from 0.15 on.
    heard = ledger.pop_heard(0.22)
    assert [value_of(item.pcm) for item in heard] == [0, 1, 2, 3, 4, 5, 6, 7]
    starts = [item.started_at for item in heard]
    assert starts == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.10, 0.15, 0.17, 0.19])


def test_early_confirmation_does_not_shift_the_estimate() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    mark = PlayMark("mark")
    ledger.enqueue(frames(5), mark)
    ledger.enqueue(frames(5, first=5))
    ledger.due(0.0)
    assert ledger.confirm("mark", 0.10) is mark
    assert ledger.stats.checkpoint_delays == [pytest.approx(-0.02)]
    assert ledger.lead(0.10) == pytest.approx(0.12)
    starts = [item.started_at for item in ledger.pop_heard(1.0)]
    assert starts == pytest.approx([TICK + index * FRAME_SECONDS for index in range(10)])


def test_unconfirmed_checkpoint_is_lost_after_the_grace_period() -> None:
    ledger = PlaybackLedger(max_lead=0.2, confirm_grace=1.0)
    handle = PlayMark("quiet-carrier")
    ledger.enqueue(frames(5), handle)
    ledger.due(0.0)
    assert handle.expected_at == pytest.approx(0.12)
    # With nothing pending, the next deadline is the checkpoint's timeout.
    assert ledger.next_deadline(0.5) == pytest.approx(1.12)

    assert ledger.expire(1.11) == []
    assert not handle.done
    assert ledger.expire(1.12 + EPS) == [handle]
    assert handle.outcome is PlayOutcome.LOST
    assert ledger.expire(5.0) == []
    assert ledger.next_deadline(5.0) is None
    # A confirmation that comes after all changes nothing.
    assert ledger.confirm("quiet-carrier", 5.0) is None
    assert handle.outcome is PlayOutcome.LOST


def test_expire_keeps_checkpoints_still_within_grace() -> None:
    ledger = PlaybackLedger(max_lead=1.0, confirm_grace=1.0)
    early, late = PlayMark("early"), PlayMark("late")
    ledger.enqueue(frames(5), early)
    ledger.enqueue(frames(25), late)
    ledger.due(0.0)
    assert early.expected_at == pytest.approx(0.12)
    assert late.expected_at == pytest.approx(0.62)
    assert ledger.next_deadline(0.5) == pytest.approx(1.12)
    assert ledger.expire(1.2) == [early]
    assert not late.done
    assert ledger.next_deadline(1.2) == pytest.approx(1.62)


# --- clear -------------------------------------------------------------------------------------


def test_clear_drops_unsent_voids_checkpoints_and_cuts_the_heard_estimate() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    sent_mark = PlayMark("sent")
    unsent_mark = PlayMark("unsent")
    ledger.enqueue(frames(5), sent_mark)
    ledger.enqueue(frames(15, first=5), unsent_mark)
    ledger.due(0.0)  # frames 0-9 and the first mark are with the carrier
    assert sent_mark.expected_at is not None
    assert unsent_mark.expected_at is None

    voided = ledger.clear(0.07)
    assert set(voided) == {sent_mark, unsent_mark}
    assert sent_mark.outcome is PlayOutcome.CLEARED
    assert unsent_mark.outcome is PlayOutcome.CLEARED
    assert ledger.stats.frames_dropped_by_clear == 10
    assert ledger.pending_seconds == 0.0
    assert ledger.lead(0.07) == 0.0
    assert ledger.due(0.07) == []
    assert ledger.next_deadline(0.07) is None
    assert ledger.confirm("sent", 0.12) is None  # a stray playedStream changes nothing
    assert sent_mark.outcome is PlayOutcome.CLEARED

    # Heard: frames 0 and 1 whole, frame 2 (started at 0.06) cut after 10 ms, nothing after.
    heard = ledger.pop_heard(1.0)
    assert [value_of(item.pcm) for item in heard] == [0, 1, 2]
    assert [len(item.pcm) for item in heard][:2] == [320, 320]
    assert abs(len(heard[2].pcm) - 160) <= 2  # half of frame 2 played (to a sample)
    assert [item.started_at for item in heard] == pytest.approx([0.02, 0.04, 0.06])
    assert ledger.pop_heard(2.0) == []


def test_clear_between_frames_keeps_only_what_played() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    ledger.enqueue(frames(10))
    ledger.due(0.0)
    ledger.clear(TICK + 0.1)  # exactly at the end of frame 4
    heard = ledger.pop_heard(1.0)
    assert [value_of(item.pcm) for item in heard] == [0, 1, 2, 3, 4]
    assert all(len(item.pcm) == 320 for item in heard)


def test_audio_queued_after_a_clear_plays_from_the_next_tick() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    ledger.enqueue(frames(20))
    ledger.due(0.0)
    ledger.clear(0.07)
    handle = PlayMark("after")
    ledger.enqueue(frames(3, first=100), handle)
    sent = ledger.due(0.07)
    assert [value_of(item.pcm) for item in sent_frames(sent)] == [100, 101, 102]
    assert sent[-1] is handle
    assert handle.expected_at == pytest.approx(0.07 + TICK + 3 * FRAME_SECONDS)
    heard = ledger.pop_heard(1.0)
    assert [value_of(item.pcm) for item in heard] == [0, 1, 2, 100, 101, 102]
    assert [item.started_at for item in heard][3:] == pytest.approx([0.09, 0.11, 0.13])


# --- close -------------------------------------------------------------------------------------


def test_close_loses_every_open_checkpoint() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    sent_mark = PlayMark("sent")
    unsent_mark = PlayMark("unsent")
    confirmed = PlayMark("confirmed")
    ledger.enqueue(frames(1), confirmed)
    ledger.enqueue(frames(4, first=1), sent_mark)
    ledger.enqueue(frames(20, first=5), unsent_mark)
    ledger.due(0.0)
    ledger.confirm("confirmed", 0.04)

    lost = ledger.close(0.05)
    assert set(lost) == {sent_mark, unsent_mark}
    assert sent_mark.outcome is PlayOutcome.LOST
    assert unsent_mark.outcome is PlayOutcome.LOST
    assert confirmed.outcome is PlayOutcome.PLAYED  # resolved before: unchanged
    assert ledger.due(0.05) == []
    heard = ledger.pop_heard(1.0)
    assert [value_of(item.pcm) for item in heard] == [0, 1]
    assert len(heard[0].pcm) == 320
    assert abs(len(heard[1].pcm) - 160) <= 2  # half of frame 1 played (to a sample)


# --- what the caller heard ---------------------------------------------------------------------


def test_pop_heard_returns_frames_once_after_their_play_out_in_order() -> None:
    ledger = PlaybackLedger(max_lead=0.2)
    ledger.enqueue(frames(5))
    ledger.due(1.0)
    assert ledger.pop_heard(1.0) == []
    assert ledger.pop_heard(1.039) == []
    first = ledger.pop_heard(1.07)
    assert [value_of(item.pcm) for item in first] == [0, 1]
    assert [item.started_at for item in first] == pytest.approx([1.02, 1.04])
    assert ledger.pop_heard(1.07) == []  # never twice
    rest = ledger.pop_heard(1.12)
    assert [value_of(item.pcm) for item in rest] == [2, 3, 4]
    assert ledger.pop_heard(5.0) == []


def test_pop_heard_over_a_long_paced_play_hands_out_everything_once() -> None:
    ledger = PlaybackLedger(max_lead=0.1)
    ledger.enqueue(frames(200))
    now = 0.0
    heard: list[int] = []
    while True:
        ledger.due(now)
        heard.extend(value_of(item.pcm) for item in ledger.pop_heard(now))
        deadline = ledger.next_deadline(now)
        if deadline is None:
            break
        now = deadline
    heard.extend(value_of(item.pcm) for item in ledger.pop_heard(now + 1.0))
    assert heard == list(range(200))


# --- PlayMark --------------------------------------------------------------------------------


def test_a_mark_resolves_once() -> None:
    mark = PlayMark("h")
    assert not mark.done and mark.outcome is None
    assert "pending" in repr(mark)
    assert mark.resolve(PlayOutcome.CLEARED) is True
    assert mark.resolve(PlayOutcome.PLAYED) is False
    assert mark.outcome is PlayOutcome.CLEARED and mark.done
    assert repr(mark) == "PlayMark('h', cleared)"
