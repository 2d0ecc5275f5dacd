"""Run a scenario: make its caller's audio, place the call with the scenario as the caller, and
judge what happened.

The call is the emulator's own (:func:`~vobiz_stream.emulator.call.run_call`) with a
:class:`~vobiz_stream.emulator.scenario.caller.ScriptedCaller` as the caller, so everything a
plain emulated call does (status callbacks, checkpoints, faults, the heard WAV) holds here too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp

from vobiz_stream.audio.speech import SpeechUnavailable, asynthesize, speech_available, tone
from vobiz_stream.emulator.call import CallOptions, run_call
from vobiz_stream.emulator.control import ApiCallControl
from vobiz_stream.emulator.report import CallReport
from vobiz_stream.emulator.scenario.caller import ScriptedCaller
from vobiz_stream.emulator.scenario.measure import Conversation, Measurements
from vobiz_stream.emulator.scenario.model import (
    CallerTurn,
    Ending,
    KeyPress,
    Scenario,
    TurnAudio,
)
from vobiz_stream.emulator.scenario.parse import ScenarioError
from vobiz_stream.emulator.scenario.verdict import Verdict, judge
from vobiz_stream.emulator.source import CallerSource, EmulatorError, read_caller_audio
from vobiz_stream.logtext import loggable

log = logging.getLogger(__name__)

__all__ = ["SPEECH_RATE", "TurnAudios", "prepare_turns", "run_scenario"]

SPEECH_RATE = 16000
"""The rate ``say`` turns are made at (the call resamples them to the stream's)."""
SECONDS_PER_CHARACTER = 0.06
"""Without espeak-ng a ``say`` turn is a tone about as long as the words would take."""

TurnAudios = dict[int, CallerSource]
"""Each caller turn's audio, by step index: made once, shared by every run of a scenario."""

_AGENT_ENDINGS = frozenset({"app_stop", "app_closed", "xml_hangup", "xml_done", "answer_ended"})


async def prepare_turns(scenario: Scenario) -> TurnAudios:
    """The audio of every caller turn: espeak-ng speech (a tone as long as the words without
    it, said once in the log), files, tones. A file that cannot be read, or speech espeak-ng
    cannot make (a voice it does not have), is a :class:`ScenarioError`."""
    turns: TurnAudios = {}
    warned = False
    for index, step in enumerate(scenario.steps):
        if not isinstance(step, CallerTurn):
            continue
        if step.kind is TurnAudio.FILE:
            try:
                turns[index] = read_caller_audio(Path(step.content))
            except EmulatorError as exc:
                raise ScenarioError(f"{scenario.path}: step {index + 1}: {exc}") from None
            continue
        if step.kind is TurnAudio.TONE:
            pcm = tone(float(step.content), SPEECH_RATE)
        elif speech_available():
            try:
                pcm = await asynthesize(step.content, SPEECH_RATE, voice=scenario.voice)
            except SpeechUnavailable as exc:  # a voice it does not have, a broken install
                raise ScenarioError(f"{scenario.path}: step {index + 1}: {exc}") from None
        else:
            if not warned:
                log.warning(
                    "%s: espeak-ng is not installed, so the caller's say turns are tones as "
                    "long as the words (apt install espeak-ng for speech)",
                    loggable(str(scenario.path), 200),
                )
                warned = True
            seconds = min(10.0, max(0.3, len(step.content) * SECONDS_PER_CHARACTER))
            pcm = tone(seconds, SPEECH_RATE)
        turns[index] = CallerSource(pcm, SPEECH_RATE)
    return turns


async def run_scenario(
    scenario: Scenario,
    answer_url: str,
    *,
    turns: TurnAudios | None = None,
    options: CallOptions | None = None,
    http: aiohttp.ClientSession | None = None,
    run: int = 1,
    control: ApiCallControl | None = None,
) -> Verdict:
    """Call ``answer_url`` with ``scenario`` as the caller and judge the call.

    ``turns`` is the caller's audio made beforehand (:func:`prepare_turns`; made here without
    it); ``options`` the carrier's settings (``heard_path`` keeps what the caller heard);
    ``control`` the local carrier's hold on the call (its REST API acts on it).
    """
    if turns is None:
        turns = await prepare_turns(scenario)
    caller = ScriptedCaller(scenario, turns)
    report = await run_call(
        answer_url, caller, options or CallOptions(), http=http, control=control
    )
    talk = _conversation(scenario, caller, report)
    measured = Measurements.of(talk)
    heard = None if options is None or options.heard_path is None else str(options.heard_path)
    return Verdict(
        scenario=scenario.name,
        path=str(scenario.path),
        checks=judge(scenario, measured, talk.problems, talk.step_starts),
        measurements=measured,
        call_uuid=report.call_uuid,
        heard_path=heard if report.completed else None,
        run=run,
        report=report,
    )


def _conversation(scenario: Scenario, caller: ScriptedCaller, report: CallReport) -> Conversation:
    problems = list(caller.problems)
    if report.failure is not None:
        problems.append(f"the call failed: {report.failure}")
    ended_by = None
    if report.end_reason == "hangup":
        ended_by = Ending.CALLER
    elif report.end_reason in _AGENT_ENDINGS:
        ended_by = Ending.AGENT
    left = scenario.steps[caller.next_step :]
    if report.completed and not caller.hung_up and left:
        step = left[0]
        who = (
            "the caller's time ran out (max_seconds)"
            if ended_by is Ending.CALLER
            else f"the call ended ({report.end_reason})"
        )
        if ended_by is not Ending.AGENT or any(isinstance(s, CallerTurn | KeyPress) for s in left):
            problems.append(
                f"{who} at {report.duration:.2f}s before step {caller.next_step + 1} "
                f"({step.describe()}) was done"
            )
    agent = caller.agent
    return Conversation(
        duration=report.duration,
        agent=[] if agent is None else agent.utterances(report.duration),
        turns=caller.records,
        step_starts=caller.step_starts,
        end_reason=report.end_reason,
        ended_by=ended_by,
        underruns=[gap.seconds for gap in report.underruns],
        checkpoints_played=sum(1 for c in report.checkpoints if c.played_at is not None),
        problems=problems,
    )
