"""vobiz-stream: a toolkit for Vobiz audio streams.

Stream server, carrier emulator and the building blocks both are made of. Everything a user
needs is importable from here (``from vobiz_stream import CallSession, run_call``); each name is
imported from its module on first use, so ``import vobiz_stream`` stays cheap and a codec does
not bring in the server or the emulator.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
"""True for type checkers only; ``typing`` itself is not imported, to keep the import cheap."""

if TYPE_CHECKING:
    from vobiz_stream.app.config import (
        Settings,
        load_settings,
    )
    from vobiz_stream.app.datadir_lock import DataDirInUseError
    from vobiz_stream.app.handlers import (
        Handler,
        HandlerError,
        UtteranceCutter,
        echo,
        listens_only,
        record,
    )
    from vobiz_stream.app.play_handle import PlayHandle
    from vobiz_stream.app.server import StreamServer, serve, stream_endpoint
    from vobiz_stream.app.session import CallSession
    from vobiz_stream.audio import (
        ByteOrder,
        ByteOrderDetector,
        FrameSlicer,
        Pcm,
        Quality,
        Resampler,
        WavWriter,
        decode_l16,
        decode_mulaw,
        encode_l16,
        encode_mulaw,
    )
    from vobiz_stream.audio.speech import (
        SpeechUnavailable,
        asynthesize,
        synthesize,
        tone,
    )
    from vobiz_stream.audio.vad import (
        SpeechEnded,
        SpeechStarted,
        VoiceActivityDetector,
    )
    from vobiz_stream.core.answer import (
        AudioTrack,
        Dial,
        Hangup,
        Play,
        Response,
        Speak,
        Stream,
        Wait,
        answer_xml,
        parse_response,
        render,
        validate,
    )
    from vobiz_stream.core.kinds import EndReason, EventKind
    from vobiz_stream.core.playback import PlayMark, PlayOutcome
    from vobiz_stream.core.protocol import (
        AppCommand,
        CarrierEvent,
        Checkpoint,
        ClearAudio,
        ClearedAudio,
        Dtmf,
        Media,
        MediaEncoder,
        PlayAudio,
        PlayedStream,
        Start,
        Stop,
        StopCommand,
        Track,
        Unknown,
        encode,
        encode_payload,
        parse_command,
        parse_event,
    )
    from vobiz_stream.core.stream import StreamState
    from vobiz_stream.core.stream_events import (
        AudioCleared,
        BargeIn,
        ByteOrderFound,
        CallerAudio,
        CheckpointPlayed,
        DtmfReceived,
        MalformedFrame,
        SessionError,
        SessionEvent,
        SessionOptions,
        SpeechDetection,
        StreamEnded,
        StreamEvent,
        StreamStarted,
    )
    from vobiz_stream.emulator import (
        CallOptions,
        CallReport,
        CarrierProfile,
        Faults,
        LoadOptions,
        LoadSummary,
        parse_key_press,
        run_call,
        run_load,
    )
    from vobiz_stream.emulator.scenario import (
        Scenario,
        ScenarioError,
        Verdict,
        load_scenario,
        run_scenario,
    )
    from vobiz_stream.emulator.source import (
        CallerSource,
        EmulatorError,
        read_caller_audio,
    )
    from vobiz_stream.errors import (
        AudioError,
        ConfigError,
        ProtocolError,
        StoreError,
        VobizStreamError,
        XmlError,
    )
    from vobiz_stream.formats import AudioFormat, Encoding
    from vobiz_stream.loop import run
    from vobiz_stream.rest import RetryPolicy, VobizApiError, VobizClient

__version__ = "0.1.0"

__all__ = [
    "AppCommand",
    "AudioCleared",
    "AudioError",
    "AudioFormat",
    "AudioTrack",
    "BargeIn",
    "ByteOrder",
    "ByteOrderDetector",
    "ByteOrderFound",
    "CallOptions",
    "CallReport",
    "CallSession",
    "CallerAudio",
    "CallerSource",
    "CarrierEvent",
    "CarrierProfile",
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
    "EndReason",
    "EventKind",
    "Faults",
    "FrameSlicer",
    "Handler",
    "HandlerError",
    "Hangup",
    "LoadOptions",
    "LoadSummary",
    "MalformedFrame",
    "Media",
    "MediaEncoder",
    "Pcm",
    "Play",
    "PlayAudio",
    "PlayHandle",
    "PlayMark",
    "PlayOutcome",
    "PlayedStream",
    "ProtocolError",
    "Quality",
    "Resampler",
    "Response",
    "RetryPolicy",
    "Scenario",
    "ScenarioError",
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
    "StreamEnded",
    "StreamEvent",
    "StreamServer",
    "StreamStarted",
    "StreamState",
    "Track",
    "Unknown",
    "UtteranceCutter",
    "Verdict",
    "VobizApiError",
    "VobizClient",
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
    "load_scenario",
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
    "run_scenario",
    "serve",
    "stream_endpoint",
    "synthesize",
    "tone",
    "validate",
]

_MODULES = {
    "vobiz_stream.audio": (
        "ByteOrder",
        "ByteOrderDetector",
        "FrameSlicer",
        "Pcm",
        "Quality",
        "Resampler",
        "WavWriter",
        "decode_l16",
        "decode_mulaw",
        "encode_l16",
        "encode_mulaw",
    ),
    "vobiz_stream.audio.speech": (
        "SpeechUnavailable",
        "asynthesize",
        "synthesize",
        "tone",
    ),
    "vobiz_stream.app.config": (
        "Settings",
        "load_settings",
    ),
    "vobiz_stream.app.datadir_lock": ("DataDirInUseError",),
    "vobiz_stream.emulator": (
        "CallOptions",
        "CallReport",
        "CarrierProfile",
        "Faults",
        "LoadOptions",
        "LoadSummary",
        "parse_key_press",
        "run_call",
        "run_load",
    ),
    "vobiz_stream.emulator.scenario": (
        "Scenario",
        "ScenarioError",
        "Verdict",
        "load_scenario",
        "run_scenario",
    ),
    "vobiz_stream.emulator.source": (
        "CallerSource",
        "EmulatorError",
        "read_caller_audio",
    ),
    "vobiz_stream.rest": (
        "RetryPolicy",
        "VobizApiError",
        "VobizClient",
    ),
    "vobiz_stream.errors": (
        "AudioError",
        "ConfigError",
        "ProtocolError",
        "StoreError",
        "VobizStreamError",
        "XmlError",
    ),
    "vobiz_stream.formats": (
        "AudioFormat",
        "Encoding",
    ),
    "vobiz_stream.app.handlers": (
        "Handler",
        "HandlerError",
        "UtteranceCutter",
        "echo",
        "listens_only",
        "record",
    ),
    "vobiz_stream.loop": ("run",),
    "vobiz_stream.core.kinds": (
        "EndReason",
        "EventKind",
    ),
    "vobiz_stream.core.playback": (
        "PlayMark",
        "PlayOutcome",
    ),
    "vobiz_stream.core.protocol": (
        "AppCommand",
        "CarrierEvent",
        "Checkpoint",
        "ClearAudio",
        "ClearedAudio",
        "Dtmf",
        "Media",
        "MediaEncoder",
        "PlayAudio",
        "PlayedStream",
        "Start",
        "Stop",
        "StopCommand",
        "Track",
        "Unknown",
        "encode",
        "encode_payload",
        "parse_command",
        "parse_event",
    ),
    "vobiz_stream.core.stream": ("StreamState",),
    "vobiz_stream.core.stream_events": (
        "AudioCleared",
        "BargeIn",
        "ByteOrderFound",
        "CallerAudio",
        "CheckpointPlayed",
        "DtmfReceived",
        "MalformedFrame",
        "SessionError",
        "SessionEvent",
        "SessionOptions",
        "SpeechDetection",
        "StreamEnded",
        "StreamEvent",
        "StreamStarted",
    ),
    "vobiz_stream.app.server": (
        "StreamServer",
        "serve",
        "stream_endpoint",
    ),
    "vobiz_stream.app.play_handle": ("PlayHandle",),
    "vobiz_stream.app.session": ("CallSession",),
    "vobiz_stream.audio.vad": (
        "SpeechEnded",
        "SpeechStarted",
        "VoiceActivityDetector",
    ),
    "vobiz_stream.core.answer": (
        "AudioTrack",
        "Dial",
        "Hangup",
        "Play",
        "Response",
        "Speak",
        "Stream",
        "Wait",
        "answer_xml",
        "parse_response",
        "render",
        "validate",
    ),
}
"""Where each public name lives: the module :func:`__getattr__` imports it from."""

_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}


if not TYPE_CHECKING:  # a type checker sees the imports above, and no catch-all

    def __getattr__(name: str) -> object:
        """Import a public name from its module the first time it is asked for (PEP 562)."""
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
