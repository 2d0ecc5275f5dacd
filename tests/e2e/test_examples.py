"""Every example in examples/, by the one command its docstring gives (a real subprocess serving
the example and calling it with the emulator), plus what that command cannot show yet: DTMF
(sent here by a hand-written carrier) and the bridge agent with a fake STT/TTS service.

Calls run in real time (the server paces playback on the wall clock), 5 to 12 s each.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

from tests.e2e.conftest import StartServer, read_wav, speech, write_wav
from tests.e2e.test_server_echo import PlayoutModel
from vobiz_stream.audio import ByteOrder, Pcm, Resampler, encode_l16
from vobiz_stream.audio.speech import tone
from vobiz_stream.audio.vad import DEFAULT_START_MS
from vobiz_stream.emulator import CallOptions, run_call
from vobiz_stream.emulator.pytest_plugin import read_heard
from vobiz_stream.emulator.source import CallerSource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RATE = 8000
SILENT_WITHIN = DEFAULT_START_MS / 1000 + 0.2
"""How soon after the caller's first word a barged-in answer must stop (see test_barge_in)."""


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import ``examples/<name>.py`` as the example's command would (its folder on the path)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


class Ran:
    """One run of an example's command: exit code, output, report, what the caller heard."""

    def __init__(self, code: int, out: str, err: str, report: dict[str, Any], heard: Pcm):
        self.code, self.out, self.err, self.report, self.heard = code, out, err, report, heard

    def __repr__(self) -> str:
        return f"exit {self.code}\n{self.out[-3000:]}\n{self.err[-3000:]}"


async def run_example(
    name: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Ran:
    heard, report = tmp_path / "heard.wav", tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / f"{name}.py"),
        "--heard",
        str(heard),
        "--report",
        str(report),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    ran = Ran(process.returncode, out.decode(), err.decode(), {}, np.zeros(0, np.int16))
    if report.exists():
        ran.report = orjson.loads(report.read_bytes())
    if heard.exists():
        ran.heard, _ = read_heard(heard)
    return ran


def runs(samples: Pcm) -> list[tuple[int, int]]:
    """``[start, end)`` of each stretch of sound: nonzero samples, gaps under 0.5 s included
    (espeak-ng's pauses between words are digital silence, up to 0.35 s in the fixtures)."""
    edges = np.diff(np.concatenate([[0], (samples != 0).astype(np.int8), [0]]))
    merged: list[tuple[int, int]] = []
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if merged and start - merged[-1][1] < RATE // 2:
            merged[-1] = (merged[-1][0], int(end))
        else:
            merged.append((int(start), int(end)))
    return merged


def assert_slice_of(played: Pcm, source: Pcm) -> int:
    """``played`` is ``source`` from some offset on, sample for sample; returns the offset."""
    anchor = played[:160]
    offset = next(
        (i for i in range(len(source) - 159) if np.array_equal(source[i : i + 160], anchor)), None
    )
    assert offset is not None, "the played audio is not in the source"
    np.testing.assert_array_equal(played, source[offset : offset + len(played)])
    return offset


