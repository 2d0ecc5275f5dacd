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

import math
from pathlib import Path

import numpy as np

from vobiz_stream.audio import Pcm, WavWriter, interleave
from vobiz_stream.formats import FRAME_MS
from vobiz_stream.protocol import Media, Track

_COMMIT_FRAMES = 5
"""Write in steps of this many frames, not per frame, to keep the per-frame cost low."""


OVERTAKEN_MS = 200
"""How far before a track's first frame a frame that arrived late (overtaken) may belong."""


class StreamClock:
    """Maps each track's frames to sample positions on the recording's one clock.

    Within a track, frames are placed by their ``chunk`` index, else by ``timestamp`` snapped to
    the 20 ms grid, else right after the previous frame. Chunk numbers may count every frame of
    the stream rather than of the track (two tracks interleaved step by 2 each): the step is
    learnt as the greatest common divisor of the increments seen, and each step is one frame.
    A track's first frame is placed by its timestamp against the first timestamped frame of the
    stream (so two tracks line up), else where it arrived. A frame whose number jumps further than
    ``max_jump_seconds`` ahead, or back before the track's first frame by more than a frame
    could be overtaken (``OVERTAKEN_MS``), is taken for a restart of the carrier's counters and
    placed right after the track's previous frame.
    """

    def __init__(self, sample_rate: int, max_jump_seconds: float = 60.0) -> None:
        self._frame_samples = sample_rate * FRAME_MS // 1000
        self._max_jump = int(max_jump_seconds * sample_rate)
        self._overtaken = sample_rate * OVERTAKEN_MS // 1000
        self._reference: tuple[int, int] | None = None
        """(timestamp, position) of the stream's first timestamped frame."""
        self._tracks: dict[Track, _TrackState] = {}

    def _grid(self, milliseconds: int) -> int:
        return round(milliseconds / FRAME_MS) * self._frame_samples

    def place(self, media: Media, samples: int, arrival: int) -> int:
        """Sample position of ``media`` (``samples`` long), which arrived at ``arrival``."""
        state = self._tracks.get(media.track)
        if state is None:
            state = self._tracks[media.track] = _TrackState()
            anchor = arrival
            if media.timestamp is not None and self._reference is not None:
                anchor = self._reference[1] + self._grid(media.timestamp - self._reference[0])
            state.rebase(media, max(0, anchor))
        if self._reference is None and media.timestamp is not None:
            self._reference = (media.timestamp, state.anchor)
        position: int | None = None
        if media.chunk is not None and state.first_chunk is not None:
            state.frame_samples = max(state.frame_samples, samples)
            position = state.anchor + state.chunk_steps(media.chunk) * state.frame_samples
        elif media.timestamp is not None and state.first_timestamp is not None:
            position = state.anchor + self._grid(media.timestamp - state.first_timestamp)
        restarted = position is not None and (
            position < state.anchor - self._overtaken or position > state.next + self._max_jump
        )
        if restarted:
            state.rebase(media, state.next)
        if position is None or restarted:
            position = state.next
        state.next = max(state.next, position + samples)
        return position


class _TrackState:
    __slots__ = ("anchor", "first_chunk", "first_timestamp", "frame_samples", "next", "stride")

    def __init__(self) -> None:
        self.anchor = 0
        self.first_chunk: int | None = None
        self.first_timestamp: int | None = None
        self.frame_samples = 0
        """The track's frame length: the longest frame seen (a last frame may be short)."""
        self.stride = 0
        """Chunk increment per frame of this track; 0 until two chunks were seen."""
        self.next = 0

    def chunk_steps(self, chunk: int) -> int:
        """Frames between the track's first chunk and ``chunk``."""
        assert self.first_chunk is not None
        self.stride = math.gcd(self.stride, abs(chunk - self.first_chunk))
        return (chunk - self.first_chunk) // (self.stride or 1)

    def rebase(self, media: Media, position: int) -> None:
        self.anchor = position
        self.first_chunk = media.chunk
        self.first_timestamp = media.timestamp
        self.next = max(self.next, position)


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
