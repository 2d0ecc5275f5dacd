"""The verbs after the ``<Stream>`` laid out on the call clock, and their audio mixed in."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vobiz_stream.audio.speech import speech_available, synthesize, tone
from vobiz_stream.core.answer import (
    Dial,
    Hangup,
    Play,
    Speak,
    Stream,
    UnknownVerb,
    Wait,
    parse_response,
)
from vobiz_stream.emulator.verbs import (
    PLAY_SECONDS,
    PLAY_TONE_HZ,
    Voice,
    plan_verbs,
    speak_tone_seconds,
    voice,
)

RATE = 8000
HELLO = np.arange(1, 801, dtype=np.int16)  # 0.1 s of "speech"
SPOKEN = Voice({"Hello": HELLO})


def test_speak_wait_hangup_one_after_another() -> None:
    plan = plan_verbs((Speak("Hello"), Wait(1), Hangup(), Wait(5)), RATE, SPOKEN)
    assert [(step.name, step.start, step.end) for step in plan.steps] == [
        ("Speak", 0, 800),
        ("Wait", 800, 800 + RATE),
        ("Hangup", 800 + RATE, 800 + RATE),  # nothing after the hangup runs
    ]
    assert plan.end == 800 + RATE and plan.end_seconds == pytest.approx(1.1)
    assert plan.reason == "xml_hangup"
    assert plan.steps[0].audio is HELLO
    assert "0.10s of speech" in plan.steps[0].detail


def test_verbs_that_run_out_end_the_call_and_none_end_it_at_once() -> None:
    plan = plan_verbs((Wait(2),), RATE, Voice(), start=4000)
    assert (plan.start, plan.end, plan.reason) == (4000, 4000 + 2 * RATE, "xml_done")
    empty = plan_verbs((), RATE, Voice())
    assert (empty.end, empty.reason, empty.steps) == (0, "answer_ended", ())


def test_unspoken_text_becomes_a_tone_about_as_long_as_the_speech() -> None:
    text = "one two three four five six seven eight"
    plan = plan_verbs((Speak(text),), RATE, Voice(problem="espeak-ng is not installed"))
    [step] = plan.steps
    seconds = speak_tone_seconds(text)
    assert seconds == pytest.approx(8 * 60 / 160)
    assert step.end == round(seconds * RATE)
    assert step.audio is not None
    np.testing.assert_array_equal(step.audio, tone(seconds, RATE))
    assert "tone: espeak-ng is not installed" in step.detail
    assert speak_tone_seconds("Hi") == 0.5


def test_play_is_a_tone_per_loop_and_loop_zero_lasts_until_the_caller_hangs_up() -> None:
    twice = plan_verbs((Play("https://x/a.mp3", loop=2), Hangup()), RATE, Voice())
    assert twice.steps[0].end == round(2 * PLAY_SECONDS * RATE)
    assert twice.steps[0].audio is not None
    np.testing.assert_array_equal(twice.steps[0].audio, tone(PLAY_SECONDS, RATE, hz=PLAY_TONE_HZ))
    assert twice.end == 2 * RATE
    forever = plan_verbs((Play("https://x/a.mp3", loop=0), Hangup()), RATE, Voice())
    assert [step.name for step in forever.steps] == ["Play"]
    assert (forever.steps[0].end, forever.end, forever.reason) == (None, None, "caller")


def test_dial_a_second_stream_and_unknown_verbs_are_noted_and_skipped() -> None:
    plan = plan_verbs(
        (Dial("+911234"), Stream("ws://x/s"), UnknownVerb("Record"), Wait(1)), RATE, Voice()
    )
    assert [(step.name, step.start, step.end) for step in plan.steps] == [
        ("Dial", 0, 0),
        ("Stream", 0, 0),
        ("Record", 0, 0),
        ("Wait", 0, RATE),
    ]
    assert "not emulated" in plan.steps[0].detail
    assert "only the first <Stream>" in plan.steps[1].detail


def test_mix_adds_the_audio_at_its_place_in_any_slice() -> None:
    plan = plan_verbs((Wait(1), Speak("Hello")), RATE, SPOKEN)
    heard = np.zeros(2 * RATE, dtype=np.int16)
    heard[RATE + 100] = 5  # app audio under the speech adds up
    # In uneven slices, as the heard WAV is written.
    cuts = [0, 333, RATE + 50, RATE + 400, 2 * RATE]
    mixed = np.concatenate([plan.mix(heard[a:b], a) for a, b in itertools.pairwise(cuts)])
    expected = heard.copy()
    expected[RATE : RATE + 800] += HELLO
    np.testing.assert_array_equal(mixed, expected)


def test_mix_saturates_and_repeats_a_looping_tone() -> None:
    plan = plan_verbs((Play("u", loop=0),), RATE, Voice())
    loud = np.full(3 * RATE, 32000, dtype=np.int16)
    mixed = plan.mix(loud, 0)
    assert mixed.max() == 32767 and mixed.dtype == np.int16
    quiet = plan.mix(np.zeros(3 * RATE, dtype=np.int16), 0)
    one_tone = tone(PLAY_SECONDS, RATE, hz=PLAY_TONE_HZ)
    np.testing.assert_array_equal(quiet, np.tile(one_tone, 3))


def test_the_verbs_of_parsed_answer_xml() -> None:
    response = parse_response(
        '<Response><Stream>ws://x/s</Stream><Speak>Hello</Speak><Wait length="1"/><Hangup/>'
        "</Response>"
    )
    plan = plan_verbs(response.verbs[1:], RATE, SPOKEN)
    assert plan.end == 800 + RATE and plan.reason == "xml_hangup"


@pytest.mark.skipif(not speech_available(), reason="espeak-ng is not installed")
async def test_voice_speaks_each_text_once_with_espeak() -> None:
    spoken = await voice((Speak("Hello"), Wait(1), Speak("Hello"), Speak("  ")), RATE)
    assert spoken.problem is None
    assert list(spoken.spoken) == ["Hello"]
    np.testing.assert_array_equal(spoken.spoken["Hello"], synthesize("Hello", RATE))


async def test_without_espeak_voice_says_why_and_the_plan_plays_tones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    spoken = await voice((Speak("Nobody can say this"),), RATE)
    assert spoken.spoken == {}
    assert spoken.problem is not None and "espeak-ng is not installed" in spoken.problem
    [step] = plan_verbs((Speak("Nobody can say this"),), RATE, spoken).steps
    assert step.audio is not None and len(step.audio) == round(1.5 * RATE)  # 4 words
    assert "espeak-ng is not installed" in step.detail
