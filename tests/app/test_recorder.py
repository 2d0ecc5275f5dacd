"""StreamClock (placing frames on one clock) and Recording (a WAV that is always valid), read back
with the stdlib ``wave`` module and compared sample by sample."""

from __future__ import annotations

import tracemalloc
import wave
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vobiz_stream.app.recorder import LONGEST_STEP_MS, Recording, StreamClock
from vobiz_stream.audio import ByteOrder, Pcm, encode_l16
from vobiz_stream.core.protocol import Media, Track

RATE = 8000
FRAME = RATE // 50  # 160 samples in 20 ms


def media(
    *,
    chunk: int | None = None,
    timestamp: int | None = None,
    track: Track = Track.INBOUND,
) -> Media:
    return Media(payload=b"", track=track, timestamp=timestamp, chunk=chunk)


def tone(count: int, seed: int) -> Pcm:
    """``count`` distinct-looking samples (random, so any misplacement shows)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, size=count, dtype=np.int16)


def read_wav(path: Path) -> tuple[Pcm, int, int]:
    """Samples (interleaved for stereo), rate and channel count, via the stdlib reader."""
    with wave.open(str(path), "rb") as reader:
        assert reader.getsampwidth() == 2
        data = reader.readframes(reader.getnframes())
        return (
            np.frombuffer(data, dtype="<i2").astype(np.int16),
            reader.getframerate(),
            reader.getnchannels(),
        )


# --- StreamClock -------------------------------------------------------------------------------


def test_frames_are_placed_by_chunk_whatever_their_arrival() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=100), FRAME, arrival=0) == 0
    assert clock.place(media(chunk=101), FRAME, arrival=999) == FRAME
    assert clock.place(media(chunk=105), FRAME, arrival=0) == 5 * FRAME  # a gap of 3 frames
    assert clock.place(media(chunk=103), FRAME, arrival=0) == 3 * FRAME  # late, but in place
    assert clock.place(media(chunk=106), FRAME, arrival=0) == 6 * FRAME


def test_chunk_wins_over_timestamp() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=1, timestamp=1000), FRAME, arrival=0) == 0
    # The timestamp says 100 ms later, the chunk one frame: the chunk counts.
    assert clock.place(media(chunk=2, timestamp=1100), FRAME, arrival=0) == FRAME


def test_frames_are_placed_by_timestamp_snapped_to_the_20_ms_grid() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(timestamp=5000), FRAME, arrival=0) == 0
    assert clock.place(media(timestamp=5021), FRAME, arrival=0) == FRAME  # 21 ms -> 1 frame
    assert clock.place(media(timestamp=5038), FRAME, arrival=0) == 2 * FRAME  # 38 ms -> 2 frames
    assert clock.place(media(timestamp=5100), FRAME, arrival=0) == 5 * FRAME
    assert clock.place(media(timestamp=5069), FRAME, arrival=0) == 3 * FRAME  # 69 ms -> 3 frames


def test_frames_without_chunk_or_timestamp_follow_each_other() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(), FRAME, arrival=800) == 800  # the first lands where it arrived
    assert clock.place(media(), FRAME, arrival=0) == 800 + FRAME
    assert clock.place(media(), 80, arrival=0) == 800 + 2 * FRAME
    assert clock.place(media(), FRAME, arrival=10**6) == 800 + 2 * FRAME + 80


def test_16_khz_frames_are_320_samples_apart() -> None:
    clock = StreamClock(16000)
    assert clock.place(media(chunk=7), 320, arrival=0) == 0
    assert clock.place(media(chunk=8), 320, arrival=0) == 320
    assert clock.place(media(chunk=10), 320, arrival=0) == 960


def test_40_ms_frames_are_placed_by_their_length() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=0), 2 * FRAME, arrival=0) == 0
    assert clock.place(media(chunk=1), 2 * FRAME, arrival=0) == 2 * FRAME
    assert clock.place(media(chunk=3), 2 * FRAME, arrival=0) == 6 * FRAME
    assert clock.place(media(chunk=2), 2 * FRAME, arrival=0) == 4 * FRAME


def test_chunks_counted_across_both_tracks_step_by_two() -> None:
    """A carrier that numbers every frame of the stream: each track's chunks step by 2."""
    clock = StreamClock(RATE)
    placed: dict[Track, list[int]] = {Track.INBOUND: [], Track.OUTBOUND: []}
    for number in range(6):
        for offset, track in enumerate(Track):
            frame = media(chunk=2 * number + offset, timestamp=1000 + 20 * number, track=track)
            placed[track].append(clock.place(frame, FRAME, arrival=0))
    expected = [number * FRAME for number in range(6)]
    assert placed == {Track.INBOUND: expected, Track.OUTBOUND: expected}
    # A lost frame on a stepping track is still a gap of one frame.
    assert clock.place(media(chunk=16, timestamp=1160), FRAME, arrival=0) == 8 * FRAME


