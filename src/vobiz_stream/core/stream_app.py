"""A stream's metadata and the app's side of it, I/O-free: play, checkpoint, clear, stop, and
the frames due on the wire (the base of :class:`~vobiz_stream.core.stream.StreamState`)."""

from __future__ import annotations

from collections.abc import Callable

from vobiz_stream.audio import Pcm
from vobiz_stream.core.outgoing import OutgoingAudio
from vobiz_stream.core.playback import PlaybackLedger, PlayMark
from vobiz_stream.core.protocol import MAX_ID_CHARS, Start, StopCommand, encode_bytes
from vobiz_stream.core.stream_events import SessionError, SessionOptions, SessionStats
from vobiz_stream.formats import AudioFormat
from vobiz_stream.logtext import loggable


class AppSide:
    """What the app does to a stream, and what the stream is (see ``StreamState``)."""

    def __init__(
        self, options: SessionOptions | None, mark: Callable[[str], PlayMark] = PlayMark
    ) -> None:
        self.options = options or SessionOptions()
        self._mark = mark
        self.start: Start | None = None
        self.stream_id: str | None = None
        self.call_id: str | None = None
        self._inbound_width = 0
        self.inbound_format = self.options.expected_format
        self.stats = SessionStats()
        self.closed = False
        self.end_reason: str | None = None
        self.outgoing: OutgoingAudio | None = None
        """The app's side, from its first play, checkpoint or clear."""

    @property
    def inbound_format(self) -> AudioFormat:
        """The format of the carrier's audio: as ``start`` says, else as expected."""
        return self._inbound_format

    @inbound_format.setter
    def inbound_format(self, audio_format: AudioFormat) -> None:
        self._inbound_format = audio_format
        self._inbound_width = audio_format.encoding.sample_width  # read for every frame

    def describe(self) -> str:
        """The call id, else the stream id, escaped, for log lines (the carrier chose it)."""
        return loggable(self.call_id or self.stream_id or "unknown-call", MAX_ID_CHARS)

    # -- the app's audio ----------------------------------------------------------------------

    def _outgoing(self) -> OutgoingAudio:
        if self.closed:
            raise SessionError(f"call {self.describe()}: the stream has ended")
        if not self.options.bidirectional:
            raise SessionError(
                f"call {self.describe()}: the stream is one-way, so the carrier ignores playback; "
                'answer with <Stream bidirectional="true"> to play audio'
            )
        if self.outgoing is None:
            options = self.options
            self.outgoing = OutgoingAudio(
                options.outbound_format or self.inbound_format,
                options.outbound_byte_order,
                options.max_lead,
                options.confirm_grace,
                self._mark,
            )
        return self.outgoing

    def play(self, audio: Pcm | bytes, sample_rate: int, *, final: bool = True) -> PlayMark:
        """Queue audio for the caller (int16 samples, or little-endian bytes, at
        ``sample_rate``); it goes out through :meth:`due`. The handle resolves to played,
        cleared or lost. ``final=False`` carries the resampler and the last partial frame over
        to the next call (streamed chunks of one utterance)."""
        return self._outgoing().play(audio, sample_rate, final, self.stream_id)

    def checkpoint(self, name: str) -> PlayMark:
        """Ask the carrier to confirm when everything queued so far has played."""
        return self._outgoing().checkpoint(name)

    def clear(self, now: float) -> tuple[str, ...]:
        """Drop unsent audio and void the checkpoints; the ``clearAudio`` is the next frame
        :meth:`due` returns. Returns the voided checkpoints' names."""
        self._outgoing()
        return tuple(handle.name for handle in self._drop_playback(now))

    def _drop_playback(self, now: float) -> list[PlayMark]:
        assert self.outgoing is not None
        return self.outgoing.clear(now, self.stream_id)

    def stop(self) -> bytes:
        """The ``stop`` frame that ends the stream from the app's side."""
        return encode_bytes(StopCommand(stream_id=self.stream_id))

    def due(self, now: float) -> list[bytes]:
        """The frames to send at ``now``, in order (UTF-8 JSON text frames)."""
        if self.outgoing is None or self.closed:
            return []
        return self.outgoing.due(now, self.stream_id)

    def expire(self, now: float) -> list[PlayMark]:
        """The checkpoints the carrier left unconfirmed past their grace: lost."""
        return [] if self.outgoing is None else self.outgoing.ledger.expire(now)

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`due` (or :meth:`expire`) next has something; None while nothing waits."""
        if self.outgoing is None or self.closed:
            return None
        return self.outgoing.next_deadline(now)

    @property
    def ledger(self) -> PlaybackLedger | None:
        return None if self.outgoing is None else self.outgoing.ledger
