"""A recording's waveform peaks and talk figures, computed once per recording with numpy.

The WAV is read in one-second blocks (memory stays small for an hour-long call) into 20 ms
frames: each frame's lowest and highest sample and its RMS, per channel. The peaks for drawing are
the frames' extremes gathered into :data:`COLUMNS` columns; the figures (:mod:`.figures`) come
from the RMS. :class:`PeaksCache` keeps the last results by file, size and modification time,
so a recording still being written is read again once it has grown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TypedDict

import numpy as np
import numpy.typing as npt
import soundfile

from vobiz_stream.app.console.figures import TalkFigures, talk_figures
from vobiz_stream.formats import FRAME_SECONDS
from vobiz_stream.recordings import RecordingStore

__all__ = ["COLUMNS", "ChannelPeaks", "Peaks", "PeaksCache", "compute_peaks"]

FETCH_PIECE = 1 << 20
"""Bytes read at a time from where an uploaded recording lives, for its peaks."""
COLUMNS = 1200
"""Columns of peaks per channel: a full-width waveform on a wide screen."""
CHANNEL_NAMES = ("caller", "heard")
"""Left: the caller; right: what the caller heard (the app's audio, as played)."""


class ChannelPeaks(TypedDict):
    name: str
    min: list[float]
    max: list[float]


class Peaks(TypedDict):
    sample_rate: int
    duration: float
    columns: int
    channels: list[ChannelPeaks]
    figures: TalkFigures


def _frames(path: Path) -> tuple[int, int, list[npt.NDArray[np.float64]]]:
    """Sample rate, frames of 20 ms, and per channel an array (frames, 3): min, max, RMS."""
    with soundfile.SoundFile(path) as wav:
        rate, channels = wav.samplerate, wav.channels
        frame = max(1, int(rate * FRAME_SECONDS))
        parts: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(channels)]
        count = 0
        for block in wav.blocks(blocksize=frame * 50, dtype="int16", always_2d=True):
            whole = len(block) // frame * frame
            if whole == 0:
                continue
            shaped = block[:whole].reshape(-1, frame, channels).astype(np.float64) / 32768.0
            count += shaped.shape[0]
            for channel in range(channels):
                samples = shaped[:, :, channel]
                parts[channel].append(
                    np.stack(
                        [
                            samples.min(axis=1),
                            samples.max(axis=1),
                            np.sqrt(np.mean(np.square(samples), axis=1)),
                        ],
                        axis=1,
                    )
                )
    empty = np.zeros((0, 3))
    return rate, count, [np.concatenate(part) if part else empty for part in parts]


def _columns(values: npt.NDArray[np.float64], columns: int, highest: bool) -> list[float]:
    """``values`` gathered into at most ``columns`` columns (each its max or its min)."""
    if len(values) == 0:
        return []
    starts = np.linspace(0, len(values), min(columns, len(values)), endpoint=False).astype(int)
    gathered = (np.maximum if highest else np.minimum).reduceat(values, starts)
    return [round(float(value), 4) for value in gathered]


def compute_peaks(path: Path, columns: int = COLUMNS) -> Peaks:
    """The peaks and talk figures of the WAV at ``path`` (raises ``OSError`` or
    ``soundfile.LibsndfileError`` for a missing or broken file)."""
    rate, count, frames = _frames(path)
    channels: list[ChannelPeaks] = [
        {
            "name": CHANNEL_NAMES[index] if index < len(CHANNEL_NAMES) else f"channel {index}",
            "min": _columns(channel[:, 0], columns, highest=False),
            "max": _columns(channel[:, 1], columns, highest=True),
        }
        for index, channel in enumerate(frames)
    ]
    rms = [channel[:, 2] for channel in frames]
    return {
        "sample_rate": rate,
        "duration": round(count * FRAME_SECONDS, 3),
        "columns": len(channels[0]["max"]) if channels else 0,
        "channels": channels,
        "figures": talk_figures(rms[0], rms[1] if len(rms) > 1 else None, FRAME_SECONDS),
    }


class PeaksCache:
    """The peaks of the last :attr:`SIZE` recordings asked for, computed off the event loop
    (one at a time: a burst of requests for many long recordings cannot take every core, nor
    fill the temporary folder with fetched copies)."""

    SIZE = 64

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[str, int, int], Peaks] = OrderedDict()
        self._computing = asyncio.Lock()

    async def peaks(self, recordings: RecordingStore, name: str) -> Peaks | None:
        """The peaks of recording ``name`` wherever ``recordings`` has it; None when it has
        none (raises ``OSError``, ``soundfile.LibsndfileError`` or the store's error)."""
        local = recordings.local_path(name)
        if local is not None:
            stat = local.stat()
            key = (str(local), stat.st_size, stat.st_mtime_ns)
        else:
            key = ("uploaded:" + name, 0, 0)  # an uploaded recording never changes
        async with self._computing:
            if key not in self._kept:
                if local is not None:
                    self._kept[key] = await asyncio.to_thread(compute_peaks, local)
                else:
                    size = await recordings.size(name)
                    if size is None:
                        return None
                    self._kept[key] = await _fetched_peaks(recordings, name, size)
                while len(self._kept) > self.SIZE:
                    self._kept.popitem(last=False)
            self._kept.move_to_end(key)
            return self._kept[key]


async def _fetched_peaks(recordings: RecordingStore, name: str, size: int) -> Peaks:
    """The peaks of a recording read from afar into a temporary file, removed after."""
    handle, temporary = tempfile.mkstemp(prefix="vobiz-peaks-", suffix=".wav")
    path = Path(temporary)
    try:
        with os.fdopen(handle, "wb") as file:
            for start in range(0, size, FETCH_PIECE):
                piece = await recordings.read(name, start, min(size, start + FETCH_PIECE))
                await asyncio.to_thread(file.write, piece)
        return await asyncio.to_thread(compute_peaks, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
