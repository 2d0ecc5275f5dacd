"""The verbs after the ``<Stream>``: what the caller hears from them, and when they end the call.

protocol.md section 1: a ``<Stream>`` without ``keepCallAlive`` runs in the background while the
elements after it execute in order, and the call ends when they run out (the stream's socket
closes with the call). After a ``keepCallAlive`` stream the same elements run once the stream
ends. :func:`plan_verbs` lays them out on the call clock as :class:`VerbStep` items (start, end,
audio), in samples at the stream's rate, so the heard WAV gets their audio at its exact place
(:meth:`VerbPlan.mix`). Only :func:`voice`, which runs espeak-ng, does I/O.

What the emulator makes of each verb:

* ``<Speak>``: the text spoken by espeak-ng when it is installed
  (:mod:`vobiz_stream.audio.speech`), else a 1 kHz tone about as long as the speech would be
  (160 words a minute, at least half a second). ``voice`` and ``language`` are not used.
* ``<Wait length="N">``: N seconds of silence.
* ``<Play>``: the emulator does not fetch audio, so the file's length is unknown: a 1 s tone at
  440 Hz stands in for it, ``loop`` times (``loop="0"``, play until the call moves on: the tone
  repeats until the caller hangs up, and no verb after it runs).
* ``<Hangup>``: the call ends there; nothing after it runs.
* ``<Dial>``: not emulated: noted on the timeline, takes no time, and the next verb runs.
* a second ``<Stream>`` and unknown verbs: not emulated either; noted and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vobiz_stream.audio import Pcm
from vobiz_stream.audio.speech import SpeechUnavailable, asynthesize, tone
from vobiz_stream.core.answer import Dial, Hangup, Play, Speak, Stream, UnknownVerb, Verb, Wait

__all__ = [
    "PLAY_SECONDS",
    "PLAY_TONE_HZ",
    "VerbPlan",
    "VerbStep",
    "Voice",
    "plan_verbs",
    "speak_tone_seconds",
    "voice",
]

log = logging.getLogger("vobiz_stream.emulator")

PLAY_SECONDS = 1.0
"""How long the tone standing in for one ``<Play>`` of a file lasts."""
PLAY_TONE_HZ = 440
WORDS_PER_MINUTE = 160
"""espeak-ng's default speaking rate, which the tone for unspoken text follows."""
SHORTEST_SPEAK_TONE = 0.5

_CACHE_LIMIT = 64
_spoken_cache: dict[tuple[str, int], Pcm] = {}
"""Speech already made in this process, by (text, rate): many calls of a load say the same."""


@dataclass(frozen=True)
class Voice:
    """Speech made ahead of a plan: samples per ``<Speak>`` text, or why there is none."""

    spoken: Mapping[str, Pcm] = field(default_factory=dict)
    problem: str | None = None
    """Why some text has no speech (espeak-ng missing or failing); it gets a tone instead."""


async def voice(verbs: Sequence[Verb], rate: int) -> Voice:
    """Speak every ``<Speak>`` text of ``verbs`` with espeak-ng, at ``rate``.

    Never raises for missing speech: after the first failure the rest are left to tones, and
    :attr:`Voice.problem` says why.
    """
    spoken: dict[str, Pcm] = {}
    for verb in verbs:
        if not isinstance(verb, Speak) or not verb.text.strip() or verb.text in spoken:
            continue
        cached = _spoken_cache.get((verb.text, rate))
        if cached is None:
            try:
                cached = await asynthesize(verb.text, rate)
            except SpeechUnavailable as exc:
                log.warning("<Speak> becomes a tone: %s", exc)
                return Voice(spoken, str(exc))
            if len(_spoken_cache) >= _CACHE_LIMIT:
                _spoken_cache.clear()
            _spoken_cache[(verb.text, rate)] = cached
        spoken[verb.text] = cached
    return Voice(spoken)


def speak_tone_seconds(text: str) -> float:
    """How long the tone for unspoken ``text`` lasts: about as long as saying it."""
    return max(SHORTEST_SPEAK_TONE, len(text.split()) * 60 / WORDS_PER_MINUTE)


