"""What a :class:`~vobiz_stream.app.session.CallSession` is, read from its
:class:`~vobiz_stream.core.stream.StreamState`: the call's metadata, formats and figures."""

from __future__ import annotations

from collections.abc import Callable

from vobiz_stream.audio import ByteOrder
from vobiz_stream.core.playback import PlaybackStats
from vobiz_stream.core.protocol import Start, Track
from vobiz_stream.core.stream import StreamState
from vobiz_stream.core.stream_events import SessionStats
from vobiz_stream.formats import AudioFormat


class StreamView:
    """The read side of a session (its base class): everything here comes from ``state``."""

    state: StreamState
    now: Callable[[], float]
    """The session's clock."""

    @property
    def start(self) -> Start | None:
        return self.state.start

    @property
    def stream_id(self) -> str | None:
        return self.state.stream_id

    @property
    def call_id(self) -> str | None:
        return self.state.call_id

    @call_id.setter
    def call_id(self, call_id: str | None) -> None:
        """The call the socket URL named, until the ``start`` says."""
        self.state.call_id = call_id

    @property
    def bound_call_id(self) -> str | None:
        """The only call this socket may carry (its stream token's); a ``start`` naming another
        ends the stream (``call_mismatch``). None: any call."""
        return self.state.bound_call_id

    @bound_call_id.setter
    def bound_call_id(self, call_id: str | None) -> None:
        self.state.bound_call_id = call_id

    @property
    def mismatched_call_id(self) -> str | None:
        """The call a refused ``start`` named (see :attr:`bound_call_id`)."""
        return self.state.mismatched_call_id

    @property
    def inbound_format(self) -> AudioFormat:
        """The format of the carrier's audio: as ``start`` says, else as the answer XML asked."""
        return self.state.inbound_format

    @property
    def stats(self) -> SessionStats:
        return self.state.stats

    @property
    def end_reason(self) -> str | None:
        return self.state.end_reason

    @property
    def tracks(self) -> tuple[Track, ...]:
        return self.start.tracks if self.start else (Track.INBOUND,)

    @property
    def byte_order(self) -> ByteOrder | None:
        """The inbound L16 byte order in use (None for mu-law)."""
        return self.state.byte_order

    def describe(self) -> str:
        """A short label for log lines: the call id, else the stream id, escaped (the carrier
        chose it: a line feed in it must not start a forged log record)."""
        return self.state.describe()

    @property
    def outbound_format(self) -> AudioFormat | None:
        """The format of ``playAudio`` frames, once the app has played anything."""
        outgoing = self.state.outgoing
        return None if outgoing is None else outgoing.format

    @property
    def lead(self) -> float:
        """Seconds of app audio the carrier holds queued now, by estimate."""
        ledger = self.state.ledger
        return 0.0 if ledger is None else ledger.lead(self.now())

    @property
    def playback_stats(self) -> PlaybackStats:
        ledger = self.state.ledger
        return PlaybackStats() if ledger is None else ledger.stats
