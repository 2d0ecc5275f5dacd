"""The carrier's playout model: frame clock, jitter buffer, checkpoints, clears, cap, measures."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vobiz_stream.audio import ByteOrder, encode_l16, encode_mulaw
from vobiz_stream.core.protocol import PlayAudio
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.playout import (
    PAUSE_SECONDS,
    CheckpointReached,
    Degraded,
    Gap,
    PlaybackStarted,
    Playout,
    QueueCleared,
)
from vobiz_stream.emulator.source import EmulatorError
from vobiz_stream.formats import Encoding

RATE = 8000
FRAME = 160


def ramp(samples: int, start: int = 1) -> np.ndarray:
    """Distinct nonzero samples, so every sample's place in the heard track can be checked."""
    return (np.arange(samples) % 1000 + start).astype(np.int16)


def l16(pcm: np.ndarray, rate: int = RATE, order: ByteOrder = ByteOrder.LITTLE) -> PlayAudio:
    return PlayAudio(payload=encode_l16(pcm, order), encoding=Encoding.L16, sample_rate=rate)


def frames(pcm: np.ndarray) -> list[PlayAudio]:
    return [l16(pcm[start : start + FRAME]) for start in range(0, len(pcm), FRAME)]


def test_audio_plays_from_the_next_tick_and_silence_fills_the_rest() -> None:
    model = Playout(RATE)
    audio = ramp(800)  # 100 ms: the 60 ms buffer is full behind the first frame: it starts
    assert model.play(l16(audio), now=0.05) == []
    model.advance(0.3)
    heard = model.pop_heard()
    assert len(heard) == 0.3 * RATE  # 15 whole ticks
    assert not heard[:480].any()  # silence up to the tick after the audio came (0.06)
    np.testing.assert_array_equal(heard[480:1280], audio)
    assert not heard[1280:].any()
    assert model.first_audio_at == 0.05
    assert model.played_samples == 800
    assert model.gaps == []


def test_pop_heard_hands_out_whole_ticks_then_the_partial_rest() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(1000)), now=0.0)
    model.advance(0.05)  # 400 samples played: two whole ticks (320) and 80 more
    assert len(model.pop_heard()) == 320
    assert len(model.pop_heard()) == 0
    np.testing.assert_array_equal(model.pop_heard(partial=True), ramp(1000)[320:400])


def test_playout_waits_until_the_buffer_holds_its_depth() -> None:
    model = Playout(RATE)  # 60 ms: three frames behind the one playing
    audio = ramp(8 * FRAME)
    for index, command in enumerate(frames(audio)):
        model.play(command, now=0.1 + index * 0.02)  # in real time from 0.1
    model.advance(0.5)
    heard = model.pop_heard()
    start = round(0.16 * RATE)  # 60 ms after the first frame came: three wait behind it
    assert not heard[:start].any()
    np.testing.assert_array_equal(heard[start : start + len(audio)], audio)


def test_frames_late_by_less_than_the_buffer_are_heard_back_to_back() -> None:
    """No sample shift: with each frame from 15 ms early to 40 ms late (a spread under the 60 ms
    buffer), and some three at once, what the caller heard is what the app sent, in one piece,
    with no gap."""
    randomly = random.Random(7)
    model = Playout(RATE)
    audio = ramp(100 * FRAME)
    sent = []
    for index, command in enumerate(frames(audio)):
        sent.append((0.5 + index * 0.02 + randomly.uniform(-0.015, 0.04), command))
    for burst in range(10, 100, 10):  # frames burst+1 and burst+2 sent early, with burst
        for early in (burst + 1, burst + 2):
            sent[early] = (sent[burst][0], sent[early][1])
    last = 0.0
    for now, command in sent:
        last = max(last, now)  # one socket: frames come in the order sent
        model.play(command, now=last)
    model.advance(3.0)
    heard = model.pop_heard()
    start = int(np.flatnonzero(heard)[0])
    assert start % FRAME == 0  # on the frame clock
    np.testing.assert_array_equal(heard[start : start + len(audio)], audio)
    assert not heard[start + len(audio) :].any()
    assert model.gaps == []


def test_a_short_utterance_plays_a_buffer_after_it_came_or_at_its_checkpoint() -> None:
    short = ramp(FRAME)
    waits = Playout(RATE)
    waits.play(l16(short), now=0.0)  # 20 ms, and the app says no more
    waits.advance(0.2)
    assert np.flatnonzero(waits.pop_heard())[0] == round(0.06 * RATE)
    marked = Playout(RATE)
    marked.play(l16(short), now=0.0)
    marked.checkpoint("short", now=0.001)  # the end of the utterance: no need to wait
    assert marked.next_deadline() == pytest.approx(0.04)  # from the tick at 0.02
    marked.advance(0.2)
    assert np.flatnonzero(marked.pop_heard())[0] == round(0.02 * RATE)