def test_a_short_last_frame_lands_right_after_the_previous_one() -> None:
    """Frame length is the track's, not the frame's: a short last frame must not move back."""
    clock = StreamClock(RATE)
    for chunk in range(10):
        assert clock.place(media(chunk=chunk), FRAME, arrival=0) == chunk * FRAME
    assert clock.place(media(chunk=10), FRAME // 2, arrival=0) == 10 * FRAME


def test_one_long_frame_does_not_change_the_step_of_the_frames_after_it() -> None:
    """Once a 47 s frame made every later 20 ms frame 47 s apart: a 60 s call became hours."""
    clock = StreamClock(RATE)
    for chunk in range(10):
        assert clock.place(media(chunk=chunk), FRAME, arrival=0) == chunk * FRAME
    assert clock.place(media(chunk=10), 380_000, arrival=0) == 10 * FRAME
    for chunk in range(11, 20):
        assert clock.place(media(chunk=chunk), FRAME, arrival=0) == chunk * FRAME


def test_a_long_first_frame_sets_a_step_of_at_most_100_ms() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=0), RATE, arrival=0) == 0  # one second
    assert clock.place(media(chunk=1), FRAME, arrival=0) == RATE * LONGEST_STEP_MS // 1000
    assert clock.place(media(chunk=2), FRAME, arrival=0) == 2 * RATE * LONGEST_STEP_MS // 1000


def test_out_of_order_frames_at_the_start_land_in_place() -> None:
    """1002 overtakes 1001 right after the first frame. Where 1002 goes is a guess (the step
    could be 2), but once 1001 has arrived the step is known to be 1: 1001 must not land on
    1000, nor 1003 on the place of 1002."""
    clock = StreamClock(RATE)
    positions = {
        chunk: clock.place(media(chunk=chunk), FRAME, arrival=0)
        for chunk in (1000, 1002, 1001, 1003, 1004)
    }
    assert positions[1000] == 0
    assert positions[1001] == FRAME
    assert positions[1003] == 3 * FRAME
    assert positions[1004] == 4 * FRAME


def test_a_first_frame_overtaken_by_its_successor_does_not_shift_the_track() -> None:
    """Chunk 1001 arrives before 1000: 1000 is late, not a restart of the carrier's counter,
    and the frames after it keep their places relative to 1001."""
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=1001), FRAME, arrival=0) == 0
    clock.place(media(chunk=1000), FRAME, arrival=0)  # whatever becomes of the late one
    assert clock.place(media(chunk=1002), FRAME, arrival=0) == FRAME
    assert clock.place(media(chunk=1003), FRAME, arrival=0) == 2 * FRAME


def test_second_track_is_aligned_to_the_first_by_timestamp() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=10, timestamp=20_000), FRAME, arrival=400) == 400
    assert clock.place(media(chunk=11, timestamp=20_020), FRAME, arrival=0) == 400 + FRAME
    # The other leg starts 100 ms later on the carrier's clock and arrives whenever it arrives;
    # its chunk counter is its own.
    other = media(chunk=500, timestamp=20_100, track=Track.OUTBOUND)
    assert clock.place(other, FRAME, arrival=99_999) == 400 + 5 * FRAME
    other = media(chunk=501, timestamp=20_120, track=Track.OUTBOUND)
    assert clock.place(other, FRAME, arrival=0) == 400 + 6 * FRAME


