"""The words a stream's end and its kept events are stored under: one list of each.

A stored end reason may carry a detail after the kind (``socket_closed (1009)``,
``socket_dropped: CancelledError``); :meth:`EndReason.of` reads the kind back.
"""

from __future__ import annotations

from enum import StrEnum


class EndReason(StrEnum):
    """How a stream ended (a stream row's ``end_reason`` starts with one of these)."""

    STOP = "stop"
    """The carrier sent ``stop``."""
    SOCKET_CLOSED = "socket_closed"
    """The socket closed without a ``stop`` (an unclean close code follows in brackets)."""
    SOCKET_DROPPED = "socket_dropped"
    """The connection broke (the exception's name follows)."""
    SOCKET_ERROR = "socket_error"
    """The WebSocket library reported an error (its text follows)."""
    START_TIMEOUT = "start_timeout"
    """No ``start`` within ``start_timeout``: the socket was closed to free its call slot."""
    MEDIA_TIMEOUT = "media_timeout"
    """No media for ``start_timeout`` after the ``start``: closed the same way."""
    CALL_MISMATCH = "call_mismatch"
    """The ``start`` named another call than the socket's stream token admits."""
    INTERRUPTED = "interrupted"
    """Still open when the server stopped without closing it; marked at the next start."""

    @classmethod
    def of(cls, stored: str) -> EndReason | None:
        """The kind of a stored end reason, detail and all; None for one this list lacks."""
        kind = stored.split(" ", 1)[0].split(":", 1)[0]
        return cls(kind) if kind in cls._value2member_map_ else None


class EventKind(StrEnum):
    """Every kind of call event a stream keeps (the session reports them, the store holds them)."""

    STOP = "stop"
    """The carrier's ``stop``, with its reason."""
    APP_STOP = "app_stop"
    """The app ended the stream."""
    DTMF = "dtmf"
    BYTE_ORDER = "byte_order"
    """The inbound L16 byte order was decided (detected or configured)."""
    CHECKPOINT_SENT = "checkpoint_sent"
    """A checkpoint left for the carrier (after the audio queued before it)."""
    CHECKPOINT_PLAYED = "checkpoint_played"
    CHECKPOINT_LOST = "checkpoint_lost"
    """A checkpoint the carrier did not confirm in time."""
    CLEAR = "clear"
    """The app's ``clearAudio`` (or a barge-in's), with the checkpoints it voided."""
    CLEARED = "cleared"
    """A ``clearAudio`` answered by ``clearedAudio``; the detail holds the round trip."""
    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_EVENT = "unknown_event"
    RECORDING_SAVED = "recording.saved"
    """Where a finished recording went (a folder or an S3 URL); a call event, of no stream."""
    EVENTS_NOT_STORED = "events_not_stored"
    """Written when a stream closes: how many events of each kind were counted, not stored."""
