"""resolve_handler (built-ins, MODULE:FUNCTION from a folder on sys.path, helpful errors) and the
built-in echo handler on a session over an in-memory transport."""

from __future__ import annotations

import asyncio
import base64
import sys
import wave
from pathlib import Path

import numpy as np
import orjson
import pytest

from vobiz_stream.app.handlers import (
    BUILT_IN,
    MARGIN,
    HandlerError,
    UtteranceCutter,
    echo,
    listens_only,
    plays_audio,
    record,
    resolve_handler,
)
from vobiz_stream.app.session import CallerAudio, CallSession, SessionOptions
from vobiz_stream.audio import ByteOrder, Pcm, encode_l16
from vobiz_stream.audio.vad import SpeechEnded, SpeechStarted, VoiceActivityDetector
from vobiz_stream.core.protocol import ClearAudio, PlayAudio, Track, parse_command
from vobiz_stream.errors import VobizStreamError

DATA = Path(__file__).parents[1] / "data"


def write_module(folder: Path, name: str, source: str) -> None:
    path = folder.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(folder).parents:
        if parent != Path("."):
            (folder / parent / "__init__.py").touch()
    path.write_text(source)


# --- built-ins ---------------------------------------------------------------------------------


def test_built_in_handlers_resolve_to_themselves() -> None:
    assert resolve_handler("record") is record
    assert resolve_handler("echo") is echo
    assert set(BUILT_IN) == {"record", "echo"}


# --- MODULE:FUNCTION ---------------------------------------------------------------------------


async def test_module_function_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path,
        "vs_test_agent_flat",
        "calls = []\n\nasync def handle(session):\n    calls.append(session)\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    handler = resolve_handler("vs_test_agent_flat:handle")
    assert handler.__name__ == "handle"
    marker = object()
    await handler(marker)  # type: ignore[arg-type]
    module = __import__("vs_test_agent_flat")
    assert module.calls == [marker]


def test_package_module_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, "vs_test_pkg.agents.voice", "async def run(session):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    handler = resolve_handler("vs_test_pkg.agents.voice:run")
    assert handler.__module__ == "vs_test_pkg.agents.voice"
    assert handler.__qualname__ == "run"


def test_missing_module_says_what_to_do() -> None:
    with pytest.raises(HandlerError) as caught:
        resolve_handler("vs_no_such_module_anywhere:handler")
    message = str(caught.value)
    assert "cannot import 'vs_no_such_module_anywhere'" in message
    assert "vs_no_such_module_anywhere:handler" in message
    assert "run from the folder that holds it" in message and "PYTHONPATH" in message


