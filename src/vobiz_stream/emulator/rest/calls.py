"""The local carrier's calls: each placed call runs as an emulated call
(:func:`~vobiz_stream.emulator.call.run_call`) that the API acts on through its
:class:`~vobiz_stream.emulator.control.ApiCallControl`.

Bounded: at most ``max_live`` calls run at once (one more is refused with 429 and a
``Retry-After``), and the last :data:`HISTORY` ended calls are kept for ``GET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import aiohttp

from vobiz_stream.core.answer import Stream, Verb, Wait
from vobiz_stream.emulator.call import run_call
from vobiz_stream.emulator.callbacks import callback_timestamp
from vobiz_stream.emulator.control import API_HANGUP, ApiCallControl
from vobiz_stream.emulator.keypad import press_key
from vobiz_stream.emulator.load_script import ScenarioScript
from vobiz_stream.emulator.options import CallOptions
from vobiz_stream.emulator.report import CallReport
from vobiz_stream.emulator.rest.shapes import ApiError, PlaceCall
from vobiz_stream.emulator.scenario.runner import run_scenario
from vobiz_stream.emulator.scenario.verdict import Verdict
from vobiz_stream.emulator.source import CallerSource
from vobiz_stream.logtext import loggable

__all__ = ["HANGUP_GRACE", "HISTORY", "CallBook", "CarrierCall"]

log = logging.getLogger("vobiz_stream.carrier")

HISTORY = 1000
"""Ended calls kept for ``GET``; older ones are forgotten."""
HANGUP_GRACE = 5.0
"""Wall seconds a call hung up through the API gets to close its stream before it is cut."""


@dataclasses.dataclass
class CarrierCall:
    """One call placed through the API, live or ended."""

    request: PlaceCall
    control: ApiCallControl
    placed_at: datetime
    task: asyncio.Task[CallReport | None] | None = None
    report: CallReport | None = None
    """The call's report once it ended (its running state is let go then: the history holds
    reports, not calls)."""
    ended_at: datetime | None = None
    epoch_ms: int = 0
    """Wall-clock epoch milliseconds of the first ``start``, once the call ended."""
    speed: float = 1.0
    verdict: Verdict | None = None
    """The scenario's verdict once the call ended, when the callers follow one."""

    @property
    def call_uuid(self) -> str:
        return self.control.call_uuid

    @property
    def live(self) -> bool:
        return self.ended_at is None

    def _report_now(self) -> CallReport | None:
        """The running call's report as it goes, or the ended call's."""
        state = self.control.state
        return self.report if state is None else state.report

    def end(self) -> None:
        """The call ended: keep its report and clock, let its running state go."""
        state = self.control.state
        if state is not None:
            self.report = state.report
            self.epoch_ms, self.speed = state.epoch_ms, state.options.speed
        self.control.state = None
        self.ended_at = datetime.now(UTC)

    def as_json(self, auth_id: str) -> dict[str, Any]:
        report = self._report_now()
        streams = [] if report is None else report.streams
        status = "completed" if not self.live else ("in-progress" if streams else "ringing")
        if self.control.hung_up.is_set():
            cause: str | None = API_HANGUP
        else:
            cause = None if self.live or report is None else (report.end_reason or report.failure)
        return {
            "call_uuid": self.call_uuid,
            "request_uuid": self.call_uuid,
            "direction": "outbound",
            "from": self.request.from_number,
            "to": self.request.to_number,
            "answer_url": self.request.answer_url,
            "call_status": status,
            "session_start": callback_timestamp(self.placed_at),
            "end_time": None if self.ended_at is None else callback_timestamp(self.ended_at),
            "hangup_cause": cause,
            "stream_id": None if report is None else report.stream_id,
            "resource_uri": f"/api/v1/Account/{auth_id}/Call/{self.call_uuid}/",
        }

    def report_json(self) -> dict[str, Any]:
        """The ended call's report and, when its caller followed a scenario, the verdict."""
        if self.live:
            raise ApiError(
                409, "the call is still live: its report comes when it ends (or hang it up)"
            )
        return {
            "call_uuid": self.call_uuid,
            "verdict": None if self.verdict is None else self.verdict.to_json(),
            "report": None if self.report is None else self.report.to_json(),
        }

    def streams_json(self, auth_id: str) -> list[dict[str, Any]]:
        """Every stream of the call, oldest first: one per socket (a reconnect is a new
        stream), and the one the API started while it is still connecting."""
        report, stream = self._report_now(), self.control.stream
        if stream is None:
            return []
        base = _stream_fields(stream, self.call_uuid, auth_id)
        found = []
        state = self.control.state
        epoch_ms, speed = (
            (self.epoch_ms, self.speed) if state is None else (state.epoch_ms, state.options.speed)
        )
        began = epoch_ms / 1000
        if report is not None:
            for leg in report.streams:
                ended = leg.ended_at is not None or not self.live
                found.append(
                    base
                    | {
                        "stream_id": leg.stream_id,
                        "status": "stopped" if ended else "in-progress",
                        "end_reason": leg.end_reason,
                        "start_time": _wall(began + leg.started_at / speed),
                        "end_time": None
                        if leg.ended_at is None
                        else _wall(began + leg.ended_at / speed),
                    }
                )
        if self.control.stream_id is not None:  # started by the API, not connected yet
            found.append(base | {"stream_id": self.control.stream_id, "status": "initiated"})
        for record in found:
            record["resource_uri"] += f"{record['stream_id']}/"
        return found


