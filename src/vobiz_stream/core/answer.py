"""Answer XML: the ``<Response>`` a carrier fetches, its ``<Stream>`` and the verbs around it.

Build with :func:`render` (or :func:`answer_xml`), read with :func:`parse_response`. Both run
:func:`validate`, which enforces the ``<Stream>`` rules of docs/protocol.md section 1 and raises
:class:`~vobiz_stream.errors.XmlError` naming the attribute, the bad value and the rule.

Parsing is tolerant where Vobiz is: whitespace around element text, ``true``/``false`` in any case,
loose content types, unknown attributes (ignored) and unknown verbs (kept as :class:`UnknownVerb`
so an emulator can skip them). What the parser ignored, and a response that hangs up as soon as its
stream starts, are reported by :attr:`Response.warnings` rather than rejected.
"""

from __future__ import annotations

from xml.etree import ElementTree

from vobiz_stream.core.answer_reading import parse_extra_headers, parse_response
from vobiz_stream.core.answer_rules import validate
from vobiz_stream.core.answer_writing import encode_verb
from vobiz_stream.core.verbs import (
    MAX_EXTRA_HEADERS_BYTES,
    MAX_RETRIES,
    AudioTrack,
    CallbackMethod,
    Dial,
    Hangup,
    Play,
    Response,
    Speak,
    Stream,
    UnknownVerb,
    Verb,
    Wait,
)

__all__ = [
    "MAX_EXTRA_HEADERS_BYTES",
    "MAX_RETRIES",
    "AudioTrack",
    "CallbackMethod",
    "Dial",
    "Hangup",
    "Play",
    "Response",
    "Speak",
    "Stream",
    "UnknownVerb",
    "Verb",
    "Wait",
    "answer_xml",
    "parse_extra_headers",
    "parse_response",
    "render",
    "validate",
]

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def render(response: Response) -> str:
    """The answer XML for ``response``, after :func:`validate`.

    ``<Stream>`` always carries ``bidirectional``, ``audioTrack`` and ``contentType`` (they decide
    what flows on the socket, so readers should not have to know the defaults); its other
    attributes are written only when they differ from the default.
    """
    validate(response)
    root = ElementTree.Element("Response")
    for verb in response.verbs:
        tag, attributes, text = encode_verb(verb)
        ElementTree.SubElement(root, tag, attributes).text = text or None
    ElementTree.indent(root)
    return _XML_DECLARATION + ElementTree.tostring(root, encoding="unicode") + "\n"


def answer_xml(*verbs: Verb) -> str:
    """``render(Response(verbs))``: the body to serve for a call."""
    return render(Response(verbs))
