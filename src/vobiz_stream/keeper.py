"""What the server keeps of each stream: its WAV recording, its rows in the store, its log lines.

A :class:`StreamKeeper` is the :class:`~vobiz_stream.session.SessionHooks` of one socket. Failures
here (a full disk, a locked database) are logged and recorded as the stream's error; they never
reach the session, so the call itself goes on.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from vobiz_stream.audio import ByteOrder, Pcm, Resampler, decode_l16
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.playback import HeardAudio
from vobiz_stream.protocol import Media, Track
from vobiz_stream.recorder import Recording, StreamClock
from vobiz_stream.session import CallSession
from vobiz_stream.store import CallStore

log = logging.getLogger("vobiz_stream.calls")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


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


class StreamKeeper:
    """Records one stream and keeps its events; one per socket."""

    def __init__(self, recordings_dir: Path, store: CallStore) -> None:
        self._recordings_dir = recordings_dir
        self._store = store
        self._session: CallSession | None = None
        self._recording: Recording | None = None
        self._row: int | None = None
        self._origin = 0.0
        self._clock: StreamClock | None = None
        self._heard_resampler: Resampler | None = None
        self._error: str | None = None
        self.path: Path | None = None

    @property
    def call_id(self) -> str:
        session = self._session
        return (session.describe() if session else None) or "unknown-call"

    def _fail(self, what: str, exc: Exception) -> None:
        """Keep the call going: log, remember the first error, stop recording if it broke."""
        message = f"{what}: {exc}"
        log.error("call %s: %s", self.call_id, message)
        self._error = self._error or message
        if isinstance(exc, OSError) and self._recording is not None:
            recording, self._recording = self._recording, None
            with contextlib.suppress(OSError, VobizStreamError):
                recording.close()

    def started(self, session: CallSession) -> None:
        self._session = session
        self._origin = session.now()
        started_at = datetime.now(UTC)
        audio_format = session.inbound_format
        stereo = len(session.tracks) == 2 or session.options.bidirectional
        try:
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            self.path = unique_path(
                self._recordings_dir, recording_name(started_at, session.call_id)
            )
            self._recording = Recording(self.path, audio_format.sample_rate, 2 if stereo else 1)
        except (OSError, VobizStreamError) as exc:
            self._fail("cannot create the recording", exc)
        start = session.start
        try:
            self._row = self._store.open_stream(
                call_id=self.call_id,
                stream_id=session.stream_id,
                started_at=started_at,
                tracks=[track.value for track in session.tracks],
                encoding=audio_format.encoding.value,
                sample_rate=audio_format.sample_rate,
                recording_path=self.path,
                from_number=start.from_number if start else None,
                to_number=start.to_number if start else None,
                direction=start.direction if start else None,
                account_id=start.account_id if start else None,
            )
        except VobizStreamError as exc:
            self._fail("cannot store the stream", exc)
        log.info(
            "call %s: stream %s started: %s, tracks %s, recording %s",
            self.call_id,
            session.stream_id or "-",
            audio_format.content_type,
            "+".join(track.value for track in session.tracks),
            self.path.name if self.path else "none",
        )

    def _position(self, moment: float, rate: int) -> int:
        return max(0, round((moment - self._origin) * rate))

    def audio(self, media: Media, pcm: Pcm, arrival: float) -> None:
        recording = self._recording
        if recording is None:
            return
        clock = self._clock
        if clock is None:
            clock = self._clock = StreamClock(recording.sample_rate)
        frame = recording.sample_rate // 50  # a new track starts on the 20 ms grid
        arrival_position = round(self._position(arrival, recording.sample_rate) / frame) * frame
        position = clock.place(media, len(pcm), arrival_position)
        channel = 0 if media.track is Track.INBOUND or recording.channels == 1 else 1
        try:
            recording.add(channel, position, pcm)
        except (OSError, VobizStreamError) as exc:
            self._fail("recording failed", exc)

    def heard(self, audio: HeardAudio) -> None:
        recording = self._recording
        session = self._session
        if recording is None or session is None or recording.channels == 1:
            return
        outbound = session.outbound_format
        pcm = decode_l16(audio.pcm, ByteOrder.LITTLE)
        if outbound is not None and outbound.sample_rate != recording.sample_rate:
            if self._heard_resampler is None:
                self._heard_resampler = Resampler(outbound.sample_rate, recording.sample_rate)
            pcm = self._heard_resampler.process(pcm)
        try:
            recording.add(1, self._position(audio.started_at, recording.sample_rate), pcm)
        except (OSError, VobizStreamError) as exc:
            self._fail("recording failed", exc)

    def event(self, kind: str, detail: Mapping[str, object]) -> None:
        if self._row is None:
            return
        try:
            self._store.add_event(self.call_id, self._row, kind, detail, at=datetime.now(UTC))
        except VobizStreamError as exc:
            self._fail("cannot store an event", exc)

    def ended(self, reason: str) -> None:
        session = self._session
        if self._recording is not None:
            try:
                self._recording.close()
            except (OSError, VobizStreamError) as exc:
                self._fail("cannot finalise the recording", exc)
        if session is None or self._row is None:
            return
        try:
            self._store.close_stream(
                self._row,
                ended_at=datetime.now(UTC),
                end_reason=reason,
                frames_received=session.stats.frames_received,
                frames_malformed=session.stats.frames_malformed,
                frames_sent=session.playback_stats.frames_sent,
                error=self._error,
            )
        except VobizStreamError as exc:
            log.error("call %s: cannot store the end of the stream: %s", self.call_id, exc)
