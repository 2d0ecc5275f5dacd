"""What the app sends on the stream socket, and how the carrier takes it: ``playAudio`` into the
playout, ``checkpoint``, ``clearAudio``, the app's ``stop``; each kind of command a real carrier
would not take as sent is counted (:mod:`~vobiz_stream.emulator.conduct`)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import orjson

from vobiz_stream.core.protocol import (
    Checkpoint,
    ClearAudio,
    PlayAudio,
    StopCommand,
    Unknown,
    parse_command,
)
from vobiz_stream.emulator.conduct import Misstep, example_of
from vobiz_stream.emulator.replies import PlayoutReplies
from vobiz_stream.emulator.report import CheckpointTiming
from vobiz_stream.emulator.state import CallState
from vobiz_stream.errors import ProtocolError
from vobiz_stream.logtext import loggable

if TYPE_CHECKING:  # the socket imports picows, an optional package
    from vobiz_stream.emulator.socket import CarrierSocket

__all__ = ["AppCommands"]


def _is_json(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


class AppCommands:
    """Reads one call's commands from each socket in turn and applies them."""

    def __init__(self, call: CallState, replies: PlayoutReplies) -> None:
        self._call = call
        self._replies = replies

    async def read(self, socket: CarrierSocket) -> str:
        """Feed the app's commands to the playout; return why the stream ended."""
        call = self._call
        async for message in socket.messages():
            if message.binary:
                call.report.malformed_commands += 1
                self._misstep(Misstep.BINARY_FRAME, f"{len(message.data)} bytes")
            elif self._command(message.data):
                return "app_stop"
        if call.cutting:  # the carrier's own cut, not the app's doing
            return "cut"
        if socket.too_big is not None:
            self._misstep(Misstep.OVERSIZED, socket.too_big)
            call.drop_error = f"the app sent {socket.too_big}: the carrier closed the socket (1009)"
        elif socket.protocol_error is not None:
            call.drop_error = f"the app broke the WebSocket protocol: {socket.protocol_error}"
        elif socket.close_code is not None:
            call.drop_error = f"the app closed the socket (close code {socket.close_code})"
        else:
            call.drop_error = "the connection to the app was lost (no close frame)"
        call.timeline.add(call.now(), "app closed", call.drop_error)
        return "app_closed"

    def _misstep(self, kind: Misstep, example: str) -> None:
        """Count one sloppy command (:mod:`~vobiz_stream.emulator.conduct`); the first of each
        kind goes on the timeline."""
        call = self._call
        warning = call.conduct.note(kind, example)
        if warning.count == 1:
            call.timeline.add(call.now(), "app warning", f"{warning.what}: {example}")

    def _for_this_stream(self, stream_id: str | None, text: bytes) -> bool:
        """Whether a command is the current stream's: one without a streamId is taken as its
        (older documents leave it out), one naming another stream is not."""
        if stream_id == self._call.report.stream_id:
            return True
        if stream_id is None:
            self._misstep(Misstep.NO_STREAM_ID, example_of(text))
            return True
        self._misstep(Misstep.WRONG_STREAM_ID, example_of(text))
        return False

    def _command(self, text: bytes) -> bool:
        """Apply one command; True when it is the app's ``stop``."""
        call = self._call
        playout = call.playout
        assert playout is not None
        try:
            command = parse_command(text)
        except ProtocolError as exc:
            call.report.malformed_commands += 1
            if _is_json(text):
                self._misstep(Misstep.MALFORMED, f"{loggable(str(exc))}: {example_of(text)}")
            else:
                self._misstep(Misstep.INVALID_JSON, example_of(text))
            return False
        if not isinstance(command, Unknown) and not self._for_this_stream(command.stream_id, text):
            return False
        now = call.now()
        match command:
            case PlayAudio():
                call.commands["playAudio"] += 1
                if command.media_format != call.media_format:
                    assert call.media_format is not None
                    self._misstep(
                        Misstep.FORMAT_MISMATCH,
                        f"{command.media_format.content_type} on a "
                        f"{call.media_format.content_type} stream",
                    )
                events = playout.play(command, now)
            case Checkpoint():
                call.commands["checkpoint"] += 1
                timing = CheckpointTiming(command.name, now)
                call.report.add_checkpoint(timing)
                call.checkpoints.setdefault(command.name, deque()).append(timing)
                call.timeline.add(now, "checkpoint", command.name)
                events = playout.checkpoint(command.name, now)
                call.wake.set()
            case ClearAudio():
                call.commands["clearAudio"] += 1
                call.timeline.add(now, "clearAudio")
                events = playout.clear(now)
            case StopCommand():
                call.commands["stop"] += 1
                call.timeline.add(now, "app stop", "the app ended the stream")
                return True
            case Unknown():
                self._misstep(Misstep.UNKNOWN_EVENT, example_of(text))
                return False
        self._replies.handle(events)
        call.write_heard(playout.pop_heard())
        self._replies.follow_frames()
        return False
