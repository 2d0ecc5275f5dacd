"""One socket's life in a call: connect to the ``<Stream>`` URL, send ``start``, then the
caller's frames on the call clock while the app's commands are read, until one side ends it.

Faults (:mod:`~vobiz_stream.emulator.faults`) change when frames leave; a frame's ``chunk`` and
``timestamp`` always give its true place in the call, ``sequenceNumber`` counts messages in the
order they are sent. A reconnect (``maxRetries``) carries on at the caller's frame then due.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import TYPE_CHECKING

from vobiz_stream.audio import silence_byte
from vobiz_stream.core.answer import AudioTrack, Stream
from vobiz_stream.core.protocol import MediaEncoder, Start, StartShape, Track, encode_payload
from vobiz_stream.emulator.announce import announce_verbs_on_time
from vobiz_stream.emulator.callbacks import CallbackEvent
from vobiz_stream.emulator.commands import AppCommands
from vobiz_stream.emulator.keypad import press_keys
from vobiz_stream.emulator.replies import PlayoutReplies
from vobiz_stream.emulator.report import StreamLeg
from vobiz_stream.emulator.sender import MediaSender, TrackEncoder
from vobiz_stream.emulator.state import CallState
from vobiz_stream.formats import FRAME_SECONDS, AudioFormat

if TYPE_CHECKING:  # the socket imports picows, an optional package
    from vobiz_stream.emulator.socket import CarrierSocket

__all__ = ["READER_GRACE", "LegRunner"]

READER_GRACE = 1.0
"""Wall seconds the command reader gets to finish once the media found the socket gone."""

_TRACKS = {
    AudioTrack.INBOUND: (Track.INBOUND,),
    AudioTrack.OUTBOUND: (Track.OUTBOUND,),
    AudioTrack.BOTH: (Track.INBOUND, Track.OUTBOUND),
}


class LegRunner:
    """Connects and runs each socket of one call's ``<Stream>``, one at a time."""

    def __init__(self, call: CallState, replies: PlayoutReplies) -> None:
        self._call = call
        self._replies = replies
        self._commands = AppCommands(call, replies)

    async def connect(self, stream: Stream, stream_id: str) -> CarrierSocket | None:
        """The socket, or None after reporting the failure (``DroppedStream``)."""
        from vobiz_stream.emulator.socket import CarrierSocket, SocketError  # noqa: PLC0415

        call = self._call
        try:
            socket = await CarrierSocket.connect(stream.url, call.options.http_timeout)
        except SocketError as exc:
            call.drop_error = f"cannot connect to the <Stream> URL {stream.url}: {exc}"
            call.timeline.add(call.now(), "connect failed", call.drop_error)
            call.callback(CallbackEvent.DROPPED, stream_id, error=call.drop_error)
            return None
        call.socket = socket
        call.drop_error = ""
        return socket

    async def pause_before_reconnect(self) -> None:
        call = self._call
        call.report.reconnects += 1
        call.timeline.add(
            call.now(),
            "reconnect",
            f"attempt {call.report.reconnects} in {call.options.retry_delay:g}s (maxRetries)",
        )
        await asyncio.sleep(call.options.retry_delay / call.options.speed)

    async def converse(
        self,
        socket: CarrierSocket,
        stream: Stream,
        frames: list[bytes],
        leg: StreamLeg,
    ) -> tuple[str, float]:
        """One socket: ``start``, then media and commands until it ends; returns why and when
        (call clock).

        The first socket starts the call clock. A later one (a reconnect) carries on at the frame
        now due: the caller kept talking while the stream was down, and that audio is lost.
        """
        call = self._call
        tracks = _TRACKS[stream.audio_track]
        self._start(stream.content_type, tracks, leg, frame_count=len(frames))
        self._callback_start(stream, leg)
        sender = asyncio.create_task(self._send_media(frames, stream.content_type, tracks, leg))
        reader = asyncio.create_task(self._commands.read(socket))
        answerer = asyncio.create_task(self._replies.answer_checkpoints())
        done, _ = await asyncio.wait(
            {sender, reader},
            timeout=stream.stream_timeout / call.options.speed,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if sender in done and sender.result() == "app_closed" and reader not in done:
            # The socket went under the media; the reader says how (the app's stop may be in
            # the last bytes that came in, before the close).
            done |= (await asyncio.wait({reader}, timeout=READER_GRACE))[0]
        for task in (sender, reader, answerer):
            task.cancel()
        await asyncio.gather(sender, reader, answerer, return_exceptions=True)
        for task in done:
            task.result()  # a bug in a task surfaces here instead of vanishing
        if reader in done and reader.result() == "app_stop":
            return "app_stop", call.now()
        if sender in done:
            result = sender.result()
            if result == "hangup":
                return call.hangup_reason, call.call_end
            if result == "cut" and call.cut_at is not None:
                return "cut", call.cut_at
            return result, call.now()
        if reader in done:
            return reader.result(), call.now()
        end = call.now()
        call.timeline.add(end, "timeout", f"streamTimeout={stream.stream_timeout}s reached")
        return "stream_timeout", end

    def _start(
        self,
        media_format: AudioFormat,
        tracks: tuple[Track, ...],
        leg: StreamLeg,
        *,
        frame_count: int,
    ) -> None:
        """Send ``start`` (the first socket's starts the call clock) and find the socket's first
        frame: 0, or after a reconnect the first one still on time (the frames before it are
        lost)."""
        call = self._call
        report = call.report
        call.sequence = itertools.count()
        first_socket = len(report.streams) == 1
        if first_socket:
            call.began = time.monotonic()
            call.epoch_ms = int(time.time() * 1000)
        self._send_start(media_format, tracks)
        leg.started_at = round(call.now(), 4)
        if not first_socket:  # the first frame still on time; the frames before it are lost
            # Swaps are of adjacent frames only, so the earliest frame still to go is one of
            # the next two.
            next_two = call.schedule[call.next_entry : call.next_entry + 2]
            pending = min((frame for _at, frame in next_two), default=frame_count)
            leg.first_frame = max(pending, math.ceil(leg.started_at / FRAME_SECONDS))
        first = leg.first_frame
        call.timeline.add(
            leg.started_at,
            "start",
            f"{media_format.content_type}, {'+'.join(t.value for t in tracks)}"
            + (f", stream {len(report.streams)} from frame {first}" if first else ""),
        )

    def _callback_start(self, stream: Stream, leg: StreamLeg) -> None:
        """``StartStream``; with the first socket, the verbs' timeline and the key presses
        begin."""
        call = self._call
        call.callback(CallbackEvent.START, leg.stream_id, extra={"ServiceURL": stream.url})
        first_socket = len(call.report.streams) == 1
        if first_socket and call.plan is not None:
            call.announcer = asyncio.create_task(announce_verbs_on_time(call, call.plan))
        if first_socket and call.options.dtmf:
            call.keypad = asyncio.create_task(press_keys(call))

    def _send_start(self, media_format: AudioFormat, tracks: tuple[Track, ...]) -> None:
        call = self._call
        options, report = call.options, call.report
        legacy = options.legacy_shape
        call.send(
            Start(
                stream_id=report.stream_id,
                call_id=report.call_uuid,
                account_id=options.account_id,
                tracks=tracks,
                media_format=media_format,
                from_number=options.from_number if legacy else None,
                to_number=options.to_number if legacy else None,
                direction="inbound" if legacy else None,
                sequence_number=call.next_sequence(),
                extra_headers=None if legacy else "{}",
                shape=StartShape.FLAT if legacy else StartShape.NESTED,
            )
        )

    async def _send_media(
        self,
        frames: list[bytes],
        media_format: AudioFormat,
        tracks: tuple[Track, ...],
        leg: StreamLeg,
    ) -> str:
        """Every frame still to go from the socket's first, each on its deadline
        ``began + at / speed`` (``at`` from the schedule, ``n * 20 ms`` without faults); then
        wait out the call, or cut the connection at ``drop_at``.

        Returns ``hangup``, ``cut``, or ``app_closed`` if the socket went away under it.
        """
        call = self._call
        socket = call.socket
        assert socket is not None
        seed_shape = call.options.legacy_shape
        sender = MediaSender(
            socket=socket,
            schedule=call.schedule,
            payloads=frames,
            silence=encode_payload(
                bytes([silence_byte(media_format.encoding)]) * media_format.frame_bytes
            ).encode(),
            tracks=[
                TrackEncoder(
                    MediaEncoder(
                        track=track,
                        stream_id=call.report.stream_id,
                        media_format=media_format if seed_shape else None,
                        extra_headers=None if seed_shape else "{}",
                    ),
                    caller=track is Track.INBOUND,
                )
                for track in tracks
            ],
            began=call.began,
            speed=call.options.speed,
            epoch_ms=call.epoch_ms,
            first_frame=leg.first_frame,
            next_entry=call.next_entry,
            sequence=call.sequence,
            lateness=[call.lateness]
            + ([] if call.options.frame_lateness is None else [call.options.frame_lateness]),
            on_sent=None,
        )
        call.sender = sender
        self._replies.follow_frames()
        try:
            all_sent = await sender.run()
        finally:
            call.sender = None
            call.next_entry = sender.next_entry
            leg.frames_sent += sender.sent
            call.report.frames_sent += sender.sent
            call.report.frames_skipped += sender.skipped
        if not all_sent:
            call.drop_error = call.drop_error or "the socket dropped under the media"
            return "app_closed"
        cut_at = call.cut_at
        delay = call.began + (call.call_end if cut_at is None else cut_at) / call.options.speed
        delay -= time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if cut_at is None:
            return "hangup"
        self._cut_connection(cut_at)
        return "cut"

    def _cut_connection(self, at: float) -> None:
        """Abort the TCP connection under the socket: no close frame, as when a network dies."""
        call = self._call
        call.cutting = True
        call.drop_error = f"the carrier cut the connection at {at:g}s (drop_at): no close frame"
        call.timeline.add(at, "cut", call.drop_error)
        socket = call.socket
        assert socket is not None
        socket.abort()
