"""The carrier's playout model: queue, real-time play-out, checkpoints, clears, cap, measures."""

from __future__ import annotations

import numpy as np
import pytest

from vobiz_stream.audio import ByteOrder, encode_l16, encode_mulaw
from vobiz_stream.emulator.playout import (
    CheckpointPlayed,
    Degraded,
    Gap,
    Playout,
    QueueCleared,
)
from vobiz_stream.formats import Encoding
from vobiz_stream.protocol import PlayAudio

RATE = 8000


def ramp(samples: int, start: int = 1) -> np.ndarray:
    """Distinct nonzero samples, so every sample's place in the heard track can be checked."""
    return (np.arange(samples) % 1000 + start).astype(np.int16)


def l16(pcm: np.ndarray, rate: int = RATE, order: ByteOrder = ByteOrder.LITTLE) -> PlayAudio:
    return PlayAudio(payload=encode_l16(pcm, order), encoding=Encoding.L16, sample_rate=rate)


def test_audio_plays_from_arrival_and_silence_fills_the_rest() -> None:
    model = Playout(RATE)
    audio = ramp(800)  # 100 ms
    assert model.play(l16(audio), now=0.05) == []
    model.advance(0.3)
    heard = model.pop_heard()
    assert len(heard) == 0.3 * RATE  # 15 whole ticks
    assert not heard[:400].any()  # 50 ms of silence before the audio arrived
    np.testing.assert_array_equal(heard[400:1200], audio)
    assert not heard[1200:].any()
    assert model.first_audio_at == 0.05
    assert model.played_samples == 800


def test_pop_heard_hands_out_whole_ticks_then_the_partial_rest() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(1000)), now=0.0)
    model.advance(0.05)  # 400 samples played: two whole ticks (320) and 80 more
    assert len(model.pop_heard()) == 320
    assert len(model.pop_heard()) == 0
    np.testing.assert_array_equal(model.pop_heard(partial=True), ramp(1000)[320:400])


def test_queued_audio_plays_back_to_back() -> None:
    model = Playout(RATE)
    first, second = ramp(160, 1), ramp(160, 500)
    model.play(l16(first), now=0.0)
    model.play(l16(second), now=0.001)  # ahead of real time: queued behind the first
    model.advance(0.04)
    np.testing.assert_array_equal(model.pop_heard(), np.concatenate([first, second]))
    assert model.gaps == []


def test_checkpoint_is_due_exactly_when_the_audio_before_it_has_played() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(1600)), now=1.0)  # 200 ms
    assert model.checkpoint("turn-1", now=1.01) == []
    assert model.next_deadline() == pytest.approx(1.2)
    assert model.advance(1.19) == []
    assert model.advance(1.25) == [CheckpointPlayed("turn-1", received_at=1.01, played_at=1.2)]
    assert model.next_deadline() is None


def test_checkpoint_on_an_empty_queue_is_due_at_once() -> None:
    model = Playout(RATE)
    assert model.checkpoint("now", now=0.5) == [CheckpointPlayed("now", 0.5, 0.5)]


def test_checkpoints_come_due_in_order_with_the_audio_between_them() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("a", now=0.0)
    model.play(l16(ramp(800)), now=0.0)
    model.checkpoint("b", now=0.0)
    events = model.advance(1.0)
    assert [(e.name, e.played_at) for e in events if isinstance(e, CheckpointPlayed)] == [
        ("a", 0.1),
        ("b", 0.2),
    ]


def test_clear_empties_the_queue_and_voids_pending_checkpoints() -> None:
    model = Playout(RATE)
    audio = ramp(8000)  # 1 s
    model.play(l16(audio), now=0.0)
    model.checkpoint("echo", now=0.0)
    [cleared] = model.clear(now=0.25)
    assert isinstance(cleared, QueueCleared)
    assert cleared.at == 0.25
    assert cleared.dropped_seconds == pytest.approx(0.75)
    assert cleared.voided == ("echo",)
    assert model.next_deadline() is None
    assert model.advance(2.0) == []
    heard = model.pop_heard()
    np.testing.assert_array_equal(heard[:2000], audio[:2000])  # played up to the clear
    assert not heard[2000:].any()


def test_clear_on_an_empty_queue_is_still_answered() -> None:
    assert Playout(RATE).clear(now=0.1) == [QueueCleared(0.1, 0.0, ())]


def test_gaps_tell_underruns_from_pauses_between_utterances() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(800)), now=0.0)  # plays 0.0-0.1
    model.play(l16(ramp(800)), now=0.15)  # underrun: no checkpoint between
    model.checkpoint("turn", now=0.16)  # due at 0.25
    model.play(l16(ramp(800)), now=0.5)  # a new utterance after a marked end
    assert model.gaps == [
        Gap(0.1, 0.15, mid_utterance=True),
        Gap(0.25, 0.5, mid_utterance=False),
    ]


def test_a_clear_ends_the_utterance_for_gap_purposes() -> None:
    model = Playout(RATE)
    model.play(l16(ramp(8000)), now=0.0)
    model.clear(now=0.2)
    model.play(l16(ramp(800)), now=0.4)
    assert model.gaps == [Gap(0.2, 0.4, mid_utterance=False)]


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
    assert [e.played_at for e in events if isinstance(e, CheckpointPlayed)] == pytest.approx(
        [0.1, 0.2], abs=0.001
    )
    heard = model.pop_heard()
    assert heard[:1600].std() > 3000  # the tone, at 16 kHz, not noise or silence


def test_l16_is_read_in_the_configured_byte_order() -> None:
    audio = ramp(160)
    big = Playout(RATE, byte_order=ByteOrder.BIG)
    big.play(l16(audio, order=ByteOrder.BIG), now=0.0)
    big.advance(0.02)
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
    assert events == [CheckpointPlayed("done", 0.0, 0.1)]
    assert voided == ("cut",)
    assert len(model.pop_heard(partial=True)) == 1200