def _wall(epoch: float) -> str:
    return callback_timestamp(datetime.fromtimestamp(epoch, UTC))


def _stream_fields(stream: Stream, call_uuid: str, auth_id: str) -> dict[str, Any]:
    return {
        "call_uuid": call_uuid,
        "service_url": stream.url,
        "bidirectional": stream.bidirectional,
        "audio_track": stream.audio_track.value,
        "content_type": stream.content_type.content_type,
        "stream_timeout": stream.stream_timeout,
        "status_callback_url": stream.status_callback_url,
        "start_time": None,
        "end_time": None,
        "end_reason": None,
        "resource_uri": f"/api/v1/Account/{auth_id}/Call/{call_uuid}/Stream/",
    }


class CallBook:
    """The calls of one local carrier: placing, finding, acting on them."""

    def __init__(
        self,
        caller: CallerSource,
        options: CallOptions,
        *,
        max_live: int,
        http: aiohttp.ClientSession,
        script: ScenarioScript | None = None,
    ) -> None:
        """Each call's caller says ``caller``, or follows ``script`` when there is one."""
        self._caller = caller
        self._script = script
        self._options = options
        self._max_live = max_live
        self._http = http
        self._calls: OrderedDict[str, CarrierCall] = OrderedDict()
        self._live = 0
        self.placed = 0
        self.refused = 0

    def live(self) -> list[CarrierCall]:
        return [call for call in self._calls.values() if call.live]

    def all(self) -> list[CarrierCall]:
        return list(self._calls.values())

    def place(self, request: PlaceCall) -> CarrierCall:
        """Start the call in the background; 429 when ``max_live`` calls run already."""
        if self._live >= self._max_live:
            self.refused += 1
            raise ApiError(
                429,
                f"too many live calls ({self._max_live}, the carrier's --max-calls): "
                "hang one up or try again later",
                retry_after=1,
            )
        control = ApiCallControl(str(uuid.uuid4()))
        placed = CarrierCall(request, control, datetime.now(UTC))
        options = dataclasses.replace(
            self._options,
            from_number=request.from_number,
            to_number=request.to_number,
            answer_method=request.answer_method,
        )
        placed.task = asyncio.create_task(self._run(placed, options))
        self._calls[control.call_uuid] = placed
        self._live += 1
        self.placed += 1
        log.info(
            "call %s: placed from %s to %s, answer URL %s",
            control.call_uuid,
            loggable(request.from_number, 40),
            loggable(request.to_number, 40),
            loggable(request.answer_url, 200),
        )
        return placed

    async def _run(self, placed: CarrierCall, options: CallOptions) -> CallReport | None:
        started = time.monotonic()
        try:
            report = await self._call(placed, options)
        except Exception:  # a bug: said with its traceback; the carrier and its calls go on
            log.exception("call %s: the emulated call broke", placed.call_uuid)
            return None
        finally:
            placed.end()
            self._live -= 1
            self._forget_old()
        outcome = (
            f"failed: {loggable(report.failure, 300)}"
            if report.failure is not None
            else f"ended ({report.end_reason}) after {report.duration:.2f}s of call time"
        )
        log.info("call %s: %s; %.2f s wall", placed.call_uuid, outcome, time.monotonic() - started)
        if placed.verdict is not None:
            _log_verdict(placed.call_uuid, placed.verdict)
        return report

    async def _call(self, placed: CarrierCall, options: CallOptions) -> CallReport:
        """Run the call with the carrier's caller: its audio, or its scenario (judged)."""
        url, control = placed.request.answer_url, placed.control
        if self._script is None:
            return await run_call(url, self._caller, options, http=self._http, control=control)
        verdict = await run_scenario(
            self._script.scenario, url, turns=self._script.turns, options=options,
            http=self._http, control=control,
        )  # fmt: skip
        assert verdict.report is not None
        placed.verdict = verdict
        return verdict.report

    def _forget_old(self) -> None:
        ended = [uuid for uuid, call in self._calls.items() if not call.live]
        for call_uuid in ended[: max(0, len(ended) - HISTORY)]:
            del self._calls[call_uuid]

    def find(self, call_uuid: str, *, live: bool = False) -> CarrierCall:
        placed = self._calls.get(call_uuid)
        if placed is None or (live and not placed.live):
            state = "live call" if live else "call"
            raise ApiError(404, f"no {state} {loggable(call_uuid, 80)} on this carrier")
        return placed

    async def hang_up(self, call_uuid: str) -> None:
        placed = self.find(call_uuid, live=True)
        log.info("call %s: hung up through the API", call_uuid)
        placed.control.hang_up()
        task = placed.task
        assert task is not None
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), HANGUP_GRACE)
        if not task.done():  # still fetching the answer or connecting: cut it
            task.cancel()

    def press(self, call_uuid: str, digits: str) -> None:
        """Send each digit now as a ``dtmf`` event on the call's stream."""
        placed = self.find(call_uuid, live=True)
        state = placed.control.state
        if state is None or state.socket is None or state.socket.closed:
            raise ApiError(
                400, "the call has no stream up to send digits on: start one, then send them"
            )
        for digit in digits:
            press_key(state, digit)
        log.info("call %s: digits %s sent through the API", call_uuid, digits)

    def start_stream(self, call_uuid: str, stream: Stream) -> str:
        """Start ``stream`` on a live call whose answer had none; its streamId."""
        placed = self.find(call_uuid, live=True)
        control = placed.control
        if control.stream is not None or control.requested_stream is not None:
            raise ApiError(
                400,
                "the call has a stream already: the local carrier runs one stream per call "
                "(stop it with DELETE .../Stream/, which ends the call's streaming)",
            )
        stream_id = str(uuid.uuid4())
        verbs_after: tuple[Verb, ...] = ()
        if not stream.keep_call_alive:  # a one-way stream: the call lasts while the caller talks
            seconds = self._caller.seconds
            if self._script is not None:
                seconds = self._script.scenario.max_seconds
            verbs_after = (Wait(length=max(1, round(seconds) + 1)),)
        control.start_stream(stream, stream_id, verbs_after)
        log.info(
            "call %s: stream %s started through the API to %s",
            call_uuid,
            stream_id,
            loggable(stream.url, 200),
        )
        return stream_id

    def stop_streams(self, call_uuid: str, stream_id: str | None = None) -> None:
        """Stop the call's stream (``stream_id``: only if it is that one); the call goes on."""
        placed = self.find(call_uuid, live=True)
        control = placed.control
        state = control.state
        legs = [] if state is None else state.report.streams
        running = [leg.stream_id for leg in legs if leg.ended_at is None]
        if control.stream_id is not None:  # started by the API, still connecting
            running.append(control.stream_id)
        if stream_id is not None and stream_id not in running:
            raise ApiError(404, f"no live stream {loggable(stream_id, 80)} on this call")
        if not running:
            return  # nothing streams: nothing to stop
        control.stop_stream()
        log.info("call %s: stream stopped through the API", call_uuid)

    async def close(self) -> None:
        """Hang up every live call (each gets :data:`HANGUP_GRACE`)."""
        live = self.live()
        for placed in live:
            placed.control.hang_up()
        tasks = [placed.task for placed in live if placed.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=HANGUP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _log_verdict(call_uuid: str, verdict: Verdict) -> None:
    """One line: the scenario passed, or what failed with what was measured."""
    name = loggable(verdict.scenario, 80)
    if verdict.passed:
        log.info("call %s: scenario %s passed (%d checks)", call_uuid, name, len(verdict.checks))
        return
    failed = "; ".join(check.message for check in verdict.failures)
    log.warning("call %s: scenario %s FAILED: %s", call_uuid, name, loggable(failed, 600))
