"""WavWriter read back sample by sample: by ``wave``, by a RIFF parser written here, by sox;
mid-write and after the writing process is killed."""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import sys
import wave
from dataclasses import dataclass
from itertools import chain, pairwise
from pathlib import Path

import numpy as np
import pytest

from vobiz_stream.audio import Pcm, WavWriter, interleave
from vobiz_stream.errors import AudioError


@dataclass(frozen=True)
class ParsedWav:
    channels: int
    sample_rate: int
    byte_rate: int
    block_align: int
    bits: int
    samples: list[int]


def parse_wav(path: Path) -> ParsedWav:
    """A plain RIFF/WAVE walk with ``struct``: chunk by chunk, sizes checked against the file."""
    raw = path.read_bytes()
    riff, riff_size, wave_id = struct.unpack_from("<4sI4s", raw, 0)
    assert (riff, wave_id) == (b"RIFF", b"WAVE")
    assert riff_size + 8 <= len(raw), "the header claims more than the file holds"
    chunks: dict[bytes, bytes] = {}
    offset = 12
    while offset < riff_size + 8:
        chunk_id, size = struct.unpack_from("<4sI", raw, offset)
        body = raw[offset + 8 : offset + 8 + size]
        assert len(body) == size, f"chunk {chunk_id!r} is cut short"
        chunks[chunk_id] = body
        offset += 8 + size + size % 2
    assert offset == riff_size + 8
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", chunks[b"fmt "])
    assert tag == 1  # PCM
    data = chunks[b"data"]
    samples = list(struct.unpack(f"<{len(data) // 2}h", data))
    return ParsedWav(channels, rate, byte_rate, block_align, bits, samples)


def read_with_wave(path: Path) -> tuple[int, int, list[int]]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        raw = wav.readframes(wav.getnframes())
        samples = list(struct.unpack(f"<{len(raw) // 2}h", raw))
        return wav.getnchannels(), wav.getframerate(), samples


def noise(samples: int, seed: int) -> Pcm:
    return np.random.default_rng(seed).integers(-32768, 32768, samples, dtype=np.int16)


def test_a_new_file_is_a_valid_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    writer = WavWriter(path, 8000)
    assert path.stat().st_size == 44
    parsed = parse_wav(path)
    assert (parsed.channels, parsed.sample_rate, parsed.samples) == (1, 8000, [])
    assert read_with_wave(path) == (1, 8000, [])
    writer.close()


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000])
def test_mono_reads_back_sample_by_sample(tmp_path: Path, sample_rate: int) -> None:
    path = tmp_path / "mono.wav"
    pcm = noise(sample_rate * 3 + 11, seed=sample_rate)
    cuts = [0, 1, 160, 161, 2000, 9000, 9001, len(pcm)]
    with WavWriter(path, sample_rate, flush_interval_ms=100) as writer:
        for number, (start, end) in enumerate(pairwise(cuts)):
            part = pcm[start:end]
            writer.write(part if number % 2 else part.astype("<i2").tobytes())  # both inputs
        assert writer.frames_written == len(pcm)
    assert writer.closed
    expected = pcm.tolist()
    parsed = parse_wav(path)
    assert (parsed.channels, parsed.sample_rate, parsed.bits) == (1, sample_rate, 16)
    assert (parsed.byte_rate, parsed.block_align) == (2 * sample_rate, 2)
    assert parsed.samples == expected
    assert read_with_wave(path) == (1, sample_rate, expected)
    assert path.stat().st_size == 44 + 2 * len(pcm)