def first_voiced(samples: Pcm) -> float:
    """Seconds to the first 20 ms frame at -40 dBFS or louder."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160).astype(np.float64)
    levels = 20 * np.log10(np.maximum(np.sqrt(np.mean(frames**2, axis=1)), 1e-9) / 32768)
    return float(np.flatnonzero(levels >= -40)[0] * 0.02)


# --- recorder ------------------------------------------------------------------------------------


async def test_recorder_records_the_call_sample_for_sample(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ran = await run_example("recorder", tmp_path, "--data-dir", str(data), "--speed", "4")
    assert ran.code == 0, ran
    assert ran.report["completed"] and ran.report["end_reason"] == "hangup"
    [recording] = sorted((data / "recordings").glob("*.wav"))
    assert f"recording: {recording}" in ran.out
    recorded, rate, channels = read_wav(recording)
    caller, _ = speech("speech_male_8k")
    assert (rate, channels) == (RATE, 1)  # the caller only: record never plays
    np.testing.assert_array_equal(recorded[: len(caller), 0], caller)
    assert not ran.heard.any()
    log = (data / "webhook-events.log").read_text()
    assert '"Event":"StartStream"' in log
    assert (data / "vobiz-stream.db").exists()


# --- echo ----------------------------------------------------------------------------------------


async def test_echo_example_echoes_and_is_cut_by_the_barge_in(example: Any, tmp_path: Path) -> None:
    ran = await run_example("echo", tmp_path)
    assert ran.code == 0, ran
    report = ran.report
    assert report["completed"], ran
    [clear] = report["clears"]
    assert clear["round_trip"] < 0.1
    assert [c["answered_at"] is not None for c in report["checkpoints"]] == [True]

    caller = example("echo").caller_audio().pcm
    first, second = runs(ran.heard)
    assert_slice_of(ran.heard[first[0] : first[1]], caller)
    assert_slice_of(ran.heard[second[0] : second[1]], caller)
    male, _ = speech("speech_male_8k")
    onset = 0.5 + len(male) / RATE + 1.5 + first_voiced(speech("speech_female_8k")[0])
    assert onset < first[1] / RATE <= onset + SILENT_WITHIN  # the first echo was cut


# --- greeting agent ------------------------------------------------------------------------------


needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt install espeak-ng): the greeting would be beeps",
)


@needs_espeak
async def test_greeting_agent_speaks_and_hears_its_checkpoint(example: Any, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    write_silence(silence, 6.0)
    ran = await run_example("greeting_agent", tmp_path, "--audio", str(silence))
    assert ran.code == 0, ran
    [checkpoint] = ran.report["checkpoints"]
    assert checkpoint["answered_at"] is not None
    assert "greeting played; listening for keys" in ran.err

    # What the caller heard is the greeting as espeak-ng says it (resampled to the call's rate:
    # soxr's dither makes two runs differ by a least significant bit or two).
    agent = example("greeting_agent")
    expected = resampled(await agent.say(agent.GREETING), agent.RATE, RATE)
    [(start, end)] = runs(ran.heard)
    heard = ran.heard[start : start + len(expected)].astype(np.int32)
    reference = expected[: len(heard)].astype(np.int32)
    assert np.abs(heard - reference).max() <= 4
    assert abs(end - start - len(expected)) <= 2 * RATE // 50
    assert checkpoint["played_at"] == pytest.approx(end / RATE, abs=0.021)


async def test_greeting_agent_beeps_without_espeak(tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    write_silence(silence, 2.0)
    no_programs = tmp_path / "empty-path"
    no_programs.mkdir()
    env = {**os.environ, "PATH": str(no_programs)}
    ran = await run_example("greeting_agent", tmp_path, "--audio", str(silence), env=env)
    assert ran.code == 0, ran
    assert "espeak-ng is not installed" in ran.err and "beeping instead" in ran.err
    loud = np.flatnonzero(np.abs(ran.heard) > 1000)  # not the resampler's +-1 LSB dither
    start, end = int(loud[0]), int(loud[-1]) + 1
    assert abs((end - start) / RATE - 0.15) <= 0.01  # one 150 ms beep
    spectrum = np.abs(np.fft.rfft(ran.heard[start:end].astype(np.float64)))
    assert np.fft.rfftfreq(end - start, 1 / RATE)[int(np.argmax(spectrum))] == pytest.approx(
        1000, abs=10
    )


async def test_greeting_agent_answers_keys_only_after_its_greeting_played(
    example: Any, start_server: StartServer
) -> None:
    """The emulator cannot press keys yet, so a hand-written carrier plays the call."""
    agent = example("greeting_agent")
    running = await start_server(agent.handle, l16_byte_order="little")
    silence = encode_l16(np.zeros(160, np.int16), ByteOrder.LITTLE)
    async with aiohttp.ClientSession() as client, carrier(client, running.ws_url) as model:
        loop = asyncio.get_running_loop()
        began = loop.time()
        chunk = 0

        async def talk_until(done: Callable[[], bool], limit: float) -> None:
            nonlocal chunk
            while not done():
                assert loop.time() - began < limit, "the agent did not get there in time"
                await asyncio.sleep(max(0.0, began + chunk * 0.02 - loop.time()))
                media = {"payload": base64.b64encode(silence).decode(), "chunk": chunk}
                await send(model, {"event": "media", "media": media})
                chunk += 1

        await talk_until(lambda: bool(model.played), 5.0)  # the greeting has started
        await press(model, "9")  # during the greeting: nobody listens yet
        await talk_until(lambda: bool(model.checkpoints), 15.0)
        greeting_end = model.checkpoints[0][1]
        await talk_until(lambda: loop.time() > greeting_end + 0.1, 15.0)  # its playedStream came
        await press(model, "4")
        await talk_until(lambda: len(model.checkpoints) == 2, 20.0)
        await talk_until(lambda: loop.time() > model.checkpoints[1][1] + 0.1, 25.0)
    await running.wait_idle()

    answer = [data for at, data in model.played if at >= greeting_end]
    answered = sum(len(data) for data in answer) // 2
    expected = len(resampled(await agent.say("You pressed 4.", 4), agent.RATE, RATE))
    assert abs(answered - expected) <= 2 * RATE // 50  # "You pressed 4.", not 9
    kinds = [event["kind"] for event in running.server.store.list_calls()[0]["events"]]  # type: ignore[index]
    assert kinds.count("dtmf") == 2 and kinds.count("checkpoint_played") == 2


def carrier(client: aiohttp.ClientSession, url: str) -> Any:
    """A socket with a playout model answering checkpoints, after a live-shape start."""

    class Carrier:
        async def __aenter__(self) -> PlayoutModel:
            self.socket = await client.ws_connect(url)
            self.model = PlayoutModel(self.socket)
            self.reader = asyncio.create_task(self.model.run())
            start = {
                "callId": "greeting-call",
                "streamId": "stream-1",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": RATE},
            }
            await self.socket.send_str(orjson.dumps({"event": "start", "start": start}).decode())
            return self.model

        async def __aexit__(self, *exc: object) -> None:
            await self.socket.close()
            await self.reader

    return Carrier()


async def send(model: PlayoutModel, frame: dict[str, Any]) -> None:
    await model.socket.send_str(orjson.dumps(frame).decode())


async def press(model: PlayoutModel, digit: str) -> None:
    await send(model, {"event": "dtmf", "dtmf": {"digit": digit}})


def write_silence(path: Path, seconds: float) -> None:
    write_wav(path, np.zeros(round(seconds * RATE), np.int16), RATE)


def resampled(pcm: Pcm, rate: int, to: int) -> Pcm:
    resampler = Resampler(rate, to)
    return np.concatenate([resampler.process(pcm), resampler.flush()])


# --- bridge agent --------------------------------------------------------------------------------


async def test_bridge_agent_example_answers(tmp_path: Path) -> None:
    ran = await run_example("bridge_agent", tmp_path)
    assert ran.code == 0, ran
    assert "heard '2.5 seconds of speech'" in ran.err or "heard '2.6 seconds of speech'" in ran.err
    assert ran.report["checkpoints"]
    assert all(c["answered_at"] is not None for c in ran.report["checkpoints"])
    male, _ = speech("speech_male_8k")
    [(start, _end)] = runs(ran.heard)
    assert start / RATE > 0.5 + len(male) / RATE  # the answer comes after the question


class FakeSpeechService:
    """STT that keeps what it was given and always hears "hello"; TTS that says each word of
    its text as a 100 ms tone of its own pitch, ``delay`` seconds apart."""

    rate = RATE

    def __init__(self, delay: float = 0.0) -> None:
        self.utterances: list[Pcm] = []
        self.spoken: list[Pcm] = []
        self.delay = delay

    async def transcribe(self, pcm: Pcm, rate: int) -> str:
        assert rate == RATE
        self.utterances.append(pcm)
        return "hello"

    async def speak(self, text: str) -> AsyncIterator[Pcm]:
        for index, _word in enumerate(text.split()):
            chunk = tone(0.1, RATE, hz=400 + 100 * index)
            self.spoken.append(chunk)
            yield chunk
            await asyncio.sleep(self.delay)


ANSWER = "you said hello to me, and this is a rather long answer of many words"


async def reply(text: str) -> str:
    assert text == "hello"
    return ANSWER


async def bridge_call(
    example: Any, start_server: StartServer, service: FakeSpeechService, caller: Pcm, path: Path
) -> tuple[Any, Pcm]:
    agent = example("bridge_agent")
    running = await start_server(agent.bridge(service, service, reply))
    report = await run_call(
        running.base + "/", CallerSource(caller, RATE), CallOptions(heard_path=path)
    )
    await running.wait_idle()
    assert report.completed, report.failure
    heard, _ = read_heard(path)
    return report, heard


async def test_bridge_agent_with_a_fake_service(
    example: Any, start_server: StartServer, tmp_path: Path
) -> None:
    male, _ = speech("speech_male_8k")
    caller = np.concatenate([np.zeros(4000, np.int16), male, np.zeros(3 * RATE, np.int16)])
    service = FakeSpeechService()
    report, heard = await bridge_call(example, start_server, service, caller, tmp_path / "h.wav")

    # The STT got the question, sample for sample, with its first and last words.
    [utterance] = service.utterances
    offset = assert_slice_of(utterance, caller)
    voiced = np.flatnonzero(np.abs(caller) > 300)
    assert offset <= voiced[0] and offset + len(utterance) >= voiced[voiced < len(caller)][-1]
    # The caller heard the TTS's answer, sample for sample, every word, then its checkpoint.
    [(start, _)] = runs(heard)
    answer = np.concatenate(service.spoken)
    assert len(service.spoken) == len(ANSWER.split())
    np.testing.assert_array_equal(heard[start - 1 : start - 1 + len(answer)], answer)
    assert report.checkpoints and report.checkpoints[-1].answered_at is not None


async def test_bridge_agent_stops_answering_when_talked_over(
    example: Any, start_server: StartServer, tmp_path: Path
) -> None:
    male, _ = speech("speech_male_8k")
    female, _ = speech("speech_female_8k")
    question_end = 0.5 + len(male) / RATE
    # The answer starts about 0.6 s after the question (the detector's stop_ms and a margin)
    # and takes 1.5 s; the caller speaks again 0.6 s into it, then listens to the next answer.
    interrupt_at = question_end + 1.2
    caller = np.concatenate(
        [
            np.zeros(4000, np.int16),
            male,
            np.zeros(round((interrupt_at - question_end) * RATE), np.int16),
            female,
            np.zeros(3 * RATE, np.int16),
        ]
    )
    service = FakeSpeechService(delay=0.1)  # a word every 100 ms: real time, streaming
    report, heard = await bridge_call(example, start_server, service, caller, tmp_path / "h.wav")

    assert len(service.utterances) == 2  # both questions reached the STT
    words = len(ANSWER.split())
    assert words + 2 <= len(service.spoken) < 2 * words  # the first answer was abandoned
    [clear] = report.clears
    onset = interrupt_at + first_voiced(female)
    first, second = runs(heard)[:2]
    assert onset < first[1] / RATE <= onset + SILENT_WITHIN
    assert second[0] / RATE > onset + len(female) / RATE  # the second answer, after question 2
    assert clear.round_trip is not None


# --- pipecat -------------------------------------------------------------------------------------


async def test_pipecat_echo_example(example: Any, tmp_path: Path) -> None:
    pytest.importorskip("pipecat", reason="needs the extra: pip install 'vobiz-stream[pipecat]'")
    ran = await run_example("pipecat_echo", tmp_path)
    assert ran.code == 0, ran
    report = ran.report
    names = [c["name"] for c in report["checkpoints"]]
    assert names == [f"bot-stopped-{n}" for n in range(1, len(names) + 1)] and len(names) >= 3
    assert all(c["answered_at"] is not None for c in report["checkpoints"])
    [clear] = report["clears"]
    assert clear["round_trip"] < 0.1

    module = example("pipecat_echo")
    caller = module.caller_audio().pcm
    greeting, first, second = runs(ran.heard)
    expected = tone(module.GREETING_SECONDS, RATE)
    np.testing.assert_array_equal(
        ran.heard[greeting[0] - 1 : greeting[0] - 1 + len(expected)], expected
    )
    assert_slice_of(ran.heard[first[0] : first[1]], caller)
    assert_slice_of(ran.heard[second[0] : second[1]], caller)
    male, _ = speech("speech_male_8k")
    onset = 1.5 + len(male) / RATE + 1.5 + first_voiced(speech("speech_female_8k")[0])
    assert onset < first[1] / RATE <= onset + SILENT_WITHIN + 0.1  # + a 40 ms Pipecat chunk


# --- the guide -----------------------------------------------------------------------------------


async def test_the_guides_agent_does_what_the_guide_says(
    start_server: StartServer, tmp_path: Path
) -> None:
    """docs/guide.md's myagent.py, served and called as the guide's own test calls it."""
    guide = (EXAMPLES.parent / "docs" / "guide.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    agent_code = next(block for block in blocks if "async def handle(session" in block)
    namespace: dict[str, Any] = {}
    exec(compile(agent_code, "docs/guide.md:myagent.py", "exec"), namespace)
    running = await start_server(namespace["handle"])
    female, _ = speech("speech_female_8k")
    report = await run_call(
        running.base + "/",
        CallerSource(female, RATE),
        CallOptions(heard_path=tmp_path / "heard.wav", hangup_after=7),
    )
    await running.wait_idle()
    assert report.completed, report.failure
    assert len(report.clears) == 1  # the caller spoke over the greeting
    [answer] = [c for c in report.checkpoints if c.played_at is not None]
    heard, _ = read_heard(tmp_path / "heard.wav")
    assert heard[3 * RATE : round(answer.played_at * RATE)].any()
