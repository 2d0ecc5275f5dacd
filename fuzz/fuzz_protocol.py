"""Fuzz the protocol parser (atheris): ``parse_event`` and ``parse_command`` raise
:class:`~vobiz_stream.errors.ProtocolError` and nothing else, and whatever parses encodes back
to a frame that parses to the same message.

The first byte picks the case: text (as a WebSocket text frame holds it) or bytes, parse_event
with 2- or 1-byte samples, or parse_command; and whether the rest is the frame itself, or the
choices from which :func:`structured_frame` builds a JSON object out of the protocol's own names
(the JSON parser is C, so coverage alone would rarely lead the fuzzer past it). Run it with
``fuzz/run.py`` or directly::

    python fuzz/fuzz_protocol.py -runs=100000 fuzz/corpus/protocol
"""

from __future__ import annotations

import base64
import sys
from typing import Any

import atheris
import orjson

with atheris.instrument_imports(include=["vobiz_stream"]):
    from vobiz_stream.core.protocol import encode, parse_command, parse_event
    from vobiz_stream.errors import ProtocolError


NAMES = (
    "event",
    "start",
    "media",
    "payload",
    "chunk",
    "timestamp",
    "track",
    "tracks",
    "streamId",
    "callId",
    "accountId",
    "sequenceNumber",
    "mediaFormat",
    "encoding",
    "sampleRate",
    "contentType",
    "audioTrack",
    "extra_headers",
    "from",
    "to",
    "direction",
    "name",
    "digit",
    "dtmf",
    "reason",
    "customParameters",
)
EVENTS = (
    "start",
    "media",
    "playedStream",
    "played",
    "clearedAudio",
    "dtmf",
    "stop",
    "playAudio",
    "checkpoint",
    "clearAudio",
    "mark",
    "",
)
STRINGS = (
    "inbound",
    "outbound",
    "both",
    "audio/x-l16",
    "audio/x-mulaw",
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-mulaw;rate=8000",
    "audio/x-l16;rate=24000",
    "l16",
    "linear16",
    "mulaw",
    "pcmu",
    "ulaw",
    "8000",
    "16000",
    "24000",
    "0",
    "-1",
    "1e3",
    " 7 ",
    "AAAA",
    "AAA=",
    "//8=",
    "@@@",
    "AA==\n",
    "",
)


def value(provider: atheris.FuzzedDataProvider, depth: int) -> Any:
    kind = provider.ConsumeIntInRange(0, 11)
    if kind == 0:
        return None
    if kind == 1:
        return provider.ConsumeBool()
    if kind == 2:
        return provider.ConsumeInt(8)
    if kind == 3:
        return provider.ConsumeIntInRange(-2, 50_000)
    if kind == 4:
        return provider.ConsumeRegularFloat()
    if kind == 5:
        return STRINGS[provider.ConsumeIntInRange(0, len(STRINGS) - 1)]
    if kind == 6:
        return provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 40))
    if kind == 7:
        payload = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 700))
        return (
            orjson.dumps(payload.hex()).decode()
            if provider.ConsumeBool()
            else (base64.b64encode(payload).decode())
        )
    if kind in (8, 9) and depth < 4:
        return structured(provider, depth + 1)
    if kind == 10 and depth < 4:
        return [value(provider, depth + 1) for _ in range(provider.ConsumeIntInRange(0, 4))]
    return EVENTS[provider.ConsumeIntInRange(0, len(EVENTS) - 1)]


def structured(provider: atheris.FuzzedDataProvider, depth: int = 0) -> dict[str, Any]:
    frame: dict[str, Any] = {}
    if depth == 0 and provider.ConsumeIntInRange(0, 7):
        frame["event"] = EVENTS[provider.ConsumeIntInRange(0, len(EVENTS) - 1)]
    for _ in range(provider.ConsumeIntInRange(0, 8)):
        frame[NAMES[provider.ConsumeIntInRange(0, len(NAMES) - 1)]] = value(provider, depth)
    return frame


def structured_frame(data: bytes) -> bytes:
    """A JSON object built from ``data``: protocol names as keys, values of every JSON type."""
    return orjson.dumps(structured(atheris.FuzzedDataProvider(data)))


def parse(mode: int, frame: str | bytes) -> object:
    if mode & 4:
        return parse_command(frame)
    return parse_event(frame, 1 if mode & 2 else 2)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode = data[0]
    frame: str | bytes = structured_frame(data[1:]) if mode & 8 else data[1:]
    if mode & 1:
        frame = frame.decode("utf-8", "replace")
    try:
        message = parse(mode, frame)
    except ProtocolError:
        return
    text = encode(message)  # type: ignore[arg-type]
    again = parse(mode, text)
    if again != message:
        raise AssertionError(f"round trip changed {message!r} into {again!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
