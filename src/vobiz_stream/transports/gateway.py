"""What a transport shell and the server know of each other, as protocols.

The server (:class:`vobiz_stream.app.media_socket.MediaStreams`) passes a :class:`StreamGateway` in;
a transport admits a socket through it, opens the stream it gets back, hands it every frame and
ends it. The transport gives the stream a :class:`MediaTransport` to send on. So no transport
imports the server, and a new one needs nothing but this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

MAX_CLOSE_REASON_BYTES = 123
"""The longest reason a close frame carries (RFC 6455 section 5.5)."""

POLICY_VIOLATION = 1008
"""The close code of a socket refused for a token problem, or closed for holding a slot without
sending ``start`` (RFC 6455: policy violation)."""

TRY_AGAIN_LATER = 1013
"""The close code of a socket refused for any other reason (the server is full or stopping)."""


class Transport(Protocol):
    """What a session needs of its socket: send a text frame, close."""

    async def send_text(self, text: str) -> None: ...

    async def send_frame(self, data: bytes) -> None:
        """Send ``data`` (UTF-8 text, already encoded) as one text frame."""

    async def close(self) -> None: ...


@runtime_checkable
class SendsAtOnce(Protocol):
    """A transport that can also send without waiting (picows's): a session on it sends its
    paced ``playAudio`` frames from the shared frame clock's tick, with no task woken per frame."""

    def can_send_now(self) -> bool:
        """Whether a send would go out at once (the socket open and writable)."""

    def send_now(self, data: bytes) -> None:
        """Send ``data`` without waiting; :class:`ConnectionError` if the socket is closed."""


class MediaTransport(Transport, Protocol):
    """A transport shell's socket: the session's :class:`Transport`, and a server-side close."""

    async def shut_down(self) -> None:
        """Close the socket because the server is stopping (code 1001)."""

    async def close_with(self, code: int, reason: str) -> None:
        """Close the socket with close code ``code`` and ``reason`` (at most 123 bytes)."""


@dataclass(frozen=True)
class SocketRefusal:
    """Why a socket is refused: the HTTP status to refuse its upgrade with and a text that says
    what to do; ``close_code`` for a transport that can only refuse after the upgrade."""

    status: int
    text: str

    @property
    def close_code(self) -> int:
        """1008 (policy violation) for a token problem, 1013 (try again later) for the rest."""
        return POLICY_VIOLATION if self.status in (401, 403) else TRY_AGAIN_LATER


class AdmissionSlot(Protocol):
    """A place for one stream, held from admission until the stream ends."""

    def release(self) -> None:
        """Give the place back (a socket that never opened a stream); safe more than once."""


class MediaStream(Protocol):
    """One accepted socket's stream, as the transport drives it."""

    @property
    def close_code(self) -> int:
        """The code to close the socket with once :meth:`receive` says so."""

    @property
    def close_reason(self) -> bytes:
        """The close frame's reason (at most :data:`MAX_CLOSE_REASON_BYTES`)."""

    def receive(self, frame: str | bytes) -> bool:
        """Hand in one text message; True when the socket must now be closed."""

    def receive_binary(self, size: int) -> None:
        """A binary message of ``size`` bytes arrived (the carrier sends none: it is counted)."""

    def reject(self, reason: str) -> None:
        """A message the socket layer could not read at all (``reason`` says why)."""

    async def end(self, reason: str, close_code: int | None = None) -> None:
        """The socket is gone: finish the stream (recording, store, handler)."""


SlotT = TypeVar("SlotT", bound=AdmissionSlot)


class StreamGateway(Protocol[SlotT]):
    """The server, as a transport sees it."""

    draining: bool
    """True once the server stops: new sockets are refused, open ones get to finish."""

    def admit(self, query: Mapping[str, str], peer_ip: str) -> SlotT | SocketRefusal:
        """A slot for a socket from ``peer_ip`` with URL query ``query``, or why not."""

    def open_stream(
        self, transport: MediaTransport, query: Mapping[str, str], admitted: SlotT
    ) -> MediaStream:
        """The admitted socket was accepted: start its stream."""


@dataclass(frozen=True)
class SocketLimits:
    """The settings every transport applies to a carrier socket."""

    max_message_bytes: int
    """The largest message accepted; a larger one closes the socket with 1009."""
    heartbeat: float = 0.0
    """Seconds between pings to a silent carrier (0: none)."""
    send_timeout: float = 0.0
    """Seconds a send may wait for a slow reader before the socket is dropped (0: no limit)."""
