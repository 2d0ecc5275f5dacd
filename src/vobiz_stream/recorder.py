"""One stream's recording: every track placed on one clock, written as a WAV that is always valid.

Channels: the caller (``inbound``) is the left channel, or the only one; the right channel holds
the other leg (``outbound`` track of an ``audioTrack="both"`` stream) or, on a bidirectional
stream, what the caller heard of the app's audio.

Placement: the carrier numbers its frames (``chunk``) and stamps them (``timestamp``, epoch ms),
so a frame's place on the clock comes from those, not from when it happened to arrive; gaps are
filled with silence and frames that arrive a little out of order still land where they belong.
Writing waits ``jitter_ms`` behind the newest audio for that reason; together with the WAV
writer's flush interval it bounds what a crash can lose (defaults: 200 + 800 ms, one second).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vobiz_stream.audio import Pcm, WavWriter, interleave
from vobiz_stream.formats import FRAME_MS
from vobiz_stream.protocol import Media

_COMMIT_FRAMES = 5
"""Write in steps of this many frames, not per frame, to keep the per-frame cost low."""


class TrackClock:
    """Maps one track's frames to sample positions on the recording's clock.

    The first frame is placed where it arrived; later frames by their ``chunk`` index, else by
    ``timestamp`` snapped to the 20 ms grid, else right after the previous frame. A frame whose
    number jumps backwards before the start or further than ``max_jump`` samples ahead is taken
    for a restart of the carrier's counters and placed right after the previous frame.
    """

    __slots__ = (
        "_anchor",
        "_first_chunk",
        "_first_timestamp",
        "_frame_samples",
        "_max_jump",
        "_next",
        "_rate",
    )

    def __init__(self, sample_rate: int, max_jump_seconds: float = 60.0) -> None:
        self._rate = sample_rate
        self._frame_samples = sample_rate * FRAME_MS // 1000
        self._max_jump = int(max_jump_seconds * sample_rate)
        self._anchor: int | None = None
        self._first_chunk: int | None = None
        self._first_timestamp: int | None = None
        self._next = 0

    def place(self, media: Media, samples: int, arrival: int) -> int:
        """Sample position of ``media`` (``samples`` long), which arrived at ``arrival``."""
        if self._anchor is None:
            self._rebase(media, arrival)
        assert self._anchor is not None
        position: int | None = None
        if media.chunk is not None and self._first_chunk is not None:
            position = self._anchor + (media.chunk - self._first_chunk) * self._frame_samples
        elif media.timestamp is not None and self._first_timestamp is not None:
            frames = round((media.timestamp - self._first_timestamp) / FRAME_MS)
            position = self._anchor + frames * self._frame_samples
        if position is None or position < 0 or position > self._next + self._max_jump:
            if position is not None:
                self._rebase(media, self._next)
            position = self._next
        self._next = max(self._next, position + samples)
        return position

    def _rebase(self, media: Media, position: int) -> None:
        self._anchor = position
        self._first_chunk = media.chunk
        self._first_timestamp = media.timestamp


class Recording:
    """Collects positioned audio per channel and writes it, in order, to a WAV file."""

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        jitter_ms: int = 200,
        flush_interval_ms: int = 800,
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self._writer = WavWriter(path, sample_rate, channels, flush_interval_ms=flush_interval_ms)
        self._jitter = sample_rate * jitter_ms // 1000
        self._step = sample_rate * FRAME_MS // 1000 * _COMMIT_FRAMES
        self._cursor = 0
        """Position of the first sample not yet written."""
        self._buffers = [np.zeros(0, dtype=np.int16) for _ in range(channels)]
        self._end = 0
        """One past the newest sample added on any channel."""
        self.late_samples = 0
        """Samples that arrived after their place was already written, and were dropped."""

    @property
    def samples_written(self) -> int:
        return self._writer.frames_written

    def add(self, channel: int, position: int, pcm: Pcm) -> None:
        """Place ``pcm`` at sample ``position`` on ``channel`` (0 left, 1 right)."""
        if position < self._cursor:
            skip = min(self._cursor - position, len(pcm))
            self.late_samples += skip
            pcm = pcm[skip:]
            position = self._cursor
        if not len(pcm):
            return
        offset = position - self._cursor
        end = offset + len(pcm)
        buffer = self._buffers[channel]
        if end > len(buffer):
            self._grow(end)
            buffer = self._buffers[channel]
        buffer[offset:end] = pcm
        self._end = max(self._end, position + len(pcm))
        if self._end - self._cursor >= self._jitter + self._step:
            self._commit(self._end - self._jitter)

    def _grow(self, size: int) -> None:
        size = max(size, 2 * len(self._buffers[0]), self._jitter + 2 * self._step)
        for index, buffer in enumerate(self._buffers):
            grown = np.zeros(size, dtype=np.int16)
            grown[: len(buffer)] = buffer
            self._buffers[index] = grown

    def _commit(self, upto: int) -> None:
        count = upto - self._cursor
        if count <= 0:
            return
        if count > len(self._buffers[0]):
            self._grow(count)
        columns = []
        for buffer in self._buffers:
            columns.append(buffer[:count].copy())
            kept = len(buffer) - count
            buffer[:kept] = buffer[count:]
            buffer[kept:] = 0
        self._writer.write(columns[0] if self.channels == 1 else interleave(columns[0], columns[1]))
        self._cursor = upto

    def close(self) -> None:
        """Write everything still held (the jitter window) and finalise the file."""
        if self._writer.closed:
            return
        self._commit(self._end)
        self._writer.close()