def test_module_in_the_current_directory_without_it_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under the ``vobiz-stream`` command, whose sys.path starts with its own bin folder."""
    write_module(tmp_path, "vs_test_agent_here", "async def handle(session):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    here = {"", ".", str(tmp_path)}
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in here])
    handler = resolve_handler("vs_test_agent_here:handle")
    assert handler.__module__ == "vs_test_agent_here"


def test_module_whose_own_import_fails_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, "vs_test_broken_dep", "import vs_missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HandlerError, match="vs_missing_dependency_xyz"):
        resolve_handler("vs_test_broken_dep:handler")


def test_function_that_is_not_async(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path,
        "vs_test_sync_handler",
        "def handler(session):\n    pass\n\nhandler_value = 3\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("vs_test_sync_handler:handler", "vs_test_sync_handler:handler_value"):
        with pytest.raises(HandlerError, match="must name an async function") as caught:
            resolve_handler(spec)
        assert repr(spec) in str(caught.value)
        assert "async def handler(session)" in str(caught.value)


def test_missing_function_in_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, "vs_test_empty_module", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HandlerError, match="must name an async function"):
        resolve_handler("vs_test_empty_module:nothing_here")


@pytest.mark.parametrize("spec", ["parrot", "module_only:", ":function_only", ""])
def test_bad_spec_lists_the_built_ins_and_the_form(spec: str) -> None:
    with pytest.raises(HandlerError) as caught:
        resolve_handler(spec)
    message = str(caught.value)
    assert "record, echo" in message
    assert "MODULE:FUNCTION" in message
    assert repr(spec) in message


def test_handler_error_is_in_the_package_family() -> None:
    assert issubclass(HandlerError, VobizStreamError)
    assert issubclass(HandlerError, ValueError)


# --- echo --------------------------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def send_frame(self, data: bytes) -> None:
        self.sent.append(data.decode())

    async def close(self) -> None:
        pass


def frames_of(samples: Pcm) -> list[Pcm]:
    return [samples[start : start + 160] for start in range(0, len(samples) - 159, 160)]


def speech_frames() -> list[Pcm]:
    with wave.open(str(DATA / "speech_male_8k.wav"), "rb") as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return frames_of(samples.astype(np.int16))


def media_text(pcm: Pcm) -> str:
    payload = base64.b64encode(encode_l16(pcm, ByteOrder.LITTLE)).decode()
    return orjson.dumps({"event": "media", "media": {"payload": payload}}).decode()


def start_text() -> str:
    start = {
        "callId": "C1",
        "streamId": "S1",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000},
    }
    return orjson.dumps({"event": "start", "start": start}).decode()


async def test_echo_plays_the_utterance_back_and_clears_when_talked_over() -> None:
    frames = frames_of(np.zeros(4000, dtype=np.int16)) + speech_frames()
    frames += frames_of(np.zeros(8000, dtype=np.int16))  # then 1 s of silence
    # Where the detector (tested in test_vad.py) puts the utterance; echo keeps 100 ms around it.
    events = VoiceActivityDetector(8000).push(np.concatenate(frames))
    assert [type(event) for event in events] == [SpeechStarted, SpeechEnded]
    onset, end = events[0].onset, events[1].end  # type: ignore[union-attr]
    utterance = np.concatenate(frames)[
        round((onset - MARGIN) * 8000) : round((end + MARGIN) * 8000)
    ]

    transport = FakeTransport()
    session = CallSession(transport, SessionOptions(byte_order=ByteOrder.LITTLE, max_lead=0.2))
    session.feed(start_text())
    task = asyncio.ensure_future(echo(session))
    await asyncio.sleep(0)
    for pcm in frames:
        session.feed(media_text(pcm))
        await asyncio.sleep(0)
    for _ in range(100):
        if transport.sent:
            break
        await asyncio.sleep(0.005)

    plays = [c for c in map(parse_command, transport.sent) if isinstance(c, PlayAudio)]
    assert len(plays) == 10  # 200 ms ahead, the rest paced
    played = np.frombuffer(b"".join(play.payload for play in plays), dtype="<i2")
    np.testing.assert_array_equal(played, utterance[: len(played)])

    # The caller talks over the echo: the session clears it (barge-in), nothing more is played.
    for pcm in speech_frames()[:20]:
        session.feed(media_text(pcm))
        await asyncio.sleep(0)
    for _ in range(100):
        if ClearAudio("S1") in map(parse_command, transport.sent):
            break
        await asyncio.sleep(0.005)
    commands = [parse_command(text) for text in transport.sent]
    assert ClearAudio("S1") in commands
    after_clear = commands[commands.index(ClearAudio("S1")) + 1 :]
    assert not any(isinstance(command, PlayAudio) for command in after_clear)
    assert session.stats.barge_in_delays

    session.close("socket closed")
    await asyncio.wait_for(task, 1.0)
    await session.aclose()


# --- cutting utterances out of the events ------------------------------------------------------


def numbered(seconds: float, rate: int = 8000) -> Pcm:
    """Samples whose values tell where they are (modulo 30000)."""
    return (np.arange(round(seconds * rate)) % 30000).astype(np.int16)


def chunks_of(pcm: Pcm, size: int = 160) -> list[Pcm]:
    return [pcm[start : start + size] for start in range(0, len(pcm), size)]


def test_utterance_cutter_keeps_a_margin_around_the_speech() -> None:
    audio = numbered(4.0)
    cutter = UtteranceCutter(8000, start_ms=200, margin=0.1)
    pieces = chunks_of(audio)
    for chunk in pieces[:100]:  # 2.0 s
        assert cutter.feed(CallerAudio(chunk, 8000)) is None
    assert cutter.feed(SpeechStarted(onset=1.8, detected=2.0)) is None
    for chunk in pieces[100:175]:  # to 3.5 s
        assert cutter.feed(CallerAudio(chunk, 8000)) is None
    cutter.feed(CallerAudio(numbered(0.02), 8000, track=Track.OUTBOUND))  # not the caller
    utterance = cutter.feed(SpeechEnded(end=3.0, detected=3.5))
    assert utterance is not None
    np.testing.assert_array_equal(utterance, audio[round(1.7 * 8000) : round(3.1 * 8000)])

    # The next utterance starts afresh, from what came after the last one.
    for chunk in pieces[175:195]:  # to 3.9 s
        cutter.feed(CallerAudio(chunk, 8000))
    assert cutter.feed(SpeechStarted(onset=3.7, detected=3.9)) is None
    for chunk in pieces[195:]:
        cutter.feed(CallerAudio(chunk, 8000))
    second = cutter.feed(SpeechEnded(end=3.8, detected=4.0))
    assert second is not None
    np.testing.assert_array_equal(second, audio[round(3.6 * 8000) : round(3.9 * 8000)])


def test_utterance_cutter_holds_little_while_nobody_speaks() -> None:
    cutter = UtteranceCutter(8000, start_ms=200, margin=0.1)
    audio = numbered(30.0)
    for chunk in chunks_of(audio):
        cutter.feed(CallerAudio(chunk, 8000))
    # An onset further back than anything held starts at the oldest held sample: only
    # start_ms + 2 margins (and part of a chunk) are kept between utterances.
    cutter.feed(SpeechStarted(onset=0.0, detected=30.0))
    utterance = cutter.feed(SpeechEnded(end=30.0, detected=30.0))
    assert utterance is not None
    assert 0.4 <= len(utterance) / 8000 <= 0.4 + 0.02 + MARGIN
    np.testing.assert_array_equal(utterance, audio[len(audio) - len(utterance) :])


def test_utterance_cutter_ignores_an_end_without_a_start() -> None:
    cutter = UtteranceCutter(8000, start_ms=200)
    cutter.feed(CallerAudio(numbered(1.0), 8000))
    assert cutter.feed(SpeechEnded(end=0.5, detected=1.0)) is None


async def _plays_maybe(session: CallSession) -> None:
    """A user's handler that may play."""


def test_only_handlers_marked_listens_only_are_taken_not_to_play() -> None:
    assert not plays_audio(record)  # the built-in recorder is marked
    assert plays_audio(echo) and plays_audio(_plays_maybe)

    async def transcriber(session: CallSession) -> None:
        pass

    assert plays_audio(transcriber)
    assert listens_only(transcriber) is transcriber  # a decorator: the function, unchanged
    assert not plays_audio(transcriber)