def test_stereo_reads_back_sample_by_sample(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    caller, agent = noise(16000, seed=1), noise(16000, seed=2)
    with WavWriter(path, 16000, channels=2) as writer:
        for start in range(0, 16000, 320):
            writer.write(interleave(caller[start : start + 320], agent[start : start + 320]))
        assert writer.frames_written == 16000
    parsed = parse_wav(path)
    assert (parsed.channels, parsed.byte_rate, parsed.block_align) == (2, 64000, 4)
    assert parsed.samples[0::2] == caller.tolist()
    assert parsed.samples[1::2] == agent.tolist()
    channels, rate, samples = read_with_wave(path)
    assert (channels, rate, samples) == (2, 16000, parsed.samples)


def test_interleave_alternates_left_and_right() -> None:
    left, right = noise(100, seed=3), noise(100, seed=4)
    assert interleave(left, right).tolist() == list(
        chain.from_iterable(zip(left.tolist(), right.tolist(), strict=True))
    )
    with pytest.raises(AudioError, match="equally long"):
        interleave(left, right[:-1])


def test_a_reader_mid_call_sees_exactly_the_flushed_samples(tmp_path: Path) -> None:
    path = tmp_path / "live.wav"
    pcm = noise(8000 * 2, seed=5)
    frame = 160  # 20 ms at 8 kHz
    flush_frames = 8000 * 100 // 1000  # flush_interval_ms=100
    writer = WavWriter(path, 8000, flush_interval_ms=100)
    for written in range(frame, len(pcm) + 1, frame):
        writer.write(pcm[written - frame : written])
        flushed = written // flush_frames * flush_frames  # every whole interval, nothing more
        assert writer.frames_written == written
        assert writer.frames_flushed == flushed
        assert path.stat().st_size == 44 + 2 * flushed  # nothing reaches the file in between
        assert parse_wav(path).samples == pcm[:flushed].tolist()
        assert read_with_wave(path) == (1, 8000, pcm[:flushed].tolist())
    writer.write(pcm[:100])
    writer.flush()
    assert parse_wav(path).samples == pcm.tolist() + pcm[:100].tolist()
    writer.close()


def test_a_crash_between_data_and_header_leaves_the_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "torn.wav"
    first, second = noise(800, seed=10), noise(800, seed=11)
    writer = WavWriter(path, 8000)
    writer.write(first)
    writer.flush()
    write_at = writer._write_at

    def killed_before_the_header(data: memoryview, offset: int) -> None:
        """Dies on the header rewrite, as a killed process would between a flush's writes."""
        if offset == 0:
            raise KeyboardInterrupt("killed between the data and the header")
        write_at(data, offset)

    writer._write_at = killed_before_the_header  # type: ignore[method-assign]
    writer.write(second)
    with pytest.raises(KeyboardInterrupt):
        writer.flush()
    assert path.stat().st_size == 44 + 2 * 1600  # both blocks of samples are in the file ...
    assert parse_wav(path).samples == first.tolist()  # ... but the header counts the first only
    assert read_with_wave(path) == (1, 8000, first.tolist())
    writer._file.close()


def test_after_a_failed_write_the_writer_goes_on(tmp_path: Path) -> None:
    """A full disk: the write fails; what the caller does next, while still handling the
    error (the recorder closes the recording), must not fail another way."""
    path = tmp_path / "full.wav"
    writer = WavWriter(path, 8000, flush_interval_ms=100)
    write_at = writer._write_at

    def disk_full(data: memoryview, offset: int) -> None:
        part = data[:2]  # a view of the samples, alive as long as the error is
        raise OSError(28, f"No space left on device ({len(part)} of {len(data)} bytes)")

    writer._write_at = disk_full  # type: ignore[method-assign]
    writer.write(noise(100, seed=16))
    try:
        writer.flush()
    except OSError:
        writer._write_at = write_at  # type: ignore[method-assign]
        writer.write(noise(100, seed=17))  # the error still alive: no BufferError
        writer.close()
    assert parse_wav(path).samples == noise(100, seed=17).tolist()


def test_a_whole_interval_at_once_goes_to_the_file_in_order(tmp_path: Path) -> None:
    """Audio of a flush interval or more is written as it comes (the recorder's case), after
    anything still buffered; any layout of int16 samples, or bytes, reads back the same."""
    path = tmp_path / "blocks.wav"
    interval = 8000 * 100 // 1000 * 2  # flush_interval_ms=100, stereo samples
    wide = noise(4 * interval, seed=12)
    blocks = [wide[: 2 * interval : 2], noise(interval, seed=13), noise(10, seed=14)]  # strided
    writer = WavWriter(path, 8000, channels=2, flush_interval_ms=100)
    writer.write(blocks[0])
    assert writer.frames_flushed == interval // 2  # on disk at once, counted by the header
    assert parse_wav(path).samples == blocks[0].tolist()
    writer.write(blocks[2])  # buffered ...
    writer.write(blocks[1].astype("<i2").tobytes())  # ... and written ahead of this one
    expected = list(
        chain.from_iterable(block.tolist() for block in (blocks[0], blocks[2], blocks[1]))
    )
    assert writer.frames_flushed == writer.frames_written == len(expected) // 2
    assert parse_wav(path).samples == expected
    writer.close()
    assert read_with_wave(path) == (2, 8000, expected)


CHILD = """
import sys
import numpy as np
from vobiz_stream.audio import WavWriter

pcm = np.random.default_rng(6).integers(-32768, 32768, 16000 * 13 // 10, dtype=np.int16)
writer = WavWriter(sys.argv[1], 16000, flush_interval_ms=200)
for start in range(0, len(pcm), 320):
    writer.write(pcm[start : start + 320])
print(writer.frames_flushed, writer.frames_written, flush=True)
sys.stdin.read()  # never closes the writer: wait here to be killed
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_writer_leaves_a_valid_wav_with_everything_flushed(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        flushed, written = map(int, child.stdout.readline().split())
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    assert 0 < flushed < written  # some audio was still buffered: the kill lost only that
    pcm = np.random.default_rng(6).integers(-32768, 32768, 16000 * 13 // 10, dtype=np.int16)
    assert written == len(pcm)
    assert parse_wav(path).samples == pcm[:flushed].tolist()
    assert read_with_wave(path) == (1, 16000, pcm[:flushed].tolist())


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed: no third reader")
@pytest.mark.parametrize("channels", [1, 2])
def test_sox_agrees(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "sox.wav"
    pcm = noise(24000 * channels, seed=7)
    with WavWriter(path, 24000, channels=channels) as writer:
        writer.write(pcm)

    def soxi(option: str) -> str:
        return subprocess.run(
            ["sox", "--i", option, str(path)], check=True, capture_output=True, text=True
        ).stdout.strip()

    assert soxi("-c") == str(channels)
    assert soxi("-r") == "24000"
    assert soxi("-b") == "16"
    assert soxi("-e") == "Signed Integer PCM"
    assert soxi("-s") == "24000"  # samples per channel
    raw = subprocess.run(
        ["sox", str(path), "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-"],
        check=True,
        capture_output=True,
    ).stdout
    assert raw == pcm.astype("<i2").tobytes()


def test_close_is_idempotent_and_writing_after_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "closed.wav"
    writer = WavWriter(path, 8000)
    writer.write(noise(100, seed=8))
    assert path.stat().st_size == 44  # still buffered
    writer.close()
    writer.close()
    assert parse_wav(path).samples == noise(100, seed=8).tolist()
    with pytest.raises(AudioError, match="closed"):
        writer.write(noise(100, seed=8))


def test_half_frames_and_bad_settings_are_refused(tmp_path: Path) -> None:
    with (
        WavWriter(tmp_path / "mono.wav", 8000) as mono,
        pytest.raises(AudioError, match="whole number"),
    ):
        mono.write(b"\x00\x01\x02")
    with WavWriter(tmp_path / "stereo.wav", 8000, channels=2) as stereo:
        with pytest.raises(AudioError, match="whole number"):
            stereo.write(noise(3, seed=9))
        with pytest.raises(AudioError, match="int16"):
            stereo.write(np.zeros(4, dtype=np.float32))
        assert stereo.frames_written == 0
    with pytest.raises(AudioError, match="1 or 2 channels"):
        WavWriter(tmp_path / "three.wav", 8000, channels=3)
    with pytest.raises(AudioError, match="positive"):
        WavWriter(tmp_path / "zero.wav", 0)
