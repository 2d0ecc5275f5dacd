"""The writes to the call store, as values.

The queue (:mod:`~vobiz_stream.store.queue`) carries these to its writer thread, where the
engine's ``apply_batch`` does them; so every write takes the same path, and an engine supports a
new write by handling one more value. Each names its call (``call_id``, for the log line when it
fails) and says what it does (``what``, as in "cannot store the stream").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vobiz_stream.core.callbacks import SignatureCheck, StatusCallback

__all__ = [
    "AddEvent",
    "AddStatusCallback",
    "CloseStreamRow",
    "OpenStreamRow",
    "UpdateStreamRow",
    "Write",
]


@dataclass(frozen=True, slots=True)
class OpenStreamRow:
    """A new stream of ``call_id``, which makes the call active; ``row_id`` None lets the engine
    choose the row id. Call details given fill in or replace what the store knew. ``worker`` is
    the server process holding the stream (its ``register_worker`` id), if known;
    ``byte_order`` the L16 byte order when it is known at the start (configured)."""

    call_id: str
    stream_id: str | None
    started_at: datetime
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    recording_path: Path | str | None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    account_id: str | None = None
    row_id: int | None = None
    worker: int | None = None
    byte_order: str | None = None

    @property
    def what(self) -> str:
        return "store the stream"


@dataclass(frozen=True, slots=True)
class UpdateStreamRow:
    """What is known so far of a stream; None leaves a column as it is."""

    row_id: int
    byte_order: str | None = None
    frames_received: int | None = None
    frames_malformed: int | None = None
    frames_sent: int | None = None
    error: str | None = None
    call_id: str | None = None

    @property
    def what(self) -> str:
        return f"store what is known of stream row {self.row_id}"


@dataclass(frozen=True, slots=True)
class CloseStreamRow:
    """The end of a stream (the first close wins); ``error`` None keeps an error already set."""

    row_id: int
    ended_at: datetime
    end_reason: str
    frames_received: int
    frames_malformed: int
    frames_sent: int
    error: str | None = None
    call_id: str | None = None

    @property
    def what(self) -> str:
        return f"store the end of stream row {self.row_id}"


@dataclass(frozen=True, slots=True)
class AddEvent:
    """An event of a known call; ``detail`` must be JSON-serialisable by orjson."""

    call_id: str
    stream_row: int | None
    kind: str
    detail: Mapping[str, object]
    at: datetime

    @property
    def what(self) -> str:
        return f"store a {self.kind} event"


@dataclass(frozen=True, slots=True)
class AddStatusCallback:
    """A status callback, whatever its event; it records a call the store does not know yet."""

    callback: StatusCallback
    received_at: datetime
    signature: SignatureCheck

    @property
    def call_id(self) -> str | None:
        return self.callback.call_uuid

    @property
    def what(self) -> str:
        return f"store a {self.callback.event!r} status callback"


Write = OpenStreamRow | UpdateStreamRow | CloseStreamRow | AddEvent | AddStatusCallback
"""Any write the store takes."""