def test_without_a_buffer_audio_plays_from_the_next_tick() -> None:
    model = Playout(RATE, jitter_buffer=0)
    model.play(l16(ramp(FRAME)), now=0.001)
    model.advance(0.1)
    np.testing.assert_array_equal(model.pop_heard()[FRAME : 2 * FRAME], ramp(FRAME))


def test_checkpoint_is_due_exactly_when_the_audio_before_it_has_played() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(1600)), now=1.0)  # 200 ms, played from 1.0
    assert model.checkpoint("turn-1", now=1.01) == [PlaybackStarted(1.0, None)]
    assert model.next_deadline() == pytest.approx(1.2)
    assert model.advance(1.19) == []
    assert model.advance(1.25) == [CheckpointReached("turn-1", received_at=1.01, played_at=1.2)]
    assert model.next_deadline() is None


def test_checkpoint_on_an_empty_queue_is_due_at_once() -> None:
    model = Playout(RATE)
    assert model.checkpoint("now", now=0.5) == [CheckpointReached("now", 0.5, 0.5)]


def test_checkpoint_after_the_last_frame_left_the_queue_waits_for_it_to_play() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)
    model.advance(0.09)  # the last frame (0.08-0.1) is playing; nothing is queued
    assert model.checkpoint("end", now=0.09) == []
    assert model.next_deadline() == pytest.approx(0.1)
    assert model.advance(0.1) == [CheckpointReached("end", 0.09, 0.1)]


def test_checkpoints_come_due_in_order_with_the_audio_between_them() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("a", now=0.0)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("b", now=0.0)
    events = model.advance(1.0)
    assert [(e.name, e.played_at) for e in events if isinstance(e, CheckpointReached)] == [
        ("a", 0.1),
        ("b", 0.2),
    ]


def test_a_checkpoint_after_every_frame_is_answered_as_its_frame_ends() -> None:
    model = Playout(RATE)
    for index in range(10):
        model.play(l16(ramp(FRAME)), now=0.0)
        model.checkpoint(f"frame-{index}", now=0.0)
    events = model.advance(1.0)
    played = [e.played_at for e in events if isinstance(e, CheckpointReached)]
    assert played == pytest.approx([0.02 * (index + 1) for index in range(10)])


def test_clear_empties_the_queue_at_once_and_voids_pending_checkpoints() -> None:
    model = Playout(RATE)
    audio = ramp(8000)  # 1 s
    model.play(l16(audio), now=0.0)
    model.checkpoint("echo", now=0.0)
    started, cleared = model.clear(now=0.25)  # in the middle of the frame 0.24-0.26
    assert started == PlaybackStarted(0.0, None)
    assert isinstance(cleared, QueueCleared)
    assert cleared.at == 0.25
    assert cleared.dropped_seconds == pytest.approx(0.75)
    assert cleared.voided == ("echo",)
    assert model.next_deadline() is None
    assert model.advance(2.0) == []
    heard = model.pop_heard()
    np.testing.assert_array_equal(heard[:2000], audio[:2000])  # played up to the clear
    assert not heard[2000:].any()
    assert model.played_samples == 2000


def test_clear_on_an_empty_queue_is_still_answered() -> None:
    assert Playout(RATE).clear(now=0.1) == [QueueCleared(0.1, 0.0, ())]


def test_a_stall_longer_than_the_buffer_is_one_underrun() -> None:
    model = Playout(RATE)
    audio = ramp(20 * FRAME)
    for index, command in enumerate(frames(audio)):
        stall = 0.2 if index >= 10 else 0.0  # frame 10 comes 200 ms late, the rest after it
        model.play(command, now=index * 0.02 + stall)
    model.checkpoint("said", now=0.6)
    model.advance(1.0)
    # Playout started at 0.06 (60 ms after frame 0 came); frames 0-9 played to 0.26; frame 10
    # came at 0.4 and played from 0.46, once the buffer had filled again.
    assert model.gaps == [Gap(0.26, 0.46, mid_utterance=True)]
    heard = model.pop_heard()
    np.testing.assert_array_equal(heard[480:2080], audio[:1600])
    np.testing.assert_array_equal(heard[3680:5280], audio[1600:])


def test_each_start_of_playback_is_told_with_the_gap_before_it() -> None:
    model = Playout(RATE)
    events = model.play(l16(ramp(800)), now=0.0)
    events += model.advance(0.05)
    events += model.play(l16(ramp(800)), now=0.15)  # 50 ms after it ran dry: an underrun
    events += model.advance(1.0)
    assert events == [
        PlaybackStarted(0.0, None),
        PlaybackStarted(0.16, Gap(0.1, 0.16, mid_utterance=True)),
    ]


def test_a_late_frame_within_the_buffer_is_no_underrun() -> None:
    model = Playout(RATE)
    for index, command in enumerate(frames(ramp(20 * FRAME))):
        late = 0.055 if index == 10 else 0.0  # frame 10 comes 55 ms late: the buffer covers it
        model.play(command, now=index * 0.02 + late)
    model.advance(1.0)
    assert model.gaps == []


