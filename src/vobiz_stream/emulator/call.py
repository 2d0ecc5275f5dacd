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

This module answers the call and runs the stream's sockets in turn; each job is its own module:
:mod:`~vobiz_stream.emulator.options` (the carrier's settings), :mod:`~vobiz_stream.emulator.leg`
(one socket's life), :mod:`~vobiz_stream.emulator.commands` (the app's commands),
:mod:`~vobiz_stream.emulator.replies` (the playout's answers), :mod:`~vobiz_stream.emulator.ending`
(how the stream and the call end), :mod:`~vobiz_stream.emulator.heard` (the heard WAV), over the
call's shared :class:`~vobiz_stream.emulator.state.CallState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import numpy as np

from vobiz_stream.audio import Pcm, WavWriter
from vobiz_stream.core.answer import (
    Stream,
    UnknownVerb,
    parse_response,
)
from vobiz_stream.core.verbs import SHOWN_CHARS, SHOWN_ITEMS
from vobiz_stream.emulator.answer import AnswerError, fetch_answer
from vobiz_stream.emulator.callbacks import CallbackContext, CallbackSender, callback_request
from vobiz_stream.emulator.control import ApiCallControl
from vobiz_stream.emulator.ending import (
    drop_leg,
    end_stream,
    end_without_socket,
    go_on_with_verbs,
)
from vobiz_stream.emulator.faults import plan_faults
from vobiz_stream.emulator.heard import HeardWav
from vobiz_stream.emulator.leg import LegRunner
from vobiz_stream.emulator.live import CallerControls, LiveCaller, LivePayloads
from vobiz_stream.emulator.options import CallOptions, parse_key_press
from vobiz_stream.emulator.playout import Playout
from vobiz_stream.emulator.replies import PlayoutReplies
from vobiz_stream.emulator.report import CallbackSent, CallReport, StreamLeg
from vobiz_stream.emulator.source import CallerSource, read_caller_audio
from vobiz_stream.emulator.state import CallFailedError, CallState
from vobiz_stream.emulator.verbs import plan_verbs, voice
from vobiz_stream.errors import XmlError
from vobiz_stream.extras import require
from vobiz_stream.formats import FRAME_SECONDS, AudioFormat, Encoding
from vobiz_stream.logtext import loggable

__all__ = ["CallOptions", "parse_key_press", "run_call"]


async def run_call(
    answer_url: str,
    audio_path: Path | CallerSource | LiveCaller,
    options: CallOptions | None = None,
    *,
    http: aiohttp.ClientSession | None = None,
    control: ApiCallControl | None = None,
) -> CallReport:
    """Place one emulated call to ``answer_url`` with the caller saying ``audio_path``.

    ``audio_path`` is an audio file (any WAV, FLAC, Ogg, MP3...), or audio already read
    (:func:`read_caller_audio`), which many calls can share. ``http`` is a session to reuse
    (many calls at once: give it a connector without a connection limit, since every stream
    holds one); without it the call opens its own. ``control`` lets an API act on the call while
    it runs (:mod:`~vobiz_stream.emulator.control`): a local carrier's calls.

    Raises :class:`EmulatorError` for bad options or unreadable audio, before any request; a call
    that fails on the app's side (HTTP error, invalid XML, no socket) comes back as a report with
    ``failure`` set.
    """
    options = options or CallOptions()
    options.check()
    require("picows", "the carrier emulator")  # its stream socket is a picows client
    caller = (
        audio_path
        if isinstance(audio_path, CallerSource | LiveCaller)
        else read_caller_audio(audio_path)
    )
    call = _Call(answer_url, caller, options, control)
    async with contextlib.AsyncExitStack() as owned:
        if http is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.http_timeout)
            http = await owned.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        try:
            stream = await call.answer(http)
            if stream is None:
                stream = await call.stream_from_api()
            await call.stream(http, stream)
        except CallFailedError as failed:
            call.report.failure = str(failed)
            call.timeline.add(call.now(), "failed", str(failed))
        except BaseException:
            call.abort_callbacks()  # cancelled (or a bug): do not hold the caller up
            raise
        await call.close_callbacks()
    return call.finish()


class _Call:
    """Answers one call and runs its ``<Stream>``: a socket, and a new one per reconnect."""

    def __init__(
        self,
        answer_url: str,
        caller: CallerSource | LiveCaller,
        options: CallOptions,
        control: ApiCallControl | None,
    ) -> None:
        self.state = CallState(answer_url, caller, options, control)
        if control is not None:
            control.state = self.state
        self.report = self.state.report
        self.timeline = self.state.timeline
        self._replies = PlayoutReplies(self.state)
        self._legs = LegRunner(self.state, self._replies)

    def now(self) -> float:
        return self.state.now()

    async def answer(self, http: aiohttp.ClientSession) -> Stream | None:
        """POST the answer URL as Vobiz does and return the ``<Stream>`` to connect to; None
        when it has none and the API may start one."""
        options, report = self.state.options, self.report
        form = {
            "CallUUID": report.call_uuid,
            "From": options.from_number,
            "To": options.to_number,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "Event": "StartApp",
            "ParentAuthID": options.account_id,
        }
        signed = callback_request(  # signed as the callbacks are, when there is an auth token
            report.answer_url,
            options.answer_method,
            form,
            auth_token=options.auth_token,
            signature=options.signature,
            form=options.signature_form,
        )
        try:
            status, body = await fetch_answer(
                http, signed.url, signed.body, options.http_timeout, signed.headers,
                method=signed.method.value,
            )  # fmt: skip
        except AnswerError as exc:
            raise CallFailedError(str(exc)) from None
        self.timeline.add(self.now(), "answer", f"HTTP {status}, {len(body)} bytes")
        if status != 200:
            raise CallFailedError(f"answer URL returned HTTP {status}: {loggable(body, 200)}")
        try:
            response_xml = parse_response(body)
        except XmlError as exc:
            raise CallFailedError(f"{exc}; Vobiz drops the call") from None
        for warning in response_xml.warnings:
            report.warnings.append(warning)
            self.timeline.add(self.now(), "xml warning", warning)
        if not response_xml.streams and self.state.control is not None:
            return None
        if not response_xml.streams:
            raise CallFailedError("the answer XML has no <Stream>: there is nothing to connect to")
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
        self.state.verbs_after = verbs[index + 1 :]
        stream = response_xml.streams[0]
        return self._note_stream(stream)

    async def stream_from_api(self) -> Stream:
        """Hold the call up, for as long as the caller talks, until the API starts a stream."""
        control = self.state.control
        assert control is not None
        caller = self.state.caller
        hangup_after = self.state.options.hangup_after
        wait = caller.seconds if hangup_after is None else hangup_after
        self.timeline.add(self.now(), "waiting", "no <Stream>: waiting for one started by the API")
        stream = await control.wait_for_stream(wait / self.state.options.speed)
        if stream is None:
            raise CallFailedError(
                "the answer XML has no <Stream> and none was started through the API before the "
                + ("call was hung up" if control.hung_up.is_set() else "caller hung up")
            )
        self.state.verbs_after = control.verbs_after
        return self._note_stream(stream)

    def _note_stream(self, stream: Stream) -> Stream:
        """The report (and the API) say what the call streams, before it does."""
        if self.state.control is not None:
            self.state.control.stream = stream
        report = self.report
        report.stream_url = stream.url
        report.content_type = stream.content_type.content_type
        if stream.content_type.encoding is Encoding.L16:
            report.l16_byte_order = self.state.options.caller_byte_order.value
        report.bidirectional = stream.bidirectional
        return stream

    # -- the stream ---------------------------------------------------------------------------

    async def stream(self, http: aiohttp.ClientSession, stream: Stream) -> None:
        """Run the ``<Stream>``: one socket, and a new one per reconnect (``maxRetries``)."""
        call = self.state
        options, report = call.options, call.report
        if stream.status_callback_url is not None:
            call.callbacks = CallbackSender(
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
        media_format = call.media_format = stream.content_type
        rate = media_format.sample_rate
        call.playout = Playout(
            rate,
            byte_order=options.playback_byte_order,
            bidirectional=stream.bidirectional,
            queue_cap=options.queue_cap,
            jitter_buffer=options.jitter_buffer,
        )
        pcm, frames = stream_caller_frames(self.state, media_format)
        call.caller_end = len(frames) * FRAME_SECONDS
        call.voice = await voice(call.verbs_after, rate)
        if not stream.keep_call_alive:  # a background stream: the verbs run alongside
            call.plan = plan_verbs(call.verbs_after, rate, call.voice)
            if call.plan.end is not None:
                last = math.ceil(call.plan.end / media_format.frame_samples)
                if last <= len(frames):  # the verbs end the call (on the frame grid)
                    frames = frames[:last]
                    call.hangup_reason = call.plan.reason
        call.call_end = len(frames) * FRAME_SECONDS
        self._plan_faults(len(frames))
        sent = len(frames) * media_format.frame_samples
        with contextlib.ExitStack() as files:
            if options.caller_path is not None and pcm is not None:
                writer = files.enter_context(WavWriter(options.caller_path, rate))
                writer.write(pcm[:sent])
                writer.write(np.zeros(max(0, sent - len(pcm)), np.int16))
            live = call.caller if isinstance(call.caller, LiveCaller) else None
            if options.heard_path is not None or live is not None:
                call.heard = HeardWav(
                    None
                    if options.heard_path is None
                    else files.enter_context(WavWriter(options.heard_path, rate)),
                    round(call.caller_end * rate),
                    None if live is None else live.hear,
                )
            try:
                await self._run_sockets(stream, frames)
            finally:
                for task in (call.announcer, call.keypad):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

    def _plan_faults(self, frame_count: int) -> None:
        """The send schedule of the call's frames; the report keeps what faults were injected."""
        faults = self.state.options.faults
        random_seed = faults.seed if faults.seed is not None else secrets.randbelow(2**32)
        plan = plan_faults(frame_count, faults, random_seed)
        self.state.schedule = plan.schedule
        self.state.cut_at = plan.injected.cut_at
        if faults.active:
            self.report.faults = plan.injected

    async def _run_sockets(self, stream: Stream, frames: Sequence[bytes]) -> None:
        """Connect, converse, and while ``maxRetries`` allows, reconnect after a drop.

        At most ``1 + maxRetries`` connects: the loop is bounded by the retry count.
        """
        retries = stream.max_retries
        control = self.state.control
        while True:
            stream_id = str(uuid.uuid4())
            if control is not None and control.stream_id is not None:  # the id the API gave
                stream_id, control.stream_id = control.stream_id, None
            socket = await self._legs.connect(stream, stream_id)
            if socket is None:
                if retries > 0 and self.now() < self.state.call_end:
                    retries -= 1
                    await self._legs.pause_before_reconnect()
                    continue
                if not self.report.streams:
                    raise CallFailedError(self.state.drop_error)
                end_without_socket(self.state)
                await go_on_with_verbs(self.state, self.report.duration)
                return
            leg = StreamLeg(stream_id, started_at=0.0, first_frame=0)
            self.report.streams.append(leg)
            self.report.stream_id = stream_id
            try:
                reason, end = await self._legs.converse(socket, stream, frames, leg)
                if reason == "app_closed" and retries > 0 and end < self.state.call_end:
                    drop_leg(self.state, leg, end)
                else:
                    end_stream(self.state, self._replies, leg, reason, end)
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
                await go_on_with_verbs(self.state, self.report.duration)
                return
            retries -= 1
            await self._legs.pause_before_reconnect()

    # -- status callbacks ---------------------------------------------------------------------

    def _callback_sent(self, sent: CallbackSent) -> None:
        outcome = f"HTTP {sent.status}" if sent.error is None else f"failed: {sent.error}"
        self.timeline.add(
            self.now(), "callback", f"{sent.event} {outcome} in {sent.latency_ms:.1f} ms"
        )

    async def close_callbacks(self) -> None:
        """Send the callbacks still queued (each bounded by its timeout)."""
        if self.state.callbacks is not None:
            await self.state.callbacks.close()

    def abort_callbacks(self) -> None:
        """Drop the callbacks still queued."""
        if self.state.callbacks is not None:
            self.state.callbacks.abort()

    # -- the report ---------------------------------------------------------------------------

    def finish(self) -> CallReport:
        report = self.report
        report.timeline = self.timeline.entries
        report.timeline_omitted = dict(self.timeline.omitted)
        report.commands = dict(self.state.commands)
        report.app_warnings = self.state.conduct.warnings
        report.warnings.extend(str(warning) for warning in report.app_warnings)
        if self.state.lateness:
            lateness = np.frombuffer(self.state.lateness, dtype=np.float64)
            report.late_frames = int(np.count_nonzero(lateness > self.state.options.late_tolerance))
            report.max_lateness_ms = round(float(lateness.max()) * 1000, 3)
            report.mean_lateness_ms = round(float(lateness.mean()) * 1000, 3)
        playout = self.state.playout
        if playout is not None:
            report.first_audio_latency = playout.first_audio_at
            report.gaps = list(playout.gaps)
            report.ignored_commands = playout.ignored_commands
            report.dropped_audio_seconds = playout.dropped_samples / playout.rate
            report.degraded = playout.degraded
        if self.state.callbacks is not None:
            report.callbacks = list(self.state.callbacks.sent)
        for verb in report.verbs:
            if verb.ended_at is None or verb.ended_at > report.duration:
                verb.ended_at = round(report.duration, 4)
        return report


def stream_caller_frames(
    call: CallState, media_format: AudioFormat
) -> tuple[Pcm | None, Sequence[bytes]]:
    """The caller's audio at the stream's rate (None for a live caller, whose audio is made as
    the call goes) and its frames as ``media`` payloads."""
    rate, options = media_format.sample_rate, call.options
    if isinstance(call.caller, LiveCaller):
        call.caller.begin(CallerControls(call), rate)
        seconds = min(call.caller.seconds, options.hangup_after or math.inf)
        count = math.ceil(seconds / FRAME_SECONDS - 1e-9)
        return None, LivePayloads(call.caller, media_format, options.caller_byte_order, count)
    if call.caller.source is not None:
        call.report.caller_audio = call.caller.source.describe(rate)
        call.timeline.add(call.now(), "caller audio", call.report.caller_audio)
    pcm = call.caller.at_rate(rate, options.hangup_after)
    return pcm, call.caller.payloads(media_format, options.caller_byte_order, options.hangup_after)
