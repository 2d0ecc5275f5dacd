"""resolve_handler (built-ins, MODULE:FUNCTION from a folder on sys.path, helpful errors) and the
built-in echo handler on a session over an in-memory transport."""

from __future__ import annotations

import asyncio
import base64
import wave
from pathlib import Path

import numpy as np
import orjson
import pytest

from vobiz_stream.audio import ByteOrder, Pcm, encode_l16
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.handlers import BUILT_IN, HandlerError, echo, record, resolve_handler
from vobiz_stream.protocol import ClearAudio, PlayAudio, parse_command
from vobiz_stream.session import CallSession, SessionOptions
from vobiz_stream.vad import EnergyVad, VoiceChange

DATA = Path(__file__).parent / "data"


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
    assert "PYTHONPATH" in message


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

    async def close(self) -> None:
        pass


def speech_frames() -> list[Pcm]:
    with wave.open(str(DATA / "speech_male_8k.wav"), "rb") as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    samples = samples.astype(np.int16)
    return [samples[start : start + 160] for start in range(0, len(samples) - 159, 160)]


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
    frames = speech_frames() + [np.zeros(160, dtype=np.int16)] * 30  # then 600 ms of silence
    # Where the detector (tested in test_vad.py) puts the utterance.
    vad = EnergyVad(8000)
    changes = [vad.update(pcm) for pcm in frames]
    started = changes.index(VoiceChange.SPEECH_STARTED)
    ended = changes.index(VoiceChange.SPEECH_ENDED)
    utterance = np.concatenate(frames[max(0, started - 5) : ended + 1])  # with 5 chunks preroll

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

    # The caller talks over the echo: it is cleared.
    for pcm in speech_frames()[:15]:
        session.feed(media_text(pcm))
        await asyncio.sleep(0)
    assert ClearAudio("S1") in [parse_command(text) for text in transport.sent]

    session.close("socket closed")
    await asyncio.wait_for(task, 1.0)
    await session.aclose()
