"""FrameSlicer: any chunking of a stream gives the same exact-size frames and remainder."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.audio import FrameSlicer, silence_byte
from vobiz_stream.errors import AudioError
from vobiz_stream.formats import AudioFormat, Encoding


@st.composite
def chunked(draw: st.DrawFn, sample_width: int = 1) -> tuple[bytes, list[bytes]]:
    """A stream of whole samples and a random cutting of it into chunks, which may split
    samples (empty chunks included)."""
    data = draw(st.binary(max_size=5000))
    data = data[: len(data) - len(data) % sample_width]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=40)))
    bounds = [0, *cuts, len(data)]
    return data, [data[start:end] for start, end in pairwise(bounds)]


@given(stream=chunked(), frame_bytes=st.sampled_from([1, 7, 160, 320, 640, 960]))
def test_frames_and_flush_give_back_the_stream(
    stream: tuple[bytes, list[bytes]], frame_bytes: int
) -> None:
    data, chunks = stream
    slicer = FrameSlicer(frame_bytes)
    frames: list[bytes] = []
    pushed = 0
    for chunk in chunks:
        frames += slicer.push(chunk)
        pushed += len(chunk)
        assert slicer.pending == pushed % frame_bytes
        assert len(frames) == pushed // frame_bytes
    assert all(len(frame) == frame_bytes for frame in frames)
    assert b"".join(frames) + slicer.flush() == data
    assert slicer.pending == 0


@given(stream=chunked(sample_width=2), frame_samples=st.integers(1, 400))
def test_chunks_cut_mid_sample_still_give_whole_sample_frames(
    stream: tuple[bytes, list[bytes]], frame_samples: int
) -> None:
    data, chunks = stream
    frame_bytes = 2 * frame_samples
    slicer = FrameSlicer(frame_bytes, sample_width=2)
    frames = [frame for chunk in chunks for frame in slicer.push(chunk)]
    assert frames == [
        data[start : start + frame_bytes]
        for start in range(0, len(data) - frame_bytes + 1, frame_bytes)
    ]
    assert slicer.flush() == data[len(frames) * frame_bytes :]


@given(remainder=st.binary(min_size=1, max_size=159), encoding=st.sampled_from(Encoding))
def test_flush_pads_a_partial_frame_with_silence(remainder: bytes, encoding: Encoding) -> None:
    slicer = FrameSlicer(160)
    assert slicer.push(remainder) == []
    fill = silence_byte(encoding)
    padded = slicer.flush(pad=fill)
    assert len(padded) == 160
    assert padded[: len(remainder)] == remainder
    assert set(padded[len(remainder) :]) == {fill}
    assert slicer.pending == 0


def test_flush_of_nothing_is_empty_even_with_padding() -> None:
    slicer = FrameSlicer(320, sample_width=2)
    assert slicer.push(bytes(640)) == [bytes(320), bytes(320)]
    assert slicer.flush(pad=0) == b""


def test_silence_bytes() -> None:
    assert silence_byte(Encoding.MULAW) == 0xFF
    assert silence_byte(Encoding.L16) == 0x00


def test_clear_drops_the_remainder() -> None:
    slicer = FrameSlicer(160)
    slicer.push(b"\x01" * 250)
    assert slicer.pending == 90
    slicer.clear()
    assert slicer.pending == 0
    assert slicer.push(b"\x02" * 160) == [b"\x02" * 160]


def test_a_stream_ending_mid_sample_is_refused_and_kept() -> None:
    slicer = FrameSlicer(320, sample_width=2)
    slicer.push(b"\x00" * 321)
    with pytest.raises(AudioError, match="middle of a 2-byte sample"):
        slicer.flush()
    assert slicer.pending == 1
    slicer.clear()
    assert slicer.flush() == b""


@pytest.mark.parametrize(("frame_bytes", "sample_width"), [(0, 1), (321, 2), (160, 0)])
def test_frames_that_are_not_whole_samples_are_refused(frame_bytes: int, sample_width: int) -> None:
    with pytest.raises(AudioError, match="whole number"):
        FrameSlicer(frame_bytes, sample_width)


@pytest.mark.parametrize(
    ("audio_format", "frame_bytes", "sample_width"),
    [
        (AudioFormat(Encoding.L16, 8000), 320, 2),
        (AudioFormat(Encoding.L16, 16000), 640, 2),
        (AudioFormat(Encoding.L16, 24000), 960, 2),
        (AudioFormat(Encoding.MULAW, 8000), 160, 1),
    ],
)
def test_for_format_makes_20ms_frames(
    audio_format: AudioFormat, frame_bytes: int, sample_width: int
) -> None:
    slicer = FrameSlicer.for_format(audio_format)
    assert (slicer.frame_bytes, slicer.sample_width) == (frame_bytes, sample_width)