def test_gaps_tell_underruns_from_pauses_between_utterances() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)  # plays 0.0-0.1
    model.play(l16(ramp(800)), now=0.15)  # underrun: no checkpoint between, under 0.5 s
    model.checkpoint("turn", now=0.16)  # due at 0.26
    model.play(l16(ramp(800)), now=0.3)  # a new utterance after a marked end
    model.play(l16(ramp(800)), now=0.4 + PAUSE_SECONDS)  # unmarked, but a pause: long
    model.advance(2.0)
    assert model.gaps == [
        Gap(0.1, 0.16, mid_utterance=True),
        Gap(0.26, 0.3, mid_utterance=False),
        Gap(0.4, 0.9, mid_utterance=False),
    ]


def test_a_checkpoint_during_the_silence_marks_the_end_too() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("late mark", now=0.15)  # after the audio ran dry at 0.1
    model.play(l16(ramp(800)), now=0.2)
    model.advance(1.0)
    assert model.gaps == [Gap(0.1, 0.2, mid_utterance=False)]


def test_a_clear_ends_the_utterance_for_gap_purposes() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(8000)), now=0.0)
    model.clear(now=0.2)
    model.play(l16(ramp(800)), now=0.4)
    model.advance(1.0)
    assert model.gaps == [Gap(0.2, 0.4, mid_utterance=False)]


def test_less_than_a_frame_left_plays_padded_with_silence() -> None:
    model = Playout(RATE)
    audio = ramp(660)  # four frames and 20 samples
    model.play(l16(audio), now=0.0)
    model.advance(0.2)
    heard = model.pop_heard()
    np.testing.assert_array_equal(heard[:660], audio)
    assert not heard[660:].any()
    model.play(l16(ramp(800)), now=0.2)
    model.advance(1.0)
    assert model.gaps == [Gap(0.0825, 0.2, mid_utterance=True)]


def test_formats_are_converted_to_the_call_rate() -> None:
    model = Playout(16000)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)).astype(np.int16)
    model.play(PlayAudio(encode_mulaw(tone), Encoding.MULAW, 8000), now=0.0)
    model.checkpoint("mulaw", now=0.0)  # flushes the resampler: all 100 ms is queued
    assert model.next_deadline() == pytest.approx(0.1, abs=0.001)
    model.play(l16(ramp(2400), rate=24000), now=0.0)
    model.checkpoint("24k", now=0.0)
    assert model.next_deadline() == pytest.approx(0.1, abs=0.001)  # the first is still first
    events = model.advance(1.0)
    assert [e.played_at for e in events if isinstance(e, CheckpointReached)] == pytest.approx(
        [0.1, 0.2], abs=0.001
    )
    heard = model.pop_heard()
    assert heard[:1600].std() > 3000  # the tone, at 16 kHz, not noise or silence


def test_l16_is_read_in_the_configured_byte_order() -> None:
    audio = ramp(640)
    big = Playout(RATE, byte_order=ByteOrder.BIG)
    big.play(l16(audio, order=ByteOrder.BIG), now=0.0)
    big.advance(0.08)
    np.testing.assert_array_equal(big.pop_heard(), audio)


def test_audio_past_the_cap_is_dropped_and_degraded_reported_once() -> None:
    model = Playout(RATE, queue_cap=0.1)
    assert model.play(l16(ramp(600)), now=0.0) == []
    assert model.play(l16(ramp(400)), now=0.0) == [Degraded(0.0, 0.075)]
    assert model.dropped_samples == 200
    assert model.play(l16(ramp(400)), now=0.0) == []  # reported once
    assert model.dropped_samples == 600
    model.checkpoint("end", now=0.0)
    assert model.next_deadline() == pytest.approx(0.1)


def test_a_one_way_stream_ignores_commands() -> None:
    model = Playout(RATE, bidirectional=False)
    assert model.play(l16(ramp(800)), now=0.0) == []
    assert model.checkpoint("x", now=0.0) == []
    assert model.clear(now=0.0) == []
    assert model.ignored_commands == 3
    model.advance(0.1)
    assert not model.pop_heard().any()


def test_hang_up_answers_what_is_due_and_voids_the_rest() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("done", now=0.0)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("cut", now=0.0)
    events, voided = model.hang_up(now=0.15)
    assert events == [PlaybackStarted(0.0, None), CheckpointReached("done", 0.0, 0.1)]
    assert voided == ("cut",)
    heard = model.pop_heard(partial=True)
    assert len(heard) == 1200
    model.advance(0.3)
    assert not model.pop_heard().any()  # nothing plays after the hangup


@pytest.mark.parametrize("seconds", [-0.001, 40.0, float("nan")])
def test_a_jitter_buffer_below_zero_or_as_deep_as_the_queue_is_refused(seconds: float) -> None:
    with pytest.raises(EmulatorError, match="jitter_buffer must be 0 or more seconds"):
        CallOptions(jitter_buffer=seconds).check()
