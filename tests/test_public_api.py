"""The public API: what ``from vobiz_stream import ...`` offers; importing it stays cheap."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import vobiz_stream

PUBLIC = [
    "AppCommand",
    "AudioCleared",
    "AudioError",
    "AudioFormat",
    "AudioTrack",
    "BargeIn",
    "ByteOrder",
    "ByteOrderDetector",
    "CallOptions",
    "CallReport",
    "CallSession",
    "CallerAudio",
    "CallerSource",
    "CarrierEvent",
    "Checkpoint",
    "CheckpointPlayed",
    "ClearAudio",
    "ClearedAudio",
    "ConfigError",
    "DataDirInUseError",
    "Dial",
    "Dtmf",
    "DtmfReceived",
    "EmulatorError",
    "Encoding",
    "Faults",
    "FrameSlicer",
    "Handler",
    "HandlerError",
    "Hangup",
    "LoadOptions",
    "LoadSummary",
    "Media",
    "MediaEncoder",
    "Pcm",
    "Play",
    "PlayAudio",
    "PlayHandle",
    "PlayOutcome",
    "PlayedStream",
    "ProtocolError",
    "Quality",
    "Resampler",
    "Response",
    "SessionError",
    "SessionEvent",
    "SessionOptions",
    "Settings",
    "Speak",
    "SpeechDetection",
    "SpeechEnded",
    "SpeechStarted",
    "SpeechUnavailable",
    "Start",
    "Stop",
    "StopCommand",
    "StoreError",
    "Stream",
    "StreamServer",
    "Track",
    "Unknown",
    "UtteranceCutter",
    "VobizStreamError",
    "VoiceActivityDetector",
    "Wait",
    "WavWriter",
    "XmlError",
    "answer_xml",
    "asynthesize",
    "decode_l16",
    "decode_mulaw",
    "echo",
    "encode",
    "encode_l16",
    "encode_mulaw",
    "encode_payload",
    "listens_only",
    "load_settings",
    "parse_command",
    "parse_event",
    "parse_key_press",
    "parse_response",
    "read_caller_audio",
    "record",
    "render",
    "run",
    "run_call",
    "run_load",
    "serve",
    "stream_endpoint",
    "synthesize",
    "tone",
    "validate",
]
"""Every name the package offers at the top, sorted: a change here is a change of the API."""


def test_all_is_the_pinned_sorted_list() -> None:
    assert vobiz_stream.__all__ == PUBLIC
    assert sorted(PUBLIC) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_name_imports_and_is_the_one_its_module_defines(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from vobiz_stream import {name}", namespace)  # the statement users write
    value = namespace[name]
    module = importlib.import_module(vobiz_stream._MODULE_OF[name])
    assert value is getattr(module, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert value.__name__ == name  # not an alias under another name


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from vobiz_stream import *", namespace)
    assert set(PUBLIC) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'CallerAudioo'"):
        _ = vobiz_stream.CallerAudioo  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from vobiz_stream import CallerAudioo", {})


def test_dir_lists_the_public_names_once() -> None:
    _ = vobiz_stream.CallSession  # a name already loaded is listed once, like the others
    listed = dir(vobiz_stream)
    assert set(PUBLIC) <= set(listed)
    assert len(listed) == len(set(listed))


def test_what_type_checkers_see_matches_what_is_imported_at_run_time() -> None:
    """The ``if TYPE_CHECKING:`` imports name the same modules and names as the lazy table."""
    tree = ast.parse(Path(vobiz_stream.__file__).read_text(encoding="utf-8"))
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    seen = {
        (node.module, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == {(module, name) for name, module in vobiz_stream._MODULE_OF.items()}


def test_importing_the_package_or_a_codec_does_not_load_the_server_or_the_emulator() -> None:
    probe = (
        "import sys, vobiz_stream; bare = set(sys.modules); "
        "from vobiz_stream import decode_mulaw; codec = set(sys.modules); "
        "print(sorted(m for m in bare if m.startswith('vobiz_stream.')), "
        "sorted(m for m in codec if m.startswith(('vobiz_stream.app', 'vobiz_stream.emulator', "
        "'aiohttp', 'asyncio'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[] []"
