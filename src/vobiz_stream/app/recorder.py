"""One stream's recording: every track placed on one clock, written as a WAV that is always valid.

Channels: the caller (``inbound``) is the left channel, or the only one; the right channel holds
the other leg (``outbound`` track of an ``audioTrack="both"`` stream) or, on a bidirectional
stream, what the caller heard of the app's audio.

Placement: the carrier numbers its frames (``chunk``) and stamps them (``timestamp``, epoch ms),
so a frame's place on the clock comes from those, not from when it happened to arrive; gaps are
filled with silence and frames that arrive a little out of order still land where they belong.
Writing waits ``jitter_ms`` behind the newest audio for that reason, and then writes and flushes
``flush_interval_ms`` at a time; the two bound what a crash can lose (defaults: 200 + 800 ms,
one second).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vobiz_stream.audio import ByteOrder, Pcm, WavWriter, encode_l16
from vobiz_stream.core.protocol import Media, Track
from vobiz_stream.formats import FRAME_MS

OVERTAKEN_MS = 200
"""How far before a track's first frame a frame that arrived late (overtaken) may belong."""

LONGEST_STEP_MS = 100
"""The longest frame step the clock takes from a track's first frame (carriers send 20 ms)."""


class StreamClock:
    """Maps each track's frames to sample positions on the recording's one clock.

    Within a track, frames are placed by their ``chunk`` index, else by ``timestamp`` snapped to
    the 20 ms grid, else right after the previous frame. Chunk numbers may count every frame of
    the stream rather than of the track (two tracks interleaved step by 2 each): the step is
    learnt as the greatest common divisor of the increments seen, and each step is one frame.
    A step's length is the track's regular frame length, taken from its first numbered frame
    (at most ``LONGEST_STEP_MS``) and never changed after: one long frame cannot spread every
    later frame apart, and a short last frame does not move back.
    A track's first frame is placed by its timestamp against the first timestamped frame of the
    stream (so two tracks line up), else where it arrived; also where it arrived when its stamp
    puts it more than ``max_jump_seconds`` away from that (a stamp that cannot be right). A
    frame whose number jumps further than ``max_jump_seconds`` ahead, or back before the track's
    first frame by more than a frame could be overtaken (``OVERTAKEN_MS``), is taken for a
    restart of the carrier's counters and placed right after the track's previous frame. So is
    a frame whose gap would bring the silence a track's gaps add up to, in all, more than
    ``max_jump_seconds`` past the call's time when it arrived: jumps that are each believable
    cannot add up to more silence than the call has lasted, filling the disk faster than the
    carrier sends audio. A stream sent faster than real time (a test's emulated carrier) adds
    no silence, so it keeps its places however far ahead of the call it runs.
    """

    def __init__(self, sample_rate: int, max_jump_seconds: float = 60.0) -> None:
        self._frame_samples = sample_rate * FRAME_MS // 1000
        self._longest_step = sample_rate * LONGEST_STEP_MS // 1000
        self._max_jump = int(max_jump_seconds * sample_rate)
        self._overtaken = sample_rate * OVERTAKEN_MS // 1000
        self._reference: tuple[int, int] | None = None
        """(timestamp, position) of the stream's first timestamped frame."""
        self._tracks: dict[Track, _TrackState] = {}

    def _grid(self, milliseconds: int) -> int:
        return round(milliseconds / FRAME_MS) * self._frame_samples

    def place(self, media: Media, samples: int, arrival: float) -> int:
        """Sample position of ``media`` (``samples`` long), which arrived at ``arrival`` (in
        samples on the same clock, a fraction allowed): a track's first frame is placed there,
        and a track's gaps add at most ``arrival`` plus ``max_jump_seconds`` of silence.
        """
        state = self._tracks.get(media.track)
        if state is None:
            state = self._tracks[media.track] = _TrackState()
            anchor = round(arrival)
            if media.timestamp is not None and self._reference is not None:
                stamped = self._reference[1] + self._grid(media.timestamp - self._reference[0])
                if abs(stamped - arrival) <= self._max_jump:  # else the stamp is not believable
                    anchor = stamped
            state.rebase(media, max(0, anchor))
        if self._reference is None and media.timestamp is not None:
            self._reference = (media.timestamp, state.anchor)
        chunk = media.chunk
        if chunk is not None and chunk == state.next_chunk:
            # The frame right after the last, as nearly every frame is: one step on, where the
            # general rule below would put it too, unless that leaves a gap (after a short frame).
            step = state.last_position + state.frame_samples
            if step <= state.next:
                state.last_position = step
                state.next_chunk = chunk + state.stride
                state.next = max(state.next, step + samples)
                return step
        position: int | None = None
        if chunk is not None and state.first_chunk is not None:
            if not state.frame_samples:
                state.frame_samples = min(samples, self._longest_step)
            steps = chunk - state.first_chunk
            stride = state.stride
            if not stride or steps % stride:  # the gcd only changes when a step does not fit
                stride = state.stride = math.gcd(stride, abs(steps))
            position = state.anchor + steps // (stride or 1) * state.frame_samples
        elif media.timestamp is not None and state.first_timestamp is not None:
            position = state.anchor + self._grid(media.timestamp - state.first_timestamp)
        gap = 0 if position is None else position - state.next
        restarted = position is not None and (
            position < state.anchor - self._overtaken
            or gap > self._max_jump
            or (gap > 0 and state.silence + gap > arrival + self._max_jump)
        )
        if restarted:
            state.rebase(media, state.next)
        state.next_chunk = None
        if chunk is not None and position is not None and not restarted and state.stride:
            state.next_chunk = chunk + state.stride  # placed by its chunk: the next may be quick
        if position is None or restarted:
            position = state.next
        elif gap > 0:
            state.silence += gap
        state.last_position = position
        end = position + samples
        state.next = max(state.next, end)
        return position


