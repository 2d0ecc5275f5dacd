"""One emulated Vobiz call over aiohttp: answer URL, ``<Stream>`` socket, caller audio, playout.

:func:`run_call` does what the carrier does (protocol.md sections 1-3 and 6): it POSTs the answer
URL with the fields Vobiz sends, reads the XML, connects to the ``<Stream>`` URL, sends ``start``
and then the caller's audio as ``media`` frames every 20 ms, while it reads the app's commands into
a :class:`~vobiz_stream.emulator.playout.Playout` and answers checkpoints and clears when the
model says. When the call hangs up it closes the socket without a ``stop``, as live Vobiz does.
Everything it saw goes into a :class:`~vobiz_stream.emulator.report.CallReport`, with each kind
of command a real carrier would not take as sent counted (:mod:`~vobiz_stream.emulator.conduct`).

The call hangs up when the caller's audio ends or, for a ``<Stream>`` without ``keepCallAlive``
(which runs in the background), when the verbs after it end the call (a ``<Hangup>``, or they run
out: :mod:`vobiz_stream.emulator.verbs`); their audio (``<Speak>``...) goes into the heard WAV.
A stream that ends before the call (the app's ``stop``, the app closing the socket,
``streamTimeout``) leaves the call up while verbs after the ``<Stream>`` last: those still running
for a background stream, all of them after a ``keepCallAlive`` one.

Along the way it sends the status callbacks of section 5 to the ``statusCallbackUrl``
(:mod:`vobiz_stream.emulator.callbacks`, in the background: a slow endpoint never delays a frame):
``StartStream`` when a socket is up, ``PlayedStream``/``ClearedAudio``/``DegradedStream`` as the
playout says, ``DroppedStream`` when a connect fails or the socket drops (the app closing it, the
``drop_at`` cut), ``StopStream`` only when the stream ends on the carrier's side while the call
goes on (the app's ``stop``, ``streamTimeout``); an ordinary hangup sends none. With
``maxRetries`` a dropped or failed socket is followed by a new one (new ``start``, new streamId,
same callId), up to that many times; the caller audio carries on at the frame then due.

Faults (:mod:`vobiz_stream.emulator.faults`) change when frames leave: jitter, bunches, dropped and
swapped frames, and a cut of the connection with no close frame. A frame's ``chunk`` and
``timestamp`` always give its true place in the call; ``sequenceNumber`` counts messages in the
order they are sent.

The call has one clock: ``start`` is sent at 0 and frame ``n`` is due at ``n * 20 ms`` (divided by
``speed`` on the wall clock), or at its time in the fault schedule, each deadline computed from the
start, never by sleeping a fixed step, so pacing never drifts. The playout model runs on the same
clock, so the WAV of what the caller heard lines up sample for sample with the caller's audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
import time
import uuid
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import numpy as np
import orjson

from vobiz_stream.audio import ByteOrder, Pcm, WavWriter, silence_byte
from vobiz_stream.emulator.answer import AnswerError, fetch_answer
from vobiz_stream.emulator.callbacks import (
    CALLBACK_TIMEOUT,
    CallbackContext,
    CallbackEvent,
    CallbackSender,
    SignatureForm,
    SignatureVersion,
)
from vobiz_stream.emulator.conduct import AppConduct, Misstep, example_of
from vobiz_stream.emulator.faults import Faults, ScheduledFrame, plan_faults
from vobiz_stream.emulator.playout import (
    DEFAULT_JITTER_BUFFER,
    DEFAULT_QUEUE_CAP,
    CheckpointReached,
    Degraded,
    PlaybackStarted,
    Playout,
    PlayoutEvent,
    QueueCleared,
)
from vobiz_stream.emulator.report import (
    CallbackSent,
    CallReport,
    CheckpointTiming,
    ClearTiming,
    StreamLeg,
    Timeline,
    TimelineEntry,
    VerbTiming,
)
from vobiz_stream.emulator.sender import MediaSender, TrackEncoder
from vobiz_stream.emulator.source import CallerSource, EmulatorError, read_caller_audio
from vobiz_stream.emulator.verbs import VerbPlan, Voice, plan_verbs, voice
from vobiz_stream.errors import ProtocolError, XmlError
from vobiz_stream.extras import require
from vobiz_stream.formats import FRAME_SECONDS, AudioFormat, Encoding
from vobiz_stream.logtext import loggable
from vobiz_stream.protocol import (
    DTMF_DIGITS,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    MediaEncoder,
    PlayAudio,
    PlayedStream,
    Start,
    StartShape,
    Stop,
    StopCommand,
    Track,
    Unknown,
    encode,
    encode_payload,
    parse_command,
)
from vobiz_stream.xml import (
    SHOWN_CHARS,
    SHOWN_ITEMS,
    AudioTrack,
    Stream,
    UnknownVerb,
    Verb,
    parse_response,
)

if TYPE_CHECKING:  # the socket imports picows, an optional package
    from vobiz_stream.emulator.socket import CarrierSocket

__all__ = ["CallOptions", "parse_key_press", "run_call"]


_TRACKS = {
    AudioTrack.INBOUND: (Track.INBOUND,),
    AudioTrack.OUTBOUND: (Track.OUTBOUND,),
    AudioTrack.BOTH: (Track.INBOUND, Track.OUTBOUND),
}


def parse_key_press(text: str) -> tuple[float, str]:
    """``SECONDS:DIGIT`` (``5:4``, ``7.5:#``) as a :attr:`CallOptions.dtmf` entry."""
    seconds, _, digit = text.partition(":")
    try:
        at = float(seconds)
    except ValueError:
        at = math.nan
    if not at >= 0 or len(digit) != 1 or digit not in DTMF_DIGITS:
        raise EmulatorError(
            f"a key press is SECONDS:DIGIT with a digit among 0-9 * # A-D (5:4), got {text!r}"
        )
    return at, digit


READER_GRACE = 1.0
"""Wall seconds the command reader gets to finish once the media found the socket gone."""

CALL_ENDINGS = frozenset({"hangup", "xml_hangup", "xml_done", "answer_ended"})
"""End reasons where the stream ends because the call does (no ``StopStream`` is sent)."""

_ENDING_DETAIL = {
    "xml_hangup": "<Hangup>: the call ends",
    "xml_done": "the verbs after the <Stream> ran out: the call ends",
    "answer_ended": "the last verb is a <Stream> without keepCallAlive: the call ends",
}


@dataclass(frozen=True)
class CallOptions:
    """How the emulated carrier behaves; the defaults are a live Vobiz call."""

    from_number: str = "+919876543210"
    to_number: str = "+918045678901"
    account_id: str = "500025"
    legacy_shape: bool = False
    """Send the legacy flat ``start`` and legacy-shape ``media`` instead of the live shapes."""
    l16_byte_order: ByteOrder = ByteOrder.LITTLE
    """Byte order of the L16 the carrier sends: little-endian, as live Vobiz sends it (big-endian,
    network order, is what older documents describe)."""
    playback_byte_order: ByteOrder = ByteOrder.LITTLE
    """How the carrier reads ``playAudio`` L16."""
    send_stop: bool = False
    """Send the documented ``stop`` before closing (live Vobiz sends none)."""
    hangup_after: float | None = None
    """Call seconds until hangup: cuts the caller audio short or pads it with silence."""
    speed: float = 1.0
    """Run the call's clock this many times faster than the wall clock (for tests)."""
    heard_path: Path | None = None
    """Write what the caller heard here (WAV at the stream's rate, on the call clock)."""
    caller_path: Path | None = None
    """Write the caller audio exactly as sent (after resampling and padding)."""
    queue_cap: float = DEFAULT_QUEUE_CAP
    jitter_buffer: float = DEFAULT_JITTER_BUFFER
    """Seconds of the app's audio the carrier holds before playing it out (0: none): app frames
    up to this late are not heard as gaps."""
    late_tolerance: float = 0.005
    """Wall-clock seconds after its deadline past which a media frame counts as late."""
    http_timeout: float = 10.0
    on_event: Callable[[TimelineEntry], None] | None = None
    """Called with each timeline entry as it happens (the CLI prints them)."""
    frame_lateness: array[float] | None = None
    """Also append here how late each media frame left, in wall-clock seconds after its deadline:
    a load's calls share one array, its pacing histogram."""
    auth_token: str | None = None
    """Sign status callbacks with ``X-Vobiz-Signature-V3`` (or ``signature``) keyed by this
    token."""
    signature: SignatureVersion = SignatureVersion.V3
    """Which signature signed callbacks carry: V3, or the older V2."""
    signature_form: SignatureForm = SignatureForm.SDK
    """What the signature covers: as Vobiz's Python SDK verifies it (the URL and the sorted
    fields), or as the docs describe it (the full URL alone)."""
    callback_timeout: float = CALLBACK_TIMEOUT
    """Wall-clock seconds a status callback may take before it counts as failed."""
    retry_delay: float = 0.5
    """Call-clock seconds between a dropped socket and the reconnect (``maxRetries``)."""
    faults: Faults = field(default_factory=Faults)
    """Jitter, bunched, dropped and reordered frames, a cut connection (none by default)."""
    dtmf: tuple[tuple[float, str], ...] = ()
    """Keys the caller presses: (call seconds, digit) pairs, each sent as a ``dtmf`` event."""

    def check(self) -> None:
        for at, digit in self.dtmf:
            if not at >= 0 or len(digit) != 1 or digit not in DTMF_DIGITS:
                raise EmulatorError(
                    f"a key press is (seconds >= 0, one of 0-9 * # A-D), got ({at}, {digit!r})"
                )
        if not self.speed > 0:
            raise EmulatorError(f"speed must be positive, got {self.speed}")
        if self.hangup_after is not None and not self.hangup_after > 0:
            raise EmulatorError(f"hangup_after must be positive seconds, got {self.hangup_after}")
        if not self.queue_cap > 0:
            raise EmulatorError(f"queue_cap must be positive seconds, got {self.queue_cap}")
        if not 0 <= self.jitter_buffer < self.queue_cap:
            raise EmulatorError(
                "jitter_buffer must be 0 or more seconds, under queue_cap, "
                f"got {self.jitter_buffer}"
            )
        if not self.callback_timeout > 0:
            raise EmulatorError(
                f"callback_timeout must be positive seconds, got {self.callback_timeout}"
            )
        if not self.retry_delay >= 0:
            raise EmulatorError(f"retry_delay must be 0 or more seconds, got {self.retry_delay}")
        self.faults.check()


def _is_json(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


class _CallFailedError(Exception):
    """The call cannot go on; the message is the report's ``failure``."""


async def run_call(
    answer_url: str,
    audio_path: Path | CallerSource,
    options: CallOptions | None = None,
    *,
    http: aiohttp.ClientSession | None = None,
) -> CallReport:
    """Place one emulated call to ``answer_url`` with the caller saying ``audio_path``.

    ``audio_path`` is an audio file (any WAV, FLAC, Ogg, MP3...), or audio already read
    (:func:`read_caller_audio`), which many calls can share. ``http`` is a session to reuse
    (many calls at once: give it a connector without a connection limit, since every stream
    holds one); without it the call opens its own.

    Raises :class:`EmulatorError` for bad options or unreadable audio, before any request; a call
    that fails on the app's side (HTTP error, invalid XML, no socket) comes back as a report with
    ``failure`` set.
    """
    options = options or CallOptions()
    options.check()
    require("picows", "the carrier emulator")  # its stream socket is a picows client
    caller = audio_path if isinstance(audio_path, CallerSource) else read_caller_audio(audio_path)
    call = _Call(answer_url, caller, options)
    async with contextlib.AsyncExitStack() as owned:
        if http is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.http_timeout)
            http = await owned.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        try:
            stream = await call.answer(http)
            await call.stream(http, stream)
        except _CallFailedError as failed:
            call.report.failure = str(failed)
            call.timeline.add(call.now(), "failed", str(failed))
        except BaseException:
            call.abort_callbacks()  # cancelled (or a bug): do not hold the caller up
            raise
        await call.close_callbacks()
    return call.finish()


class _Call:
    def __init__(self, answer_url: str, caller: CallerSource, options: CallOptions) -> None:
        self.caller = caller
        self.options = options
        self.report = CallReport(
            answer_url=answer_url,
            call_uuid=str(uuid.uuid4()),
            legacy_shape=options.legacy_shape,
            speed=options.speed,
            jitter_buffer=options.jitter_buffer,
        )
        self.timeline = Timeline(options.on_event)
        self._conduct = AppConduct(self.report.call_uuid)
        self._media_format: AudioFormat | None = None
        """The stream's format, once its ``<Stream>`` is known."""
        self._began = time.monotonic()
        self._sequence = itertools.count()
        self._lateness: array[float] = array("d")
        self._commands: Counter[str] = Counter()
        self._checkpoints: dict[str, deque[CheckpointTiming]] = {}
        self._wake = asyncio.Event()
        self._heard: WavWriter | None = None
        self._sender: MediaSender | None = None
        """The media sender of the socket up now, while it runs."""
        self._heard_left = 0
        self._heard_position = 0
        """Samples of the call clock written to the heard WAV."""
        self._socket: CarrierSocket | None = None
        self._epoch_ms = 0
        """Wall-clock epoch milliseconds of ``start``: the base of media timestamps."""
        self._playout: Playout | None = None
        self._callbacks: CallbackSender | None = None
        self._call_end = 0.0
        """Call-clock seconds when the call hangs up, unless the stream ends first: the end of
        the caller audio, or of the verbs after a background ``<Stream>``."""
        self._caller_end = 0.0
        """Call-clock seconds when the caller audio ends (the caller hangs up)."""
        self._hangup_reason = "hangup"
        """The end reason at ``_call_end``: the caller's, or the verbs'."""
        self._schedule: tuple[ScheduledFrame, ...] = ()
        """When each caller frame leaves (:mod:`~vobiz_stream.emulator.faults`)."""
        self._next_entry = 0
        """Index in the schedule of the next frame to send; it carries over a reconnect."""
        self._cut_at: float | None = None
        """Call seconds at which the connection is cut (the ``drop_at`` fault)."""
        self._cutting = False
        self._drop_error = ""
        """Why the current socket failed or dropped: ``Error`` of its ``DroppedStream``."""
        self._verbs_after: tuple[Verb, ...] = ()
        """The answer's verbs after its ``<Stream>``."""
        self._voice = Voice()
        self._plan: VerbPlan | None = None
        """The verbs after the ``<Stream>`` on the call clock, once they run."""
        self._announced = 0
        """Steps of the plan already on the timeline and in the report."""
        self._announcer: asyncio.Task[None] | None = None
        self._keypad: asyncio.Task[None] | None = None

    def now(self) -> float:
        """Seconds on the call clock (0 is ``start``; before it, the time since the call began)."""
        return (time.monotonic() - self._began) * self.options.speed

    # -- answer -------------------------------------------------------------------------------

    async def answer(self, http: aiohttp.ClientSession) -> Stream:
        """POST the answer URL as Vobiz does and return the ``<Stream>`` to connect to."""
        options, report = self.options, self.report
        form = {
            "CallUUID": report.call_uuid,
            "From": options.from_number,
            "To": options.to_number,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "Event": "StartApp",
            "ParentAuthID": options.account_id,
        }
        try:
            status, body = await fetch_answer(http, report.answer_url, form, options.http_timeout)
        except AnswerError as exc:
            raise _CallFailedError(str(exc)) from None
        self.timeline.add(self.now(), "answer", f"HTTP {status}, {len(body)} bytes")
        if status != 200:
            raise _CallFailedError(f"answer URL returned HTTP {status}: {loggable(body, 200)}")
        try:
            response_xml = parse_response(body)
        except XmlError as exc:
            raise _CallFailedError(f"{exc}; Vobiz drops the call") from None
        for warning in response_xml.warnings:
            report.warnings.append(warning)
            self.timeline.add(self.now(), "xml warning", warning)
        if not response_xml.streams:
            raise _CallFailedError("the answer XML has no <Stream>: there is nothing to connect to")
        verbs = response_xml.verbs
        index = next(i for i, verb in enumerate(verbs) if isinstance(verb, Stream))
        skipped = [
            verb.tag if isinstance(verb, UnknownVerb) else verb.TAG for verb in verbs[:index]
        ]
        for name in skipped[:SHOWN_ITEMS]:
            warning = (
                f"<{loggable(name, SHOWN_CHARS)}> before the <Stream> is not emulated: "
                "the call starts at the stream"
            )
            report.warnings.append(warning)
            self.timeline.add(self.now(), "xml warning", warning)
        if len(skipped) > SHOWN_ITEMS:
            warning = f"{len(skipped) - SHOWN_ITEMS} more verbs before the <Stream>, not emulated"
            report.warnings.append(warning)
            self.timeline.add(self.now(), "xml warning", warning)
        self._verbs_after = verbs[index + 1 :]
        stream = response_xml.streams[0]
        report.stream_url = stream.url
        report.content_type = stream.content_type.content_type
        if stream.content_type.encoding is Encoding.L16:
            report.l16_byte_order = self.options.l16_byte_order.value
        report.bidirectional = stream.bidirectional
        return stream

    # -- the stream ---------------------------------------------------------------------------

    async def stream(self, http: aiohttp.ClientSession, stream: Stream) -> None:
        """Run the ``<Stream>``: one socket, and a new one per reconnect (``maxRetries``)."""
        options, report = self.options, self.report
        if stream.status_callback_url is not None:
            self._callbacks = CallbackSender(
                http,
                stream.status_callback_url,
                stream.status_callback_method,
                CallbackContext(
                    call_uuid=report.call_uuid,
                    from_number=options.from_number,
                    to_number=options.to_number,
                    account_id=options.account_id,
                    extra_headers=stream.extra_headers,
                ),
                clock=self.now,
                auth_token=options.auth_token,
                signature=options.signature,
                signature_form=options.signature_form,
                timeout=options.callback_timeout,
                on_sent=self._callback_sent,
            )
        media_format = self._media_format = stream.content_type
        rate = media_format.sample_rate
        self._playout = Playout(
            rate,
            byte_order=options.playback_byte_order,
            bidirectional=stream.bidirectional,
            queue_cap=options.queue_cap,
            jitter_buffer=options.jitter_buffer,
        )
        if self.caller.source is not None:
            report.caller_audio = self.caller.source.describe(rate)
            self.timeline.add(self.now(), "caller audio", report.caller_audio)
        pcm = self.caller.at_rate(rate, options.hangup_after)
        frames = self.caller.payloads(media_format, options.l16_byte_order, options.hangup_after)
        self._caller_end = len(frames) * FRAME_SECONDS
        self._voice = await voice(self._verbs_after, rate)
        if not stream.keep_call_alive:  # a background stream: the verbs run alongside
            self._plan = plan_verbs(self._verbs_after, rate, self._voice)
            if self._plan.end is not None:
                last = math.ceil(self._plan.end / media_format.frame_samples)
                if last <= len(frames):  # the verbs end the call (on the frame grid)
                    frames = frames[:last]
                    self._hangup_reason = self._plan.reason
        self._call_end = len(frames) * FRAME_SECONDS
        self._plan_faults(len(frames))
        sent = len(frames) * media_format.frame_samples
        with contextlib.ExitStack() as files:
            if options.caller_path is not None:
                writer = files.enter_context(WavWriter(options.caller_path, rate))
                writer.write(pcm[:sent])
                writer.write(np.zeros(max(0, sent - len(pcm)), np.int16))
            if options.heard_path is not None:
                self._heard = files.enter_context(WavWriter(options.heard_path, rate))
                self._heard_left = round(self._caller_end * rate)
            try:
                await self._run_sockets(stream, frames)
            finally:
                for task in (self._announcer, self._keypad):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

    def _plan_faults(self, frame_count: int) -> None:
        """The send schedule of the call's frames; the report keeps what faults were injected."""
        faults = self.options.faults
        seed = faults.seed if faults.seed is not None else secrets.randbelow(2**32)
        plan = plan_faults(frame_count, faults, seed)
        self._schedule = plan.schedule
        self._cut_at = plan.injected.cut_at
        if faults.active:
            self.report.faults = plan.injected

    async def _run_sockets(self, stream: Stream, frames: list[bytes]) -> None:
        """Connect, converse, and while ``maxRetries`` allows, reconnect after a drop.

        At most ``1 + maxRetries`` connects: the loop is bounded by the retry count.
        """
        retries = stream.max_retries
        while True:
            stream_id = str(uuid.uuid4())
            socket = await self._connect(stream, stream_id)
            if socket is None:
                if retries > 0 and self.now() < self._call_end:
                    retries -= 1
                    await self._pause_before_reconnect()
                    continue
                if not self.report.streams:
                    raise _CallFailedError(self._drop_error)
                await self._end_without_socket()
                await self._go_on_with_verbs(self.report.duration)
                return
            leg = StreamLeg(stream_id, started_at=0.0, first_frame=0)
            self.report.streams.append(leg)
            self.report.stream_id = stream_id
            try:
                reason, end = await self._converse(socket, stream, frames, leg)
                if reason == "app_closed" and retries > 0 and end < self._call_end:
                    self._drop(leg, end)
                else:
                    await self._end(leg, reason, end)
            finally:
                await socket.close()
                self.timeline.add(
                    self.now(),
                    "closed",
                    "connection cut: no close frame"
                    if leg.end_reason == "cut"
                    else f"socket closed ({leg.end_reason or 'error'})",
                )
            if leg.end_reason != "dropped":
                await self._go_on_with_verbs(self.report.duration)
                return
            retries -= 1
            await self._pause_before_reconnect()

    async def _connect(self, stream: Stream, stream_id: str) -> CarrierSocket | None:
        """The socket, or None after reporting the failure (``DroppedStream``)."""
        from vobiz_stream.emulator.socket import CarrierSocket, SocketError  # noqa: PLC0415

        try:
            socket = await CarrierSocket.connect(stream.url, self.options.http_timeout)
        except SocketError as exc:
            self._drop_error = f"cannot connect to the <Stream> URL {stream.url}: {exc}"
            self.timeline.add(self.now(), "connect failed", self._drop_error)
            self._callback(CallbackEvent.DROPPED, stream_id, error=self._drop_error)
            return None
        self._socket = socket
        self._drop_error = ""
        return socket

    async def _pause_before_reconnect(self) -> None:
        self.report.reconnects += 1
        self.timeline.add(
            self.now(),
            "reconnect",
            f"attempt {self.report.reconnects} in {self.options.retry_delay:g}s (maxRetries)",
        )
        await asyncio.sleep(self.options.retry_delay / self.options.speed)

    async def _converse(
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
        report, options = self.report, self.options
        media_format = stream.content_type
        tracks = _TRACKS[stream.audio_track]
        self._sequence = itertools.count()
        first_socket = len(report.streams) == 1
        if first_socket:
            self._began = time.monotonic()
            self._epoch_ms = int(time.time() * 1000)
        self._send_start(media_format, tracks)
        leg.started_at = round(self.now(), 4)
        if not first_socket:  # the first frame still on time; the frames before it are lost
            # Swaps are of adjacent frames only, so the earliest frame still to go is one of
            # the next two.
            next_two = self._schedule[self._next_entry : self._next_entry + 2]
            pending = min((frame for _at, frame in next_two), default=len(frames))
            leg.first_frame = max(pending, math.ceil(leg.started_at / FRAME_SECONDS))
        first = leg.first_frame
        self.timeline.add(
            leg.started_at,
            "start",
            f"{media_format.content_type}, {'+'.join(t.value for t in tracks)}"
            + (f", stream {len(report.streams)} from frame {first}" if first else ""),
        )
        self._callback(CallbackEvent.START, leg.stream_id, extra={"ServiceURL": stream.url})
        if first_socket and self._plan is not None:
            self._announcer = asyncio.create_task(self._announce_verbs_on_time(self._plan))
        if first_socket and options.dtmf:
            self._keypad = asyncio.create_task(self._press_keys())
        sender = asyncio.create_task(self._send_media(frames, media_format, tracks, leg))
        reader = asyncio.create_task(self._read_commands(socket))
        answerer = asyncio.create_task(self._answer_checkpoints())
        done, _ = await asyncio.wait(
            {sender, reader},
            timeout=stream.stream_timeout / options.speed,
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
            return "app_stop", self.now()
        if sender in done:
            result = sender.result()
            if result == "hangup":
                return self._hangup_reason, self._call_end
            if result == "cut" and self._cut_at is not None:
                return "cut", self._cut_at
            return result, self.now()
        if reader in done:
            return reader.result(), self.now()
        end = self.now()
        self.timeline.add(end, "timeout", f"streamTimeout={stream.stream_timeout}s reached")
        return "stream_timeout", end

    async def _end(self, leg: StreamLeg, reason: str, end: float) -> None:
        """The stream ends at ``end`` (call clock) with this socket, and with it the call,
        unless verbs after the ``<Stream>`` keep it up (:meth:`_go_on_with_verbs`)."""
        playout = self._playout
        assert playout is not None
        self.report.end_reason = leg.end_reason = reason
        leg.ended_at = round(end, 4)
        self._announce_verbs(end)
        events, voided = playout.hang_up(end)
        self._handle(events)
        if voided:
            self.timeline.add(end, "voided", f"checkpoints never played: {', '.join(voided)}")
        self._write_heard(playout.pop_heard(partial=True))
        if self.options.send_stop and (reason in CALL_ENDINGS or reason == "stream_timeout"):
            self._send(Stop(leg.stream_id, "call_ended", self._next_sequence()))
            self.timeline.add(self.now(), "stop", "sent the documented stop")
        self.report.duration = end
        if reason in _ENDING_DETAIL:
            self.timeline.add(end, "hangup", _ENDING_DETAIL[reason])
        if reason in ("app_closed", "cut"):
            self._callback(CallbackEvent.DROPPED, leg.stream_id, error=self._drop_error)
        elif reason not in CALL_ENDINGS:  # the app's stop, streamTimeout
            self._callback(CallbackEvent.STOP, leg.stream_id)

    def _drop(self, leg: StreamLeg, end: float) -> None:
        """The app dropped this socket and a reconnect follows: what was queued is lost.

        Checkpoints still pending (even one that came due as the socket went) are void: there is
        no socket to answer them on.
        """
        playout = self._playout
        assert playout is not None
        leg.ended_at, leg.end_reason = round(end, 4), "dropped"
        voided: list[str] = []
        dropped = 0.0
        if playout.bidirectional:
            for event in playout.clear(end):
                match event:
                    case CheckpointReached():
                        voided.append(event.name)
                    case QueueCleared():
                        voided.extend(event.voided)
                        dropped = event.dropped_seconds
                    case _:
                        pass
        self._checkpoints.clear()
        self._write_heard(playout.pop_heard())
        self.timeline.add(
            end,
            "dropped",
            self._drop_error
            + (f"; {dropped:.3f}s of queued audio lost" if dropped else "")
            + (f"; checkpoints void: {', '.join(voided)}" if voided else ""),
        )
        self._callback(CallbackEvent.DROPPED, leg.stream_id, error=self._drop_error)

    async def _end_without_socket(self) -> None:
        """A reconnect failed with no retries left: the stream is over, and with no XML after
        it the call hangs up now (its ``DroppedStream`` has gone)."""
        playout = self._playout
        assert playout is not None
        end = self.now()
        self._announce_verbs(end)
        playout.hang_up(end)
        self._write_heard(playout.pop_heard(partial=True))
        self.report.end_reason = "app_closed"
        self.report.duration = end

    # -- the verbs after the <Stream> -----------------------------------------------------------

    async def _go_on_with_verbs(self, end: float) -> None:
        """The stream ended at ``end`` on its own: the call stays up while verbs after the
        ``<Stream>`` last (those still running for a background stream, all of them after a
        ``keepCallAlive`` one), and no longer than the caller's audio; then it hangs up."""
        if self.report.end_reason in CALL_ENDINGS:
            return
        plan = self._plan
        playout = self._playout
        assert playout is not None
        if plan is None:
            plan = self._plan = plan_verbs(
                self._verbs_after, playout.rate, self._voice, start=round(end * playout.rate)
            )
            self._announcer = asyncio.create_task(self._announce_verbs_on_time(plan))
        self._announce_verbs(end)
        verbs_end = math.inf if plan.end_seconds is None else plan.end_seconds
        hangup = min(verbs_end, self._caller_end)
        if hangup <= end:
            return
        self.timeline.add(end, "call goes on", "with the verbs after the <Stream>")
        delay = self._began + hangup / self.options.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._announce_verbs(hangup)
        if self._heard is not None:
            silence = round(hangup * playout.rate) - self._heard_position
            self._write_heard(np.zeros(max(0, silence), np.int16))
        self.report.duration = hangup
        by_caller = "the caller hangs up: the end of the caller audio"
        by_verbs = _ENDING_DETAIL.get(plan.reason, by_caller)
        self.timeline.add(hangup, "hangup", by_verbs if hangup < self._caller_end else by_caller)

    async def _announce_verbs_on_time(self, plan: VerbPlan) -> None:
        """Put each verb on the timeline as it starts."""
        for step in plan.steps:
            at = step.start / plan.rate
            delay = self._began + at / self.options.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._announce_verbs(at)

    def _announce_verbs(self, upto: float) -> None:
        """Put the verbs that started by ``upto`` (call seconds) on the timeline and report."""
        plan = self._plan
        if plan is None:
            return
        for step in plan.steps[self._announced :]:
            at = step.start / plan.rate
            if at > upto:
                break
            self._announced += 1
            ended = None if step.end is None else step.end / plan.rate
            self.report.verbs.append(VerbTiming(step.name, round(at, 4), ended, step.detail))
            self.timeline.add(at, f"<{step.name}>", step.detail)

    async def _press_keys(self) -> None:
        """Send each key press at its call time, on whichever socket is up then; a key pressed
        while no socket is up, or after the call, reaches nobody."""
        for at, digit in sorted(self.options.dtmf):
            if at >= self._call_end:
                break
            delay = self._began + at / self.options.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            socket = self._socket
            if socket is None or socket.closed:
                self.timeline.add(at, "dtmf lost", f"{digit}: no socket up")
                continue
            self._send(Dtmf(digit, self.report.stream_id, self._next_sequence()))
            self.report.dtmf_sent += 1
            self.timeline.add(self.now(), "dtmf", f"the caller pressed {digit}")

    # -- carrier to app ----------------------------------------------------------------------

    def _next_sequence(self) -> int:
        return next(self._sequence)

    def _send(self, message: Start | PlayedStream | ClearedAudio | Dtmf | Stop) -> None:
        """Send one message now; on a socket already gone it goes nowhere, as on a real
        carrier (not an error)."""
        socket = self._socket
        assert socket is not None
        socket.send_text(encode(message))

    def _send_start(self, media_format: AudioFormat, tracks: tuple[Track, ...]) -> None:
        options, report = self.options, self.report
        legacy = options.legacy_shape
        self._send(
            Start(
                stream_id=report.stream_id,
                call_id=report.call_uuid,
                account_id=options.account_id,
                tracks=tracks,
                media_format=media_format,
                from_number=options.from_number if legacy else None,
                to_number=options.to_number if legacy else None,
                direction="inbound" if legacy else None,
                sequence_number=self._next_sequence(),
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
        socket = self._socket
        assert socket is not None
        seed_shape = self.options.legacy_shape
        sender = MediaSender(
            socket=socket,
            schedule=self._schedule,
            payloads=frames,
            silence=encode_payload(
                bytes([silence_byte(media_format.encoding)]) * media_format.frame_bytes
            ).encode(),
            tracks=[
                TrackEncoder(
                    MediaEncoder(
                        track=track,
                        stream_id=self.report.stream_id,
                        media_format=media_format if seed_shape else None,
                        extra_headers=None if seed_shape else "{}",
                    ),
                    caller=track is Track.INBOUND,
                )
                for track in tracks
            ],
            began=self._began,
            speed=self.options.speed,
            epoch_ms=self._epoch_ms,
            first_frame=leg.first_frame,
            next_entry=self._next_entry,
            sequence=self._sequence,
            lateness=[self._lateness]
            + ([] if self.options.frame_lateness is None else [self.options.frame_lateness]),
            on_sent=None,
        )
        self._sender = sender
        self._follow_frames()
        try:
            all_sent = await sender.run()
        finally:
            self._sender = None
            self._next_entry = sender.next_entry
            leg.frames_sent += sender.sent
            self.report.frames_sent += sender.sent
            self.report.frames_skipped += sender.skipped
        if not all_sent:
            self._drop_error = self._drop_error or "the socket dropped under the media"
            return "app_closed"
        cut_at = self._cut_at
        delay = self._began + (self._call_end if cut_at is None else cut_at) / self.options.speed
        delay -= time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if cut_at is None:
            return "hangup"
        self._cut_connection(cut_at)
        return "cut"

    def _follow_frames(self) -> None:
        """Have the sender report each frame while the playout has something to follow: the
        caller's frames are the carrier's clock, and what the caller hears is played out in
        step with them (into the heard WAV, if one is written)."""
        playout, sender = self._playout, self._sender
        assert playout is not None
        if sender is not None and (self._heard is not None or not playout.idle):
            sender.on_sent = self._sent

    def _sent(self, due: float) -> None:
        """A caller frame due at call time ``due`` left: play out what the caller hears up to
        it; stop following once nothing is left to play."""
        playout = self._playout
        assert playout is not None
        self._advance(due)
        if self._heard is None and playout.idle and self._sender is not None:
            self._sender.on_sent = None

    def _cut_connection(self, at: float) -> None:
        """Abort the TCP connection under the socket: no close frame, as when a network dies."""
        self._cutting = True
        self._drop_error = f"the carrier cut the connection at {at:g}s (drop_at): no close frame"
        self.timeline.add(at, "cut", self._drop_error)
        socket = self._socket
        assert socket is not None
        socket.abort()

    # -- app to carrier -----------------------------------------------------------------------

    async def _read_commands(self, socket: CarrierSocket) -> str:
        """Feed the app's commands to the playout; return why the stream ended."""
        async for message in socket.messages():
            if message.binary:
                self.report.malformed_commands += 1
                self._misstep(Misstep.BINARY_FRAME, f"{len(message.data)} bytes")
            elif self._command(message.data):
                return "app_stop"
        if self._cutting:  # the carrier's own cut, not the app's doing
            return "cut"
        if socket.too_big is not None:
            self._misstep(Misstep.OVERSIZED, socket.too_big)
            self._drop_error = (
                f"the app sent {socket.too_big}: the carrier closed the socket (1009)"
            )
        elif socket.protocol_error is not None:
            self._drop_error = f"the app broke the WebSocket protocol: {socket.protocol_error}"
        elif socket.close_code is not None:
            self._drop_error = f"the app closed the socket (close code {socket.close_code})"
        else:
            self._drop_error = "the connection to the app was lost (no close frame)"
        self.timeline.add(self.now(), "app closed", self._drop_error)
        return "app_closed"

    def _misstep(self, kind: Misstep, example: str) -> None:
        """Count one sloppy command (:mod:`~vobiz_stream.emulator.conduct`); the first of each
        kind goes on the timeline."""
        warning = self._conduct.note(kind, example)
        if warning.count == 1:
            self.timeline.add(self.now(), "app warning", f"{warning.what}: {example}")

    def _for_this_stream(self, stream_id: str | None, text: bytes) -> bool:
        """Whether a command is the current stream's: one without a streamId is taken as its
        (older documents leave it out), one naming another stream is not."""
        if stream_id == self.report.stream_id:
            return True
        if stream_id is None:
            self._misstep(Misstep.NO_STREAM_ID, example_of(text))
            return True
        self._misstep(Misstep.WRONG_STREAM_ID, example_of(text))
        return False

    def _command(self, text: bytes) -> bool:
        """Apply one command; True when it is the app's ``stop``."""
        playout = self._playout
        assert playout is not None
        try:
            command = parse_command(text)
        except ProtocolError as exc:
            self.report.malformed_commands += 1
            if _is_json(text):
                self._misstep(Misstep.MALFORMED, f"{loggable(str(exc))}: {example_of(text)}")
            else:
                self._misstep(Misstep.INVALID_JSON, example_of(text))
            return False
        if not isinstance(command, Unknown) and not self._for_this_stream(command.stream_id, text):
            return False
        now = self.now()
        match command:
            case PlayAudio():
                self._commands["playAudio"] += 1
                if command.media_format != self._media_format:
                    assert self._media_format is not None
                    self._misstep(
                        Misstep.FORMAT_MISMATCH,
                        f"{command.media_format.content_type} on a "
                        f"{self._media_format.content_type} stream",
                    )
                events = playout.play(command, now)
            case Checkpoint():
                self._commands["checkpoint"] += 1
                timing = CheckpointTiming(command.name, now)
                self.report.checkpoints.append(timing)
                self._checkpoints.setdefault(command.name, deque()).append(timing)
                self.timeline.add(now, "checkpoint", command.name)
                events = playout.checkpoint(command.name, now)
                self._wake.set()
            case ClearAudio():
                self._commands["clearAudio"] += 1
                self.timeline.add(now, "clearAudio")
                events = playout.clear(now)
            case StopCommand():
                self._commands["stop"] += 1
                self.timeline.add(now, "app stop", "the app ended the stream")
                return True
            case Unknown():
                self._misstep(Misstep.UNKNOWN_EVENT, example_of(text))
                return False
        self._handle(events)
        self._write_heard(playout.pop_heard())
        self._follow_frames()
        return False

    async def _answer_checkpoints(self) -> None:
        """Wake when the next checkpoint is due and answer it, exactly then."""
        playout = self._playout
        assert playout is not None
        while True:
            self._wake.clear()
            due = playout.next_deadline()
            if due is None:
                await self._wake.wait()
                continue
            delay = (due - self.now()) / self.options.speed
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            self._advance(self.now())

    def _advance(self, now: float) -> None:
        playout = self._playout
        assert playout is not None
        self._handle(playout.advance(now))
        self._write_heard(playout.pop_heard())

    def _handle(self, events: list[PlayoutEvent]) -> None:
        for event in events:
            match event:
                case CheckpointReached():
                    self._send(PlayedStream(event.name, self.report.stream_id))
                    answered = self.now()
                    waiting = self._checkpoints.get(event.name)
                    if waiting:
                        timing = waiting.popleft()
                        timing.played_at, timing.answered_at = event.played_at, answered
                    self.timeline.add(
                        answered,
                        "playedStream",
                        f"{event.name} (played out at {event.played_at:.3f}s)",
                    )
                    self._callback(
                        CallbackEvent.PLAYED, self.report.stream_id, extra={"Name": event.name}
                    )
                case QueueCleared():
                    self._send(ClearedAudio(self.report.stream_id, self._next_sequence()))
                    self.report.clears.append(
                        ClearTiming(event.at, self.now(), event.dropped_seconds, event.voided)
                    )
                    for name in event.voided:
                        self._checkpoints.get(name, deque()).clear()
                    self.timeline.add(
                        self.now(),
                        "clearedAudio",
                        f"dropped {event.dropped_seconds:.3f}s"
                        + (f", voided {', '.join(event.voided)}" if event.voided else ""),
                    )
                    self._callback(CallbackEvent.CLEARED, self.report.stream_id)
                case PlaybackStarted(at=at, after=None):
                    self.timeline.add(at, "playAudio", "audio starts playing")
                case PlaybackStarted(at=at, after=gap) if gap is not None:
                    kind = "underrun" if gap.mid_utterance else "pause"
                    self.timeline.add(
                        at, "playAudio", f"audio starts playing after a {gap.seconds:.3f}s {kind}"
                    )
                case Degraded():
                    problem = (
                        f"playback queue over {self.options.queue_cap:g}s "
                        f"({event.queued_seconds:.1f}s queued): dropping audio"
                    )
                    self.timeline.add(event.at, "degraded", problem)
                    self._callback(CallbackEvent.DEGRADED, self.report.stream_id, error=problem)

    # -- status callbacks ---------------------------------------------------------------------

    def _callback(
        self,
        event: CallbackEvent,
        stream_id: str | None,
        *,
        error: str = "",
        extra: dict[str, str] | None = None,
    ) -> None:
        """Queue a status callback when the ``<Stream>`` has a ``statusCallbackUrl``."""
        if self._callbacks is not None:
            self._callbacks.send(event, stream_id or "", error=error, extra=extra)

    def _callback_sent(self, sent: CallbackSent) -> None:
        outcome = f"HTTP {sent.status}" if sent.error is None else f"failed: {sent.error}"
        self.timeline.add(
            self.now(), "callback", f"{sent.event} {outcome} in {sent.latency_ms:.1f} ms"
        )

    async def close_callbacks(self) -> None:
        """Send the callbacks still queued (each bounded by its timeout)."""
        if self._callbacks is not None:
            await self._callbacks.close()

    def abort_callbacks(self) -> None:
        """Drop the callbacks still queued."""
        if self._callbacks is not None:
            self._callbacks.abort()

    def _write_heard(self, pcm: Pcm) -> None:
        """Write heard audio, with the verbs' audio mixed in at its place, never past the caller
        audio's length (the longest the call can last)."""
        if self._heard is None or not len(pcm):
            return
        pcm = pcm[: self._heard_left]
        if self._plan is not None:
            pcm = self._plan.mix(pcm, self._heard_position)
        self._heard_left -= len(pcm)
        self._heard_position += len(pcm)
        self._heard.write(pcm)

    # -- the report ---------------------------------------------------------------------------

    def finish(self) -> CallReport:
        report = self.report
        report.timeline = self.timeline.entries
        report.commands = dict(self._commands)
        report.app_warnings = self._conduct.warnings
        report.warnings.extend(str(warning) for warning in report.app_warnings)
        if self._lateness:
            lateness = np.frombuffer(self._lateness, dtype=np.float64)
            report.late_frames = int(np.count_nonzero(lateness > self.options.late_tolerance))
            report.max_lateness_ms = round(float(lateness.max()) * 1000, 3)
            report.mean_lateness_ms = round(float(lateness.mean()) * 1000, 3)
        playout = self._playout
        if playout is not None:
            report.first_audio_latency = playout.first_audio_at
            report.gaps = list(playout.gaps)
            report.ignored_commands = playout.ignored_commands
            report.dropped_audio_seconds = playout.dropped_samples / playout.rate
            report.degraded = playout.degraded
        if self._callbacks is not None:
            report.callbacks = list(self._callbacks.sent)
        for verb in report.verbs:
            if verb.ended_at is None or verb.ended_at > report.duration:
                verb.ended_at = round(report.duration, 4)
        return report