def test_second_track_starting_before_the_first_is_placed_at_zero() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=1, timestamp=20_000), FRAME, arrival=0) == 0
    other = media(chunk=1, timestamp=19_900, track=Track.OUTBOUND)
    assert clock.place(other, FRAME, arrival=0) == 0
    other = media(chunk=2, timestamp=19_920, track=Track.OUTBOUND)
    assert clock.place(other, FRAME, arrival=0) == FRAME


def test_second_track_without_timestamps_lands_where_it_arrives() -> None:
    clock = StreamClock(RATE)
    assert clock.place(media(chunk=1, timestamp=20_000), FRAME, arrival=0) == 0
    other = media(chunk=1, track=Track.OUTBOUND)
    assert clock.place(other, FRAME, arrival=1234) == 1234


def test_counter_restart_is_placed_right_after_the_previous_frame() -> None:
    clock = StreamClock(RATE)
    for chunk in range(100, 110):
        clock.place(media(chunk=chunk), FRAME, arrival=0)
    # A reconnect restarts the counter: chunk 0 would sit 100 frames before the start.
    assert clock.place(media(chunk=0), FRAME, arrival=0) == 10 * FRAME
    assert clock.place(media(chunk=1), FRAME, arrival=0) == 11 * FRAME
    assert clock.place(media(chunk=3), FRAME, arrival=0) == 13 * FRAME  # gaps still count


def test_huge_jump_ahead_is_taken_for_a_restart() -> None:
    clock = StreamClock(RATE, max_jump_seconds=60.0)
    clock.place(media(chunk=1), FRAME, arrival=0)
    clock.place(media(chunk=2), FRAME, arrival=0)
    # 61 s ahead: not a gap anyone would record as silence.
    assert clock.place(media(chunk=2 + 61 * 50), FRAME, arrival=0) == 2 * FRAME
    assert clock.place(media(chunk=3 + 61 * 50), FRAME, arrival=0) == 3 * FRAME
    # A jump within the limit is a gap of silence.
    assert clock.place(media(chunk=3 + 62 * 50), FRAME, arrival=0) == 3 * FRAME + 50 * FRAME


def test_leaps_that_each_fit_cannot_add_more_silence_than_the_call_has_lasted() -> None:
    clock = StreamClock(RATE, max_jump_seconds=60.0)
    placed = []
    chunk = 1
    for index in range(50):  # one second of frames, each numbered about 60 s after the last
        placed.append(clock.place(media(chunk=chunk), FRAME, arrival=index * FRAME))
        chunk += 2999 + index % 2  # two steps, so the counter's step is learnt as 1
    # Each leap alone is within the limit; added up they would make 47 minutes of silence
    # out of one second of call. The gaps add at most the limit past the call's time, and no
    # frame lands on another.
    assert all(at <= index * FRAME + 60 * RATE for index, at in enumerate(placed))
    assert max(placed) > 59 * RATE  # the gaps within the limit are kept
    assert len(set(placed)) == len(placed)


def test_stamps_leaping_within_the_limit_cannot_add_more_silence_than_the_call_has_lasted() -> None:
    clock = StreamClock(RATE, max_jump_seconds=60.0)
    placed = [
        clock.place(media(timestamp=1000 + index * 59_000), FRAME, arrival=index * FRAME)
        for index in range(20)
    ]
    assert placed[:2] == [0, 2950 * FRAME]  # 59 s on: a gap within the limit
    assert placed[2:] == [2950 * FRAME + step * FRAME for step in range(1, 19)]