@dataclass(frozen=True)
class VerbStep:
    """One verb on the call clock: samples ``start`` to ``end`` at the plan's rate.

    ``audio`` is what the caller hears meanwhile, repeated to fill the span (a looping
    ``<Play>``); ``end`` None lasts until the call ends.
    """

    verb: Verb
    start: int
    end: int | None
    audio: Pcm | None = None
    detail: str = ""

    @property
    def name(self) -> str:
        """The verb's element name, as the timeline shows it."""
        return self.verb.tag if isinstance(self.verb, UnknownVerb) else self.verb.TAG


@dataclass(frozen=True)
class VerbPlan:
    """The verbs after the ``<Stream>``, laid out from ``start`` (samples at ``rate``)."""

    rate: int
    start: int
    steps: tuple[VerbStep, ...]
    end: int | None
    """When the verbs end the call; None when they never do (the caller hangs up first)."""
    reason: str
    """How they end it: ``xml_hangup`` (a ``<Hangup>``), ``xml_done`` (they ran out),
    ``answer_ended`` (there were none), or ``caller`` when they never end it."""

    @property
    def end_seconds(self) -> float | None:
        return None if self.end is None else self.end / self.rate

    def mix(self, pcm: Pcm, position: int) -> Pcm:
        """``pcm``, which plays from sample ``position`` of the call, with the verbs' audio
        added where it overlaps (saturating)."""
        stop = position + len(pcm)
        mixed: np.ndarray | None = None
        for step in self.steps:
            if step.audio is None or not len(step.audio):
                continue
            begin = max(step.start, position)
            end = stop if step.end is None else min(step.end, stop)
            if begin >= end:
                continue
            if mixed is None:
                mixed = pcm.astype(np.int32)
            offsets = np.arange(begin - step.start, end - step.start) % len(step.audio)
            mixed[begin - position : end - position] += step.audio[offsets]
        if mixed is None:
            return pcm
        clipped: Pcm = np.clip(mixed, -32768, 32767).astype(np.int16)
        return clipped


def plan_verbs(verbs: Sequence[Verb], rate: int, spoken: Voice, *, start: int = 0) -> VerbPlan:
    """Lay ``verbs`` out one after another from sample ``start``; see the module's notes."""
    steps: list[VerbStep] = []
    position = start

    def add(verb: Verb, seconds: float | None, audio: Pcm | None, detail: str) -> None:
        nonlocal position
        end = None if seconds is None else position + round(seconds * rate)
        steps.append(VerbStep(verb, position, end, audio, detail))
        if end is not None:
            position = end

    for verb in verbs:
        match verb:
            case Speak():
                audio, detail = _speech(verb, rate, spoken)
                add(verb, len(audio) / rate, audio, detail)
            case Wait():
                add(verb, verb.length, None, f"{verb.length}s")
            case Play():
                loops = 1 if verb.loop is None else verb.loop
                audio = tone(PLAY_SECONDS, rate, hz=PLAY_TONE_HZ)
                played = (
                    "until the caller hangs up"
                    if loops == 0
                    else f"{loops * PLAY_SECONDS:g}s of {PLAY_TONE_HZ} Hz tone"
                )
                detail = f"{verb.url}: {played} (the emulator does not fetch audio)"
                add(verb, None if loops == 0 else loops * PLAY_SECONDS, audio, detail)
                if loops == 0:
                    return VerbPlan(rate, start, tuple(steps), None, "caller")
            case Hangup():
                add(verb, 0.0, None, "the call ends")
                return VerbPlan(rate, start, tuple(steps), position, "xml_hangup")
            case Dial():
                add(verb, 0.0, None, f"{verb.number}: not emulated, skipped")
            case Stream():
                add(verb, 0.0, None, f"{verb.url}: only the first <Stream> connects, skipped")
            case UnknownVerb():
                add(verb, 0.0, None, "not a verb the emulator knows, skipped")
    return VerbPlan(rate, start, tuple(steps), position, "xml_done" if steps else "answer_ended")


def _speech(verb: Speak, rate: int, spoken: Voice) -> tuple[Pcm, str]:
    said = f"{verb.text[:60]!r}"
    if not verb.text.strip():
        return np.zeros(0, dtype=np.int16), f"{said}: nothing to say"
    speech = spoken.spoken.get(verb.text)
    if speech is not None:
        return speech, f"{said} ({len(speech) / rate:.2f}s of speech)"
    seconds = speak_tone_seconds(verb.text)
    why = spoken.problem or "no speech was made for it"
    return tone(seconds, rate), f"{said} ({seconds:.2f}s tone: {why})"
