"""What the server keeps of each stream: its WAV recording, its rows in the store, its log lines.

A :class:`StreamKeeper` is the :class:`SessionHooks` of one socket. Failures
here (a full disk) are logged and recorded as the stream's error; they never reach the session, so
the call itself goes on. Its rows go to a :class:`~vobiz_stream.store.QueuedStore`, which
writes them on its own thread (and logs, with the call id, what it cannot store).
:class:`HandlingLatency` keeps, over every stream, how long after its due time each media frame
was recorded.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from vobiz_stream.app.answered import AnsweredCalls, CallDetails
from vobiz_stream.app.recorder import Recording, StreamClock
from vobiz_stream.app.session import CallSession
from vobiz_stream.audio import ByteOrder, Resampler, decode_l16, encode_l16
from vobiz_stream.core.playback import HeardAudio
from vobiz_stream.core.protocol import MAX_ID_CHARS, Media, Track
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.logtext import loggable
from vobiz_stream.recordings import RecordedStream, RecordingSink
from vobiz_stream.store import QueuedStore

log = logging.getLogger("vobiz_stream.calls")

UNANSWERED = CallDetails(None, None, None)
"""The details of a call no answer request told about."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
DISK_FULL = "disk_full"
"""How a stream's error starts when its recording stopped for want of disk space."""
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_wall_clock = time.time


def recording_name(started_at: datetime, call_id: str | None) -> str:
    """``20261121-093015-123-<call id>``: start time, then the call id with anything but
    letters, digits, ``-`` and ``_`` removed (never a path from the wire)."""
    safe = _UNSAFE.sub("", call_id or "")[:64] or "unknown-call"
    return f"{started_at:%Y%m%d-%H%M%S}-{started_at.microsecond // 1000:03d}-{safe}"


def unique_path(folder: Path, stem: str, suffix: str = ".wav") -> Path:
    """``folder/stem.wav``, or ``stem-2.wav``... if taken (reconnects of one call)."""
    candidate = folder / f"{stem}{suffix}"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


class LatencySummary(TypedDict):
    """Handling latency of the frames seen so far, in milliseconds (None before the first)."""

    count: int
    p50: float | None
    p99: float | None
    max: float | None
    unplaced: int
    """Frames whose timestamp is too far from now to be a due time (left out of the rest)."""


class HandlingLatency:
    """Per-frame handling latency: from a media frame's due time to the moment it was recorded.

    The due time is the frame's ``timestamp`` (epoch milliseconds: the carrier stamps each frame
    with the moment it is due to leave), so the figure holds everything between: the carrier's
    own lateness, the network, the wait in the server's queue, and the decoding and recording.
    Both clocks are the wall clock, so it is exact only on one machine (the benchmarks) and
    an estimate, skewed by the clock offset, against a real carrier.

    Counts go into 0.1 ms bins up to 10 s (the last bin holds everything later), so noting a
    frame costs one increment and percentiles are exact to the bin. A timestamp more than
    :attr:`PLAUSIBLE_MS` from now either way (``-2**63``, ``2**64 - 1``, a clock set to another
    year) is not a due time: such frames are counted as ``unplaced`` and kept out of the
    percentiles and the max, which one of them would otherwise poison. The Node reference sink in
    ``bench/node-sink`` keeps the same histogram, so the two servers report alike.
    """

    BIN_MS = 0.1
    BINS = 100_000
    PLAUSIBLE_MS = 600_000.0
    """How far (ms) from now a timestamp may be and still be a frame's due time: 10 minutes."""
    _BLOCK = 1000

    def __init__(self) -> None:
        self._bins = [0] * (self.BINS + 1)
        self.frames = 0
        """Frames recorded, with or without a timestamp."""
        self.unstamped = 0
        """Frames without a timestamp (not in the histogram)."""
        self.unplaced = 0
        """Frames with a timestamp too far from now to place (not in the histogram)."""
        self.max_ms = 0.0

    @property
    def count(self) -> int:
        """Frames with a plausible timestamp, hence in the histogram (counted by what is not,
        so a frame that is pays for one count only)."""
        return self.frames - self.unstamped - self.unplaced

    def note(self, due_ms: int | None) -> None:
        """A frame due at ``due_ms`` (epoch ms, None if unstamped) has been handled now."""
        self.frames += 1
        if due_ms is None:
            self.unstamped += 1
            return
        late = _wall_clock() * 1000.0 - due_ms
        index = int(late * 10.0)  # 1 / BIN_MS
        # The plausibility checks sit in the rare branches: a frame in the histogram's range
        # pays nothing for them.
        if index >= self.BINS:
            if late > self.PLAUSIBLE_MS:
                self.unplaced += 1
                return
            index = self.BINS
        elif index < 0:
            if late < -self.PLAUSIBLE_MS:
                self.unplaced += 1
                return
            index = 0
        if late > self.max_ms:  # noqa: PLR1730 - a compare, not a call, for every frame
            self.max_ms = late
        self._bins[index] += 1

    def bins_up_to(self, top: int) -> list[int]:
        """A copy of the counts of bins ``0..top`` (bin ``BINS`` holds everything later)."""
        return self._bins[: top + 1]

    def percentile(self, fraction: float) -> float | None:
        """The upper edge of the bin holding the ``fraction`` quantile (the max past 10 s)."""
        if not self.count:
            return None
        wanted = max(1, math.ceil(fraction * self.count))
        index = self._bin_holding(wanted)
        if index >= self.BINS:
            return round(self.max_ms, 3)
        return round((index + 1) * self.BIN_MS, 1)

    def _bin_holding(self, wanted: int) -> int:
        """The first bin where the running count reaches ``wanted``.

        It runs on the event loop (``GET /stats``, once a second in the benchmarks): summing
        1000 bins at a time in C finds the block, and only that block is walked, so a query
        costs well under a millisecond instead of stalling every call's frames while the
        whole histogram is converted.
        """
        bins = self._bins
        seen = 0
        for start in range(0, len(bins), self._BLOCK):
            block = bins[start : start + self._BLOCK]
            total = sum(block)
            if seen + total >= wanted:
                for offset, running in enumerate(itertools.accumulate(block, initial=seen)):
                    if running >= wanted:
                        return start + offset - 1
            seen += total
        return self.BINS

    def summary(self) -> LatencySummary:
        return {
            "count": self.count,
            "p50": self.percentile(0.5),
            "p99": self.percentile(0.99),
            "max": round(self.max_ms, 3) if self.count else None,
            "unplaced": self.unplaced,
        }


