"""The console's waveform peaks and talk figures, from real WAV files; its search's query string."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from vobiz_stream.app.console.peaks import compute_peaks
from vobiz_stream.app.console.queries import MAX_PER_PAGE, SearchError, parse_search
from vobiz_stream.store import CallStatus

RATE = 8000


def tone(seconds: float, level: float = 0.3) -> np.ndarray:
    count = int(seconds * RATE)
    return (np.sin(np.arange(count) * 2 * np.pi * 300 / RATE) * level * 32767).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def stereo_wav(path: Path, left: list[np.ndarray], right: list[np.ndarray]) -> Path:
    caller, heard = np.concatenate(left), np.concatenate(right)
    soundfile.write(path, np.stack([caller, heard], axis=1), RATE, subtype="PCM_16")
    return path


def test_a_conversation_gives_its_figures(tmp_path: Path) -> None:
    # The app greets at 0.5 s for 1 s; the caller talks 2.0-3.0 s (with a 0.1 s pause between
    # words), the app answers at 3.6 s for 1 s, talking over the caller's second turn 4.2-5.0 s.
    caller = [silence(2.0), tone(0.4), silence(0.1), tone(0.5), silence(1.2), tone(0.8)]
    heard = [silence(0.5), tone(1.0), silence(2.1), tone(1.0), silence(0.4)]
    peaks = compute_peaks(stereo_wav(tmp_path / "call.wav", caller, heard))
    figures = peaks["figures"]
    assert figures["first_agent_audio"] == pytest.approx(0.5, abs=0.02)
    assert figures["response_latencies"] == [pytest.approx(0.6, abs=0.03)]
    assert figures["talk_over"] == pytest.approx(0.4, abs=0.03)
    assert figures["longest_silence"] == pytest.approx(0.6, abs=0.03)  # 1.5-2.0 s is 0.5
    assert peaks["duration"] == pytest.approx(5.0, abs=0.02)
    assert [channel["name"] for channel in peaks["channels"]] == ["caller", "heard"]
    caller_peaks = peaks["channels"][0]
    assert len(caller_peaks["max"]) == peaks["columns"] <= 1200
    assert max(caller_peaks["max"]) == pytest.approx(0.3, abs=0.01)
    assert min(caller_peaks["min"]) == pytest.approx(-0.3, abs=0.01)
    assert caller_peaks["max"][0] == 0.0  # the caller is silent at first


def test_a_mono_recording_has_no_agent_figures(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    soundfile.write(path, np.concatenate([tone(1.0), silence(1.0)]), RATE, subtype="PCM_16")
    peaks = compute_peaks(path)
    assert len(peaks["channels"]) == 1
    assert peaks["figures"]["first_agent_audio"] is None
    assert peaks["figures"]["response_latencies"] == []


def test_a_long_recording_is_read_in_blocks_into_at_most_1200_columns(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(path, np.tile(tone(1.0), 600), RATE, subtype="PCM_16")  # ten minutes
    peaks = compute_peaks(path)
    assert peaks["columns"] == 1200 and peaks["duration"] == pytest.approx(600.0)


def test_a_broken_file_raises_instead_of_drawing_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises((soundfile.LibsndfileError, RuntimeError)):
        compute_peaks(path)


def test_the_query_string_becomes_a_search() -> None:
    search = parse_search({"number": " 98765 ", "since": "2026-12-01", "until": "2026-12-06"})
    assert search.query.number == "98765"
    assert search.query.since is not None and search.query.since.isoformat().startswith(
        "2026-12-01"
    )
    assert search.query.until is not None and search.query.until.day == 7  # the whole last day
    assert parse_search({"status": "ended", "page": "3"}).query.status is CallStatus.ENDED
    assert parse_search({"page": "3", "per_page": "20"}).query.offset == 40
    assert search.link("/ui", 2) == "/ui?number=98765&since=2026-12-01&until=2026-12-06&page=2"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"since": "yesterday"}, "YYYY-MM-DD"),
        ({"status": "gone"}, "status must be one of"),
        ({"page": "0"}, "page must be"),
        ({"per_page": str(MAX_PER_PAGE + 1)}, "per_page must be"),
        ({"page": "-1"}, "page must be"),
        ({"number": "9" * 33}, "at most 32"),
    ],
)
def test_a_bad_filter_says_what_is_expected(query: dict[str, str], says: str) -> None:
    with pytest.raises(SearchError, match=says):
        parse_search(query)