def test_a_stream_sent_faster_than_real_time_keeps_its_gaps_within_the_limit() -> None:
    # As `vobiz-stream call --speed 4` sends: 30 s of audio in 7.5 s, with frames missing.
    clock = StreamClock(RATE, max_jump_seconds=60.0)
    chunks = [chunk for chunk in range(1, 1500) if chunk % 7]
    placed = [
        clock.place(media(chunk=chunk), FRAME, arrival=(chunk - 1) * FRAME // 4) for chunk in chunks
    ]
    assert placed == [(chunk - 1) * FRAME for chunk in chunks]


def test_a_stream_sent_faster_than_real_time_keeps_late_frames_in_place() -> None:
    # Two minutes of audio in 30 s, every 50th frame overtaken by the next: the stream runs far
    # ahead of the call, but it adds no silence, so every frame keeps its place.
    clock = StreamClock(RATE, max_jump_seconds=60.0)
    chunks = list(range(1, 6001))
    for index in range(50, len(chunks) - 1, 50):
        chunks[index], chunks[index + 1] = chunks[index + 1], chunks[index]
    placed = [
        clock.place(media(chunk=chunk), FRAME, arrival=(chunk - 1) * FRAME // 4) for chunk in chunks
    ]
    assert placed == [(chunk - 1) * FRAME for chunk in chunks]


def test_timestamp_jumping_back_before_the_start_is_rebased() -> None:
    clock = StreamClock(RATE)
    clock.place(media(timestamp=10_000), FRAME, arrival=0)
    clock.place(media(timestamp=10_020), FRAME, arrival=0)
    assert clock.place(media(timestamp=500), FRAME, arrival=0) == 2 * FRAME
    assert clock.place(media(timestamp=540), FRAME, arrival=0) == 4 * FRAME


# --- Recording ---------------------------------------------------------------------------------


def test_sequential_frames_are_written_sample_for_sample(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    audio = tone(3 * RATE, seed=1)
    recording = Recording(path, RATE, 1)
    for start in range(0, len(audio), FRAME):
        recording.add(0, start, audio[start : start + FRAME])
    recording.close()
    samples, rate, channels = read_wav(path)
    assert (rate, channels) == (RATE, 1)
    np.testing.assert_array_equal(samples, audio)
    assert recording.late_samples == 0
    assert recording.samples_written == len(audio)


def test_out_of_order_frames_within_the_jitter_window_land_in_place(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    audio = tone(2 * RATE, seed=2)
    order = list(range(0, len(audio), FRAME))
    # Swap neighbours and hold some frames back by up to 8 frames (160 ms < 200 ms jitter).
    order[0], order[1] = order[1], order[0]
    order.insert(30, order.pop(22))
    order.insert(70, order.pop(62))
    recording = Recording(path, RATE, 1, jitter_ms=200)
    for start in order:
        recording.add(0, start, audio[start : start + FRAME])
    recording.close()
    samples, _, _ = read_wav(path)
    np.testing.assert_array_equal(samples, audio)
    assert recording.late_samples == 0


def test_frames_later_than_the_jitter_window_are_counted_and_dropped(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    audio = tone(3 * RATE, seed=3)
    missing = 10 * FRAME
    recording = Recording(path, RATE, 1, jitter_ms=200)
    for start in range(0, len(audio), FRAME):
        if start != missing:
            recording.add(0, start, audio[start : start + FRAME])
    assert recording.samples_written > missing + FRAME  # its place was already written
    recording.add(0, missing, audio[missing : missing + FRAME])
    assert recording.late_samples == FRAME
    recording.close()
    samples, _, _ = read_wav(path)
    expected = audio.copy()
    expected[missing : missing + FRAME] = 0  # the gap stayed silence
    np.testing.assert_array_equal(samples, expected)


def test_little_endian_bytes_are_recorded_as_the_same_samples_would_be(tmp_path: Path) -> None:
    audio = tone(3 * RATE, seed=6)
    late = tone(FRAME, seed=7)
    files = []
    for kind in ("array", "bytes"):
        path = tmp_path / f"{kind}.wav"
        recording = Recording(path, RATE, 2, jitter_ms=200)
        for start in range(0, len(audio), FRAME):
            frame = audio[start : start + FRAME]
            if kind == "array":
                recording.add(0, start, frame)
                recording.add(1, start + 40, frame[::-1].copy())
            else:
                recording.add_l16(0, start, encode_l16(frame, ByteOrder.LITTLE))
                recording.add_l16(1, start + 40, encode_l16(frame[::-1], ByteOrder.LITTLE))
        cursor = recording.samples_written
        assert 0 < cursor < len(audio)
        if kind == "array":
            recording.add(0, cursor - 60, late)  # straddles the written edge
        else:
            recording.add_l16(0, cursor - 60, encode_l16(late, ByteOrder.LITTLE))
        assert recording.late_samples == 60
        recording.close()
        files.append(read_wav(path))
    (by_array, rate, channels), (by_bytes, _, _) = files
    assert (rate, channels) == (RATE, 2)
    np.testing.assert_array_equal(by_bytes, by_array)
    stereo = by_array.reshape(-1, 2)
    expected = audio.copy()
    expected[cursor : cursor + FRAME - 60] = late[60:]  # the late frame's timely part
    np.testing.assert_array_equal(stereo[: len(audio), 0], expected)
    assert not stereo[:40, 1].any()


def test_a_frame_straddling_the_written_edge_keeps_its_timely_part(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recording = Recording(path, RATE, 1, jitter_ms=200)
    audio = tone(RATE, seed=4)
    recording.add(0, 0, audio)  # 1 s at once: everything but the jitter window is written
    cursor = recording.samples_written
    assert 0 < cursor < len(audio)
    late = tone(FRAME, seed=5)
    recording.add(0, cursor - 60, late)
    assert recording.late_samples == 60
    recording.close()
    samples, _, _ = read_wav(path)
    expected = audio.copy()
    expected[cursor : cursor + FRAME - 60] = late[60:]
    np.testing.assert_array_equal(samples, expected)


def test_gaps_become_silence(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    first, second = tone(FRAME, seed=6), tone(FRAME, seed=7)
    recording = Recording(path, RATE, 1)
    recording.add(0, 0, first)
    recording.add(0, 5 * RATE, second)  # 5 s later
    recording.close()
    samples, _, _ = read_wav(path)
    assert len(samples) == 5 * RATE + FRAME
    np.testing.assert_array_equal(samples[:FRAME], first)
    assert not samples[FRAME : 5 * RATE].any()
    np.testing.assert_array_equal(samples[5 * RATE :], second)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_gap_of_a_minute_is_written_as_silence_without_the_buffer_holding_it(
    tmp_path: Path, channels: int
) -> None:
    path = tmp_path / "call.wav"
    recording = Recording(path, RATE, channels, jitter_ms=200)
    before, after = tone(RATE, seed=8), tone(FRAME, seed=9)
    recording.add(0, 0, before)
    gap = 59 * RATE
    tracemalloc.start()
    recording.add(0, RATE + gap, after)  # a minute later, within the clock's limit
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # The buffer keeps its size, about a second per channel (16 KB); holding the gap took
    # a minute's worth (1.9 MB per channel).
    assert peak < 100_000
    recording.add(0, RATE + gap + FRAME, after)  # and the frames after it go on as before
    recording.close()
    samples, _, _ = read_wav(path)
    left = samples[::channels]
    assert len(left) == RATE + gap + 2 * FRAME
    np.testing.assert_array_equal(left[:RATE], before)
    assert not left[RATE : RATE + gap].any()
    np.testing.assert_array_equal(left[RATE + gap :], np.concatenate([after, after]))
    if channels == 2:
        assert not samples[1::2].any()  # the right channel: nothing was played


def test_stereo_channels_are_interleaved_and_the_shorter_padded(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    left = tone(2 * RATE, seed=8)
    right = tone(RATE, seed=9)
    right_start = RATE // 2
    recording = Recording(path, RATE, 2)
    for start in range(0, len(left), FRAME):
        recording.add(0, start, left[start : start + FRAME])
        offset = start - right_start
        if 0 <= offset < len(right):
            recording.add(1, start, right[offset : offset + FRAME])
    recording.close()
    samples, rate, channels = read_wav(path)
    assert (rate, channels) == (RATE, 2)
    columns = samples.reshape(-1, 2)
    np.testing.assert_array_equal(columns[:, 0], left)
    expected_right = np.zeros(len(left), dtype=np.int16)
    expected_right[right_start : right_start + len(right)] = right
    np.testing.assert_array_equal(columns[:, 1], expected_right)


def test_right_channel_running_ahead_of_the_left(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    # The right channel gets 100 ms ahead (less than the 200 ms jitter window) in one burst.
    right = tone(5 * FRAME, seed=10)
    left = tone(FRAME, seed=11)
    recording = Recording(path, RATE, 2, jitter_ms=200)
    recording.add(1, 0, right)
    recording.add(0, 0, left)
    recording.close()
    assert recording.late_samples == 0
    columns = read_wav(path)[0].reshape(-1, 2)
    assert len(columns) == 5 * FRAME
    np.testing.assert_array_equal(columns[:FRAME, 0], left)
    assert not columns[FRAME:, 0].any()
    np.testing.assert_array_equal(columns[:, 1], right)


def test_a_channel_behind_by_more_than_the_jitter_window_loses_the_late_part(
    tmp_path: Path,
) -> None:
    path = tmp_path / "call.wav"
    right = tone(RATE, seed=16)  # a whole second at once: the file is written up to 0.8 s
    left = tone(FRAME, seed=17)
    recording = Recording(path, RATE, 2, jitter_ms=200)
    recording.add(1, 0, right)
    recording.add(0, 0, left)
    assert recording.late_samples == FRAME
    recording.close()
    columns = read_wav(path)[0].reshape(-1, 2)
    assert not columns[:, 0].any()
    np.testing.assert_array_equal(columns[:, 1], right)


def test_close_flushes_everything_and_twice_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    audio = tone(FRAME * 3, seed=12)  # shorter than the jitter window: nothing written yet
    recording = Recording(path, RATE, 1)
    recording.add(0, 0, audio)
    assert recording.samples_written == 0
    recording.close()
    recording.close()
    samples, _, _ = read_wav(path)
    np.testing.assert_array_equal(samples, audio)


def test_empty_recording_is_a_valid_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recording = Recording(path, 16000, 2)
    recording.add(0, 0, np.zeros(0, dtype=np.int16))
    recording.close()
    samples, rate, channels = read_wav(path)
    assert (len(samples), rate, channels) == (0, 16000, 2)


def test_file_is_valid_mid_recording_and_misses_at_most_a_second(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rate = 16000
    frame = rate // 50
    audio = tone(6 * rate, seed=13)
    recording = Recording(path, rate, 1, jitter_ms=200, flush_interval_ms=800)
    checked = 0
    for start in range(0, len(audio), frame):
        recording.add(0, start, audio[start : start + frame])
        added = start + frame
        if added % (rate // 2) == 0:  # every half second, read the file as it is
            samples, file_rate, channels = read_wav(path)
            assert (file_rate, channels) == (rate, 1)
            assert added - len(samples) <= rate  # all but at most one second
            np.testing.assert_array_equal(samples, audio[: len(samples)])
            checked += 1
    assert checked == 12
    recording.close()
    np.testing.assert_array_equal(read_wav(path)[0], audio)


def test_recording_fed_by_the_clock_reconstructs_a_shuffled_stream(tmp_path: Path) -> None:
    """The two together, as the server uses them: chunk numbers put frames back in order."""
    path = tmp_path / "call.wav"
    audio = tone(2 * RATE, seed=14)
    starts = list(range(0, len(audio), FRAME))
    arrivals = starts.copy()
    for index in range(5, len(arrivals) - 1, 4):  # from the 6th frame, every 4th pair swapped
        arrivals[index], arrivals[index + 1] = arrivals[index + 1], arrivals[index]
    clock = StreamClock(RATE)
    recording = Recording(path, RATE, 1)
    first_chunk = 1000
    for start in arrivals:
        position = clock.place(media(chunk=first_chunk + start // FRAME), FRAME, arrival=0)
        recording.add(0, position, audio[start : start + FRAME])
    recording.close()
    np.testing.assert_array_equal(read_wav(path)[0], audio)
    assert recording.late_samples == 0


@pytest.mark.parametrize("channels", [1, 2])
def test_header_matches_rate_and_channels(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "call.wav"
    recording = Recording(path, 16000, channels)
    recording.add(0, 0, tone(320, seed=15))
    recording.close()
    with wave.open(str(path), "rb") as reader:
        assert reader.getframerate() == 16000
        assert reader.getnchannels() == channels
        assert reader.getnframes() == 320


def test_writes_come_in_whole_flush_intervals_and_reach_the_disk_at_once(tmp_path: Path) -> None:
    """No write per frame: the file grows a flush interval at a time, each step on disk (its
    header counting it) as soon as it is written, so a crash loses at most jitter + interval."""
    path = tmp_path / "call.wav"
    audio = tone(4 * RATE, seed=18)
    recording = Recording(path, RATE, 2, jitter_ms=200, flush_interval_ms=800)
    jitter, step = RATE // 5, RATE * 4 // 5
    on_disk = []
    for start in range(0, len(audio), FRAME):
        recording.add(0, start, audio[start : start + FRAME])
        on_disk.append(len(read_wav(path)[0]) // 2)  # stereo: interleaved pairs
        assert start + FRAME - on_disk[-1] < jitter + step  # never a second behind
    steps = sorted(set(on_disk))
    assert steps[0] == 0 and all(later - earlier >= step for earlier, later in pairwise(steps))
    assert on_disk.index(steps[1]) == (jitter + step) // FRAME - 1  # the frame that filled a step
    recording.close()
    columns = read_wav(path)[0].reshape(-1, 2)
    np.testing.assert_array_equal(columns[:, 0], audio)
    assert not columns[:, 1].any()


def test_a_second_track_stamped_far_from_its_arrival_is_placed_where_it_arrived() -> None:
    """A stamp a day off cannot be right: it must not stretch the recording to that day."""
    clock = StreamClock(RATE, max_jump_seconds=60)
    assert clock.place(media(chunk=0, timestamp=1_000_000), FRAME, arrival=0) == 0
    day = 86_400_000
    outbound = media(chunk=1, timestamp=1_000_000 + day, track=Track.OUTBOUND)
    assert clock.place(outbound, FRAME, arrival=2 * FRAME) == 2 * FRAME
    later = media(chunk=3, timestamp=1_000_040 + day, track=Track.OUTBOUND)
    assert clock.place(later, FRAME, arrival=0) == 3 * FRAME  # its own track's clock goes on
    # Stamped within reach of its arrival, a second track lines up by its stamp as before.
    clock = StreamClock(RATE, max_jump_seconds=60)
    clock.place(media(chunk=0, timestamp=1_000_000), FRAME, arrival=0)
    near = media(chunk=1, timestamp=1_000_000 + 30_000, track=Track.OUTBOUND)
    assert clock.place(near, FRAME, arrival=0) == 30 * RATE


_FRAMES = st.lists(
    st.tuples(
        st.sampled_from([Track.INBOUND, Track.OUTBOUND]),
        st.one_of(st.none(), st.integers(0, 400)),  # chunk
        st.one_of(st.none(), st.integers(0, 8000)),  # timestamp offset, ms
        st.sampled_from([FRAME, FRAME, FRAME, FRAME // 2, 2 * FRAME]),  # samples
        st.integers(0, 200_000),  # arrival
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_FRAMES, st.integers(1, 3))
def test_the_quick_step_for_the_next_chunk_places_as_the_general_rule_does(
    frames: list[tuple[Track, int | None, int | None, int, int]], order_run: int
) -> None:
    """Frames in order take a quick path (one step after the last); every frame, in any order
    or mix, must land where the general rule, forced on a second clock, puts it."""
    quick, general = StreamClock(RATE, max_jump_seconds=5.0), StreamClock(RATE, 5.0)
    runs = list(frames)
    # Long in-order runs too, where the quick path does nearly all the work.
    runs += [(Track.INBOUND, 500 + index, None, FRAME, 0) for index in range(order_run * 20)]
    for track, chunk, offset, samples, arrival in runs:
        frame = media(
            chunk=chunk, timestamp=None if offset is None else 1_000 + offset, track=track
        )
        for state in general._tracks.values():
            state.next_chunk = None  # never the quick path
        assert quick.place(frame, samples, arrival) == general.place(frame, samples, arrival)
