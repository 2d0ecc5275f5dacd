"""Audio files of every common kind, made here with soundfile and sox, read back as mono int16."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.e2e.conftest import speech
from vobiz_stream.audio.files import read_audio_file
from vobiz_stream.errors import AudioError


def caller() -> np.ndarray:
    samples, _ = speech()
    return samples


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 3000) -> float:
    """The highest correlation of ``a`` against ``b`` shifted by up to ``max_lag`` samples
    (lossy codecs add a delay of their own)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    best = -1.0
    for lag in range(0, max_lag, 1):
        size = min(len(a) - lag, len(b))
        if size < len(b) // 2:
            break
        best = max(best, float(np.corrcoef(a[lag : lag + size], b[:size])[0, 1]))
        if best > 0.99:
            break
    return best


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
def test_pcm_and_float_wavs_read_back_exactly(tmp_path: Path, subtype: str, container: str) -> None:
    path = tmp_path / f"{subtype}.wav"
    floating = subtype in ("FLOAT", "DOUBLE")
    data = caller() / 32768 if floating else caller()  # float audio is in [-1, 1)
    soundfile.write(path, data, 8000, subtype=subtype, format=container)
    if container == "WAVEX":  # WAVE_FORMAT_EXTENSIBLE, which the old reader refused
        assert int.from_bytes(path.read_bytes()[20:22], "little") == 65534
    audio = read_audio_file(path)
    np.testing.assert_array_equal(audio.pcm, caller())
    assert (audio.rate, audio.channels) == (8000, 1)
    expected = "sent as it is" if subtype == "PCM_16" else "converted to 16-bit"
    assert audio.describe(8000).endswith(expected)


def test_stereo_at_48k_is_mixed_and_says_so(tmp_path: Path) -> None:
    left = caller()
    right = (left // 2).astype(np.int16)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 48000, subtype="PCM_16")
    audio = read_audio_file(path)
    expected = ((left.astype(np.int32) + right) // 2).astype(np.int16)
    np.testing.assert_array_equal(audio.pcm, expected)
    assert audio.describe(8000) == (
        f"caller audio {path}: 48 kHz stereo 16-bit WAV, mixed to mono and resampled to 8 kHz"
    )


@pytest.mark.parametrize("subtype", ["PCM_U8", "ULAW", "ALAW"])
def test_8_bit_and_g711_wavs_decode_close_to_the_source(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / f"{subtype}.wav"
    soundfile.write(path, caller(), 8000, subtype=subtype)
    audio = read_audio_file(path)
    assert len(audio.pcm) == len(caller())
    assert np.corrcoef(audio.pcm, caller())[0, 1] > 0.99
    assert "converted to 16-bit" in audio.describe(8000)


@pytest.mark.skipif(
    shutil.which("sox") is None,
    reason="sox is not installed (python3 dev.py test installs it on Debian as root)",
)
def test_sox_made_files(tmp_path: Path) -> None:
    """sox's own WAVs: 24-bit at 44.1 kHz stereo (sox writes those extensible) and 11 kHz."""
    source = tmp_path / "source.wav"
    soundfile.write(source, caller(), 8000, subtype="PCM_16")
    wide = tmp_path / "wide.wav"
    subprocess.run(
        ["sox", str(source), "-r", "44100", "-c", "2", "-b", "24", str(wide)], check=True
    )
    assert int.from_bytes(wide.read_bytes()[20:22], "little") == 65534
    audio = read_audio_file(wide)
    assert (audio.rate, audio.channels) == (44100, 2)
    assert audio.describe(8000) == (
        f"caller audio {wide}: 44.1 kHz stereo 24-bit WAV (extensible), mixed to mono, "
        "converted to 16-bit and resampled to 8 kHz"
    )
    narrow = tmp_path / "narrow.wav"
    subprocess.run(["sox", str(source), "-r", "11025", str(narrow)], check=True)
    assert read_audio_file(narrow).rate == 11025


@pytest.mark.parametrize(
    ("name", "kind", "lossless"),
    [
        ("x.flac", "16-bit FLAC", True),
        ("x.ogg", "Vorbis Ogg", False),
        ("x.mp3", "MP3", False),
    ],
)
def test_compressed_files(tmp_path: Path, name: str, kind: str, lossless: bool) -> None:
    path = tmp_path / name
    soundfile.write(path, caller(), 8000)
    audio = read_audio_file(path)
    assert kind in audio.describe(8000)
    if lossless:
        np.testing.assert_array_equal(audio.pcm, caller())
    else:
        assert best_correlation(audio.pcm, caller()) > 0.9


def test_an_unreadable_file_says_what_it_found_and_how_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "call.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(500))
    with pytest.raises(AudioError) as caught:
        read_audio_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"caller audio {path} cannot be read: 512 bytes, looks like MP4/M4A (AAC)" in message
    assert f"ffmpeg -i {path} -ar 8000 -ac 1 -c:a pcm_s16le {tmp_path / 'call-8k.wav'}" in message


def test_a_wav_in_a_format_libsndfile_lacks(tmp_path: Path) -> None:
    """A RIFF WAVE whose format tag is MP3 (85), cut short: named by its tag."""
    path = tmp_path / "odd.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(bytes(1000))
    data = bytearray(path.read_bytes())
    data[20:22] = (0x55).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"a WAV with format tag 85 \(MP3\)"):
        read_audio_file(path)


@pytest.mark.parametrize(
    ("content", "found"),
    [(b"", "0 bytes, an empty file"), (b"hello, not audio\n" * 10, "text, not audio")],
)
def test_empty_and_text_files(tmp_path: Path, content: bytes, found: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=found):
        read_audio_file(path)


def test_a_missing_file_and_a_file_of_no_samples(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        read_audio_file(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.int16), 8000)
    with pytest.raises(AudioError, match="has no samples"):
        read_audio_file(empty)


def test_a_name_with_control_characters_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "evil\x1b[31m\nname.wav"
    path.write_bytes(b"junk")
    with pytest.raises(AudioError) as caught:
        read_audio_file(path)
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