class _TrackState:
    __slots__ = (
        "anchor", "first_chunk", "first_timestamp", "frame_samples", "last_position", "next",
        "next_chunk", "silence", "stride",
    )  # fmt: skip

    def __init__(self) -> None:
        self.anchor = 0
        self.first_chunk: int | None = None
        self.first_timestamp: int | None = None
        self.frame_samples = 0
        """The track's frame length, set by its first numbered frame (0 until then)."""
        self.stride = 0
        """Chunk increment per frame of this track (the gcd of the increments from the first
        chunk); 0 until two chunks were seen."""
        self.next = 0
        self.next_chunk: int | None = None
        """The chunk that would come right after the last frame, if that was placed by its
        chunk (else None): such a frame goes one step after it."""
        self.last_position = 0
        """Where the last frame was placed."""
        self.silence = 0
        """Samples of silence the track's gaps have added so far."""

    def rebase(self, media: Media, position: int) -> None:
        self.anchor = position
        self.first_chunk = media.chunk
        self.first_timestamp = media.timestamp
        self.next = max(self.next, position)


class Recording:
    """Collects positioned audio per channel and writes it, in order, to a WAV file.

    Audio waits in one buffer per channel (little-endian, as the WAV holds it), starting at the
    first sample not yet written. Writing happens in steps of ``flush_interval_ms``: once the
    newest audio is ``jitter_ms`` plus a step ahead of what is written, everything but the last
    ``jitter_ms`` is written (interleaved, for stereo) and flushed to disk in one go (the WAV
    writer flushes at the same interval), so the per-frame cost is one copy into a buffer, and a
    crash loses at most ``jitter_ms + flush_interval_ms``.
    """

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
        step = max(1, sample_rate * flush_interval_ms // 1000)
        self._commit_at = self._jitter + step
        """Buffered samples (written edge to newest) that trigger a write."""
        self._cursor = 0
        """Position of the first sample not yet written."""
        self._buffers: list[npt.NDArray[np.int16]] = []
        """One per channel, each starting at ``_cursor``, in the WAV's byte order."""
        self._views: list[memoryview] = []
        """The buffers' bytes: a frame of L16 bytes goes in with one plain copy."""
        self._room = 0
        self._grow(self._commit_at + sample_rate * FRAME_MS // 1000)  # grown if a burst needs more
        self._end = 0
        """One past the newest sample added on any channel."""
        self.late_samples = 0
        """Samples that arrived after their place was already written, and were dropped."""

    @property
    def samples_written(self) -> int:
        return self._writer.frames_written

    def level(self, channel: int, end: int, count: int) -> float | None:
        """The RMS (0 to 1 of full scale) of ``channel``'s ``count`` samples before position
        ``end``, from what is still buffered (the last ``jitter_ms`` or more); None when none
        of them is. Read by the live console now and then, never per frame."""
        start = max(end - count, self._cursor)
        end = min(end, self._end, self._cursor + self._room)
        if end <= start or channel >= self.channels:
            return None
        window = self._buffers[channel][start - self._cursor : end - self._cursor]
        return float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) / 32768.0

    def add(self, channel: int, position: int, pcm: Pcm) -> None:
        """Place int16 samples ``pcm`` at sample ``position`` on ``channel`` (0 left, 1 right)."""
        self.add_l16(channel, position, encode_l16(pcm, ByteOrder.LITTLE))

    def add_l16(self, channel: int, position: int, samples: bytes) -> None:
        """Place little-endian L16 ``samples`` at sample ``position`` on ``channel``: the
        server's path for every frame, a byte copy with no array made."""
        offset = position - self._cursor
        count = len(samples) >> 1
        if offset < 0:
            skip = min(-offset, count)
            self.late_samples += skip
            samples = samples[2 * skip :]
            count -= skip
            position += skip
            offset = 0
        if not count:
            return
        end = offset + count
        if end > self._room:
            # Past the buffer: a gap first writes what this frame leaves behind the jitter
            # window (the gap's silence included), so the buffer never grows to hold a gap.
            self._commit(position + count - self._jitter)
            offset = position - self._cursor
            end = offset + count
            if end > self._room:  # a frame longer than the buffer itself
                self._grow(end)
        self._views[channel][2 * offset : 2 * end] = samples
        newest = position + count
        if newest > self._end:
            self._end = newest
            if newest - self._cursor >= self._commit_at:
                self._commit(newest - self._jitter)

    def _grow(self, size: int) -> None:
        room = max(size, 2 * self._room)
        grown = [np.zeros(room, dtype="<i2") for _ in range(self.channels)]
        for old, new in zip(self._buffers, grown, strict=False):
            new[: self._room] = old
        self._buffers = grown
        self._views = [buffer.data.cast("B") for buffer in grown]
        self._room = room

    def _commit(self, upto: int) -> None:
        """Write every channel up to position ``upto``; keep what comes after it."""
        count = upto - self._cursor
        if count <= 0:
            return
        while count > self._room:  # all that is held, then the rest of a gap: silence
            self._commit(self._cursor + self._room)
            count = upto - self._cursor
        if self.channels == 1:
            self._writer.write(bytes(self._views[0][: 2 * count]))
        else:
            stereo = np.empty((count, 2), dtype="<i2")  # interleaved: L, R, L, R...
            stereo[:, 0] = self._buffers[0][:count]
            stereo[:, 1] = self._buffers[1][:count]
            self._writer.write(stereo.tobytes())
        kept = self._room - count
        for buffer in self._buffers:
            buffer[:kept] = buffer[count:]
            buffer[kept:] = 0
        self._cursor = upto

    def close(self) -> None:
        """Write everything still held (the jitter window) and finalise the file."""
        if self._writer.closed:
            return
        self._commit(self._end)
        self._writer.close()
