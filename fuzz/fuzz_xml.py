"""Fuzz the answer XML parser (atheris): ``parse_response`` raises
:class:`~vobiz_stream.errors.XmlError` and nothing else (defusedxml refuses entities), and a
response it accepts renders to XML that parses back to the same response.

The first byte picks bytes or text input, and whether the rest is the document itself or the
choices from which :func:`structured_document` writes one out of the verbs, attributes and values
the carrier knows (the XML parser is C, so coverage alone would rarely lead the fuzzer into
``<Stream>``). Run it with ``fuzz/run.py`` or directly::

    python fuzz/fuzz_xml.py -runs=100000 fuzz/corpus/xml
"""

from __future__ import annotations

import sys
from xml.sax.saxutils import escape, quoteattr

import atheris

with atheris.instrument_imports(include=["vobiz_stream"]):
    from vobiz_stream.core.answer import parse_response, render
    from vobiz_stream.errors import XmlError


TAGS = ("Stream", "Speak", "Dial", "Hangup", "Play", "Wait", "stream", "Record", "x:Stream")
ATTRIBUTES = (
    "bidirectional",
    "audioTrack",
    "streamTimeout",
    "statusCallbackUrl",
    "statusCallbackMethod",
    "contentType",
    "extraHeaders",
    "keepCallAlive",
    "maxRetries",
    "url",
    "voice",
    "language",
    "callerId",
    "timeout",
    "reason",
    "loop",
    "length",
    "BiDirectional",
    "xmlns",
)
VALUES = (
    "true",
    "false",
    "TRUE",
    "1",
    "0",
    "-1",
    " 7 ",
    "86400",
    "99999999999999999999",
    "1e3",
    "inbound",
    "outbound",
    "both",
    "GET",
    "POST",
    "get",
    "audio/x-l16;rate=8000",
    "audio/x-l16;rate=16000",
    "audio/x-mulaw;rate=8000",
    "audio/x-l16;rate=24000",
    "audio/x-l16",
    "audio/x-mulaw;rate=16000",
    "wss://app.example/stream?call=1&lang=en",
    "ws://127.0.0.1:3000/stream",
    "https://app.example/webhook",
    "http://",
    "ftp://x",
    "a=1,b=2",
    "=x",
    "a=b=c",
    ",",
    "k=" + "v" * 600,
    "",
    " ",
)
PROLOGUES = (
    "",
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<?xml version="1.0" encoding="ISO-8859-1"?>',
    '<!DOCTYPE r [<!ENTITY e "x">]>',
    '<!DOCTYPE r SYSTEM "http://example.com/r.dtd">',
    "<!-- c -->",
)


def _pick(provider: atheris.FuzzedDataProvider, options: tuple[str, ...]) -> str:
    return options[provider.ConsumeIntInRange(0, len(options) - 1)]


def _text(provider: atheris.FuzzedDataProvider) -> str:
    kind = provider.ConsumeIntInRange(0, 3)
    if kind == 0:
        return _pick(provider, VALUES)
    raw = provider.ConsumeUnicode(provider.ConsumeIntInRange(0, 30))
    return raw if kind == 1 else escape(raw)


def structured_document(data: bytes) -> str:
    """A ``<Response>`` written from ``data``: known verbs and attributes, values good and bad."""
    provider = atheris.FuzzedDataProvider(data)
    parts = [
        _pick(provider, PROLOGUES),
        "<Response>" if provider.ConsumeIntInRange(0, 9) else "<R>",
    ]
    for _ in range(provider.ConsumeIntInRange(0, 4)):
        tag = _pick(provider, TAGS)
        attributes = "".join(
            f" {_pick(provider, ATTRIBUTES)}={quoteattr(_text(provider))}"
            for _ in range(provider.ConsumeIntInRange(0, 6))
        )
        inner = escape(_pick(provider, VALUES)) if provider.ConsumeBool() else _text(provider)
        if provider.ConsumeIntInRange(0, 5) == 0:
            inner += f"<{_pick(provider, TAGS)}/>"
        parts.append(f"<{tag}{attributes}>{inner}</{tag}>")
    parts.append("</Response>")
    return "".join(parts)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    text: str | bytes = data[1:]
    if data[0] & 2:
        text = structured_document(data[1:]).encode("utf-8", "surrogatepass")
    if data[0] & 1:
        text = text.decode("utf-8", "replace")
    try:
        response = parse_response(text)
    except XmlError:
        return
    again = parse_response(render(response))
    if again.verbs != response.verbs:
        raise AssertionError(f"round trip changed {response.verbs!r} into {again.verbs!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