class StreamKeeper:
    """Records one stream and keeps its events; one per socket."""

    def __init__(
        self,
        recordings_dir: Path,
        store: QueuedStore,
        latency: HandlingLatency | None = None,
        record_heard: bool = True,
        answered: AnsweredCalls | None = None,
        *,
        sink: RecordingSink | None = None,
    ) -> None:
        self._recordings_dir = recordings_dir
        self._sink = sink
        """Told when the recording is created and when it is final (uploads, its event)."""
        self._recorded: RecordedStream | None = None
        self._answered = answered
        """What answer requests said of calls (from, to, direction), for a start without it."""
        self._record_heard = record_heard
        """On a bidirectional stream, record what the caller heard (right channel); False for a
        handler that never plays, whose stream is then recorded in mono."""
        self._store = store
        self._latency = latency
        self._session: CallSession | None = None
        self._call_id = "unknown-call"
        """The call the stream's rows belong to, fixed when it starts (a ``start`` that comes
        later renames the session, not rows already stored)."""
        self._recording: Recording | None = None
        self._row: int | None = None
        self._origin = 0.0
        self._clock: StreamClock | None = None
        self._channels: dict[Track, int] = {}
        """The recording's channel of each track whose first frame the clock has placed."""
        self._heard_resampler: Resampler | None = None
        self._error: str | None = None
        self.path: Path | None = None
        self.started_at: datetime | None = None
        self.numbers: tuple[str | None, str | None] = (None, None)
        """The call's From and To, once it started."""
        self.recent_events: deque[tuple[datetime, str, Mapping[str, object]]] = deque(maxlen=8)
        """The stream's last events, for the live console."""

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def _label(self) -> str:
        """The call id as log lines show it (escaped: the carrier chose it)."""
        return loggable(self._call_id, MAX_ID_CHARS)

    def _fail(self, what: str, exc: Exception) -> None:
        """Keep the call going: log, remember the first error, stop recording if it broke.

        A full disk is named (``disk_full: ...``): the recording stops there, a valid WAV of
        what was written, and the next calls record again once there is room."""
        message = f"{what}: {exc}"
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            message = f"{DISK_FULL}: {message}"
            hint = "; the recording keeps what was written: free space for the next calls"
            log.error("call %s: %s%s", self._label, message, hint)
        else:
            log.error("call %s: %s", self._label, message)
        self._error = self._error or message
        if isinstance(exc, OSError) and self._recording is not None:
            recording, self._recording = self._recording, None
            with contextlib.suppress(OSError, VobizStreamError):
                recording.close()

    def started(self, session: CallSession) -> None:
        self._session = session
        self._call_id = session.call_id or session.stream_id or "unknown-call"
        started_at = self.started_at = datetime.now(UTC)
        audio_format = session.inbound_format
        stereo = len(session.tracks) == 2 or (self._record_heard and session.options.bidirectional)
        try:
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            self.path = unique_path(
                self._recordings_dir, recording_name(started_at, session.call_id)
            )
            self._recording = Recording(self.path, audio_format.sample_rate, 2 if stereo else 1)
            self._clock = StreamClock(audio_format.sample_rate)
        except (OSError, VobizStreamError) as exc:
            self._fail("cannot create the recording", exc)
        start = session.start
        answered = (self._answered and self._answered.details(self._call_id)) or UNANSWERED
        self.numbers = (
            (start.from_number if start else None) or answered.from_number,
            (start.to_number if start else None) or answered.to_number,
        )
        # A byte order set in the stream's options is known now; a detected one comes later,
        # with its event.
        configured = session.byte_order if session.options.byte_order is not None else None
        self._row = self._store.open_stream(
            call_id=self.call_id,
            stream_id=session.stream_id,
            started_at=started_at,
            tracks=[track.value for track in session.tracks],
            encoding=audio_format.encoding.value,
            sample_rate=audio_format.sample_rate,
            recording_path=self.path,
            from_number=self.numbers[0],
            to_number=self.numbers[1],
            direction=(start.direction if start else None) or answered.direction,
            account_id=start.account_id if start else None,
            byte_order=configured.value if configured is not None else None,
        )
        if self._sink is not None and self._recording is not None and self.path is not None:
            self._recorded = RecordedStream(self.path, self.call_id, session.stream_id, self._row)
            self._sink.opened(self._recorded)
        log.info(
            "call %s: stream %s started: %s, tracks %s, recording %s",
            self._label,
            loggable(session.stream_id or "-", MAX_ID_CHARS),
            audio_format.content_type,
            "+".join(track.value for track in session.tracks),
            self.path.name if self.path else "none",
        )
        # The recording's zero: once it is open, so the time spent opening it (disk, database)
        # does not count as lateness of the first frame, which may be waiting in the socket.
        self._origin = session.now()

    def levels(self, window: float = 0.1) -> tuple[float | None, float | None]:
        """The RMS of the last ``window`` seconds of the caller (left) and of what the caller
        heard (right; None in a mono recording), 0 to 1 of full scale; computed when asked
        (by the live console), from the recording's buffer, so the frames pay nothing for it."""
        recording, session = self._recording, self._session
        if recording is None or session is None:
            return None, None
        now = self._position(session.now(), recording.sample_rate)
        count = int(window * recording.sample_rate)
        return recording.level(0, now, count), recording.level(1, now, count)

    def _position(self, moment: float, rate: int) -> int:
        return max(0, round((moment - self._origin) * rate))

    def audio(self, media: Media, samples: bytes, arrival: float) -> None:
        # Every inbound frame comes through here: kept lean (no calls it can do without).
        recording = self._recording
        clock = self._clock
        if recording is not None and clock is not None:
            rate = recording.sample_rate
            arrived_at = (arrival - self._origin) * rate  # in samples, on the recording's clock
            channel = self._channels.get(media.track)
            if channel is None:
                left = media.track is Track.INBOUND or recording.channels == 1
                channel = self._channels[media.track] = 0 if left else 1
                frame = rate // 50  # a new track starts on the 20 ms grid
                arrived_at = round(max(0.0, arrived_at) / frame) * frame
            position = clock.place(media, len(samples) >> 1, arrived_at)
            try:
                recording.add_l16(channel, position, samples)
            except (OSError, VobizStreamError) as exc:
                self._fail("recording failed", exc)
        if self._latency is not None:
            self._latency.note(media.timestamp)

    def heard(self, audio: HeardAudio) -> None:
        recording = self._recording
        session = self._session
        if recording is None or session is None or recording.channels == 1:
            return
        outbound = session.outbound_format
        samples = audio.pcm
        if outbound is not None and outbound.sample_rate != recording.sample_rate:
            if self._heard_resampler is None:
                self._heard_resampler = Resampler(outbound.sample_rate, recording.sample_rate)
            pcm = self._heard_resampler.process(decode_l16(samples, ByteOrder.LITTLE))
            samples = encode_l16(pcm, ByteOrder.LITTLE)
        try:
            position = self._position(audio.started_at, recording.sample_rate)
            recording.add_l16(1, position, samples)
        except (OSError, VobizStreamError) as exc:
            self._fail("recording failed", exc)

    def event(self, kind: str, detail: Mapping[str, object]) -> None:
        if self._row is None:
            return
        at = datetime.now(UTC)
        self.recent_events.append((at, kind, detail))
        self._store.add_event(self.call_id, self._row, kind, detail, at=at)
        if kind == "byte_order":  # settled once per stream: the stream's row shows it
            self._store.update_stream(self._row, byte_order=str(detail["order"]))

    def ended(self, reason: str) -> None:
        session = self._session
        if self._recording is not None:
            try:
                self._recording.close()
            except (OSError, VobizStreamError) as exc:
                self._fail("cannot finalise the recording", exc)
        if self._sink is not None and self._recorded is not None:
            recorded, self._recorded = self._recorded, None  # once, however often ended runs
            self._sink.finished(recorded)
        if session is None or self._row is None:
            return
        error = self._error
        if error is not None and error.startswith(DISK_FULL):
            # The recording failed, not the call: the stream ends for the disk, and the error
            # says how the call itself ended.
            reason, error = DISK_FULL, f"{error}; the call went on until {reason}"
        self._store.close_stream(
            self._row,
            ended_at=datetime.now(UTC),
            end_reason=reason,
            frames_received=session.stats.frames_received,
            frames_malformed=session.stats.frames_malformed,
            frames_sent=session.playback_stats.frames_sent,
            error=error,
            call_id=self.call_id,
        )
