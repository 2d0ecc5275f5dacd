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

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, TypeAlias, TypeVar
from urllib.parse import urlsplit
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from vobiz_stream.errors import AudioError, XmlError
from vobiz_stream.formats import (
    DEFAULT_FORMAT,
    INBOUND_RATES,
    AudioFormat,
    Encoding,
    parse_content_type,
)
from vobiz_stream.logtext import loggable

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

MAX_RETRIES = 10
"""The most reconnects ``maxRetries`` may ask for."""

MAX_EXTRA_HEADERS_BYTES = 512
"""The most ``extraHeaders`` may hold, UTF-8 encoded."""

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


class AudioTrack(StrEnum):
    """Whose audio the carrier sends: the caller (inbound), the other leg (outbound), or both."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


class CallbackMethod(StrEnum):
    """How status callbacks are sent; GET puts the parameters in the query string."""

    GET = "GET"
    POST = "POST"


@dataclass(frozen=True, slots=True)
class _Verb:
    ignored: tuple[str, ...] = field(default=(), compare=False, repr=False, kw_only=True)
    """What the parser met on this element and does not model (unknown attributes, child
    elements), for :attr:`Response.warnings`. Not part of equality and never rendered."""


@dataclass(frozen=True, slots=True)
class Stream(_Verb):
    """``<Stream>``: connect the call's audio to a WebSocket. Defaults are the carrier's."""

    TAG: ClassVar[str] = "Stream"

    url: str
    """The ``ws://``/``wss://`` URL, written as the element's text (never a ``url=`` attribute)."""
    bidirectional: bool = False
    audio_track: AudioTrack = AudioTrack.INBOUND
    stream_timeout: int = 86400
    status_callback_url: str | None = None
    status_callback_method: CallbackMethod = CallbackMethod.POST
    content_type: AudioFormat = DEFAULT_FORMAT
    extra_headers: tuple[tuple[str, str], ...] = ()
    """``(key, value)`` pairs in order; written as ``key=value,key=value``."""
    keep_call_alive: bool = False
    max_retries: int = 0


@dataclass(frozen=True, slots=True)
class Speak(_Verb):
    """``<Speak>``: text-to-speech."""

    TAG: ClassVar[str] = "Speak"

    text: str
    voice: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Dial(_Verb):
    """``<Dial>``: connect the caller to a number, written as the element's text."""

    TAG: ClassVar[str] = "Dial"

    number: str
    caller_id: str | None = None
    timeout: int | None = None
    """Seconds to wait for an answer."""


@dataclass(frozen=True, slots=True)
class Hangup(_Verb):
    """``<Hangup>``: end the call."""

    TAG: ClassVar[str] = "Hangup"

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Play(_Verb):
    """``<Play>``: play an audio file to the caller."""

    TAG: ClassVar[str] = "Play"

    url: str
    loop: int | None = None
    """How many times to play; 0 means until the call moves on."""


@dataclass(frozen=True, slots=True)
class Wait(_Verb):
    """``<Wait>``: pause XML execution, keeping the call up."""

    TAG: ClassVar[str] = "Wait"

    length: int = 1
    """Seconds."""


@dataclass(frozen=True, slots=True)
class UnknownVerb(_Verb):
    """An element of ``<Response>`` this module does not model, kept so it can be skipped or
    written back. Only its attributes and its own text are kept, not its children."""

    tag: str
    attributes: tuple[tuple[str, str], ...] = ()
    text: str = ""


Verb: TypeAlias = Stream | Speak | Dial | Hangup | Play | Wait | UnknownVerb


@dataclass(frozen=True, slots=True)
class Response:
    """``<Response>``: the verbs the carrier executes in order."""

    verbs: tuple[Verb, ...] = ()

    @classmethod
    def of(cls, *verbs: Verb) -> Response:
        """``Response.of(Stream(url), Wait(5))`` instead of a tuple."""
        return cls(verbs)

    @property
    def streams(self) -> tuple[Stream, ...]:
        """The ``<Stream>`` verbs, in order."""
        return tuple(verb for verb in self.verbs if isinstance(verb, Stream))

    @property
    def ends_immediately(self) -> bool:
        """True when the last verb is a ``<Stream>`` without ``keepCallAlive``.

        Only ``keepCallAlive`` holds XML execution; any other stream runs in the background, so
        when nothing follows it the response is finished and the carrier hangs up as soon as the
        stream starts. Legal XML, and a common surprise.
        """
        last = self.verbs[-1] if self.verbs else None
        return isinstance(last, Stream) and not last.keep_call_alive

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that are legal but probably not what the author meant."""
        found: list[str] = []
        for number, verb in enumerate(self.verbs, 1):
            tag = loggable(_tag_of(verb), SHOWN_CHARS)
            if isinstance(verb, UnknownVerb):
                known = _case_insensitive_match(tag, list(_READERS))
                hint = f" (verb names are case-sensitive: did you mean <{known}>?)" if known else ""
                found.append(f"verb {number} <{tag}> is not modelled; kept as UnknownVerb{hint}")
            found.extend(f"verb {number} <{tag}> ignored {what}" for what in verb.ignored)
            if len(found) > SHOWN_ITEMS:
                left = len(self.verbs) - number
                found[SHOWN_ITEMS:] = [f"more warnings past verb {number}, {left} verbs after it"]
                break
        if self.ends_immediately:
            found.append(
                "the last verb is a <Stream> without keepCallAlive: it runs in the background, "
                "so the call hangs up as soon as the stream starts; set bidirectional and "
                "keepCallAlive, or add a verb after it (such as <Wait>)"
            )
        return tuple(found)


def _tag_of(verb: Verb) -> str:
    return verb.tag if isinstance(verb, UnknownVerb) else verb.TAG


def _case_insensitive_match(name: str, candidates: list[str]) -> str | None:
    """The candidate equal to ``name`` but for case, if ``name`` is not itself one."""
    if name in candidates:
        return None
    return next((each for each in candidates if each.lower() == name.lower()), None)


# --- validation -------------------------------------------------------------------------------

_BAD_URL_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f]")
_XML_ILLEGAL_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# An XML name (XML 1.0 fifth edition, without ':'), optionally in ElementTree's {namespace} form.
_NAME_START = (
    "A-Z_a-z\xc0-\xd6\xd8-\xf6\xf8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d\u2070-\u218f"
    "\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_XML_NAME = re.compile(
    rf"(?:\{{[^{{}}]+\}})?[{_NAME_START}][{_NAME_START}\-.0-9\xb7\u0300-\u036f\u203f-\u2040]*"
)


def validate(item: Response | Verb) -> None:
    """Raise :class:`XmlError` listing every rule ``item`` breaks; return if it can be rendered.

    The rules are docs/protocol.md section 1's for ``<Stream>``, plain range checks for the other
    verbs' numbers, and what XML itself can carry (characters, element and attribute names).
    """
    verbs = item.verbs if isinstance(item, Response) else (item,)
    problems = [problem for verb in verbs for problem in _problems(verb)]
    if problems:
        raise XmlError("invalid answer XML: " + "; ".join(problems))


SHOWN_CHARS = 80
"""How much of a value from the answer XML an error message quotes: an app's 1 MB attribute must
not become a 2 MB error."""

SHOWN_ITEMS = 10
"""How many ignored attributes, child elements or warnings are named, the rest counted: a
document of 200 000 unknown elements must not make 200 000 lines of report."""


def _shown(value: str) -> str:
    """``value`` quoted as ``repr`` quotes it (control characters escaped), cut to
    :data:`SHOWN_CHARS` characters with how many there were."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}…({len(value)} chars)"


def _problems(verb: Verb) -> list[str]:
    tag, attributes, text = _encode(verb)
    problems = _stream_problems(verb) if isinstance(verb, Stream) else _other_problems(verb)
    for name, value in [(tag, None), *attributes.items()]:
        if not _XML_NAME.fullmatch(name) or name == "xmlns":
            problems.append(f"<{tag}> name {_shown(name)} is not a usable XML name")
        if value is not None and _XML_ILLEGAL_CHARACTER.search(value):
            problems.append(
                f"<{tag}> {name}={_shown(value)} holds a character XML cannot carry"
            )
    if _XML_ILLEGAL_CHARACTER.search(text):
        problems.append(f"<{tag}> text {_shown(text)} holds a character XML cannot carry")
    return problems


def _is_whole(value: object, low: int, high: int | None = None) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )


def _stream_problems(stream: Stream) -> list[str]:
    problems: list[str] = []
    if not stream.url:
        problems.append(
            "<Stream> has no URL: the WebSocket URL is the element's text, not a url= attribute"
        )
    else:
        problems += _url_problems("<Stream> URL", stream.url, ("ws", "wss"))
    if stream.bidirectional and stream.audio_track is not AudioTrack.INBOUND:
        problems.append(
            f"<Stream> audioTrack={stream.audio_track.value!r} is not allowed with "
            "bidirectional='true': Vobiz hangs up on 'both' and 'outbound'; use 'inbound'"
        )
    if stream.keep_call_alive and not stream.bidirectional:
        problems.append(
            "<Stream> keepCallAlive='true' needs bidirectional='true': only a bidirectional "
            "stream can hold the call"
        )
    problems += _content_type_problems(stream.content_type)
    if not _is_whole(stream.stream_timeout, 1):
        problems.append(
            f"<Stream> streamTimeout={stream.stream_timeout!r} must be a positive whole number "
            "of seconds"
        )
    if not _is_whole(stream.max_retries, 0, MAX_RETRIES):
        problems.append(
            f"<Stream> maxRetries={stream.max_retries!r} must be a whole number from 0 to "
            f"{MAX_RETRIES}"
        )
    problems += _extra_headers_problems(stream.extra_headers)
    if stream.status_callback_url is not None:
        problems += _url_problems(
            "<Stream> statusCallbackUrl", stream.status_callback_url, ("http", "https")
        )
    return problems


def _url_problems(what: str, url: str, schemes: tuple[str, ...]) -> list[str]:
    if _BAD_URL_CHARACTER.search(url):
        return [f"{what} {_shown(url)} contains whitespace or a control character"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return [f"{what} {_shown(url)} cannot be parsed: {exc}"]
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts.scheme not in schemes:
        return [f"{what} {_shown(url)} must start with {wanted}"]
    if not parts.hostname:
        return [f"{what} {_shown(url)} names no host"]
    return []


def _content_type_problems(content_type: AudioFormat) -> list[str]:
    if content_type.sample_rate in INBOUND_RATES.get(content_type.encoding, ()):
        return []
    allowed = ", ".join(
        AudioFormat(encoding, rate).content_type
        for encoding, rates in INBOUND_RATES.items()
        for rate in rates
    )
    problem = (
        f"<Stream> contentType={content_type.content_type!r} is not a format the carrier "
        f"sends; use one of {allowed}"
    )
    if content_type.encoding is Encoding.L16 and content_type.sample_rate == 24000:
        problem += " (rate=24000 is usable only outbound, in playAudio)"
    return [problem]


def _extra_headers_problems(headers: tuple[tuple[str, str], ...]) -> list[str]:
    problems: list[str] = []
    for key, value in headers:
        if not key:
            problems.append(f"<Stream> extraHeaders has an empty key (value {_shown(value)})")
        for part, role in ((key, "key"), (value, "value")):
            if "=" in part or "," in part:
                problems.append(
                    f"<Stream> extraHeaders {role} {_shown(part)} contains '=' or ',', which the "
                    "key=value,key=value format cannot carry"
                )
            elif part != part.strip():
                problems.append(
                    f"<Stream> extraHeaders {role} {_shown(part)} has surrounding whitespace, "
                    "which "
                    "the key=value,key=value format does not keep"
                )
    # surrogatepass: a lone surrogate (an undecodable byte of an environment variable) is
    # counted here and refused as invalid XML text below, not raised as UnicodeEncodeError.
    size = len(_extra_headers_text(headers).encode("utf-8", "surrogatepass"))
    if size > MAX_EXTRA_HEADERS_BYTES:
        problems.append(
            f"<Stream> extraHeaders is {size} bytes encoded; Vobiz takes at most "
            f"{MAX_EXTRA_HEADERS_BYTES}"
        )
    return problems


def _other_problems(verb: Verb) -> list[str]:
    if isinstance(verb, Wait) and not _is_whole(verb.length, 1):
        return [f"<Wait> length={verb.length!r} must be a positive whole number of seconds"]
    if isinstance(verb, Dial) and verb.timeout is not None and not _is_whole(verb.timeout, 1):
        return [f"<Dial> timeout={verb.timeout!r} must be a positive whole number of seconds"]
    if isinstance(verb, Play) and verb.loop is not None and not _is_whole(verb.loop, 0):
        return [f"<Play> loop={verb.loop!r} must be a whole number, 0 or more"]
    if isinstance(verb, UnknownVerb):
        if verb.tag in _READERS:
            return [f"UnknownVerb tag {verb.tag!r} is a verb this module models; use {verb.tag}"]
        if len(dict(verb.attributes)) < len(verb.attributes):
            return [f"UnknownVerb <{verb.tag}> has an attribute name twice"]
    return []


# --- building ---------------------------------------------------------------------------------

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_STREAM_DEFAULTS = Stream(url="")


def render(response: Response) -> str:
    """The answer XML for ``response``, after :func:`validate`.

    ``<Stream>`` always carries ``bidirectional``, ``audioTrack`` and ``contentType`` (they decide
    what flows on the socket, so readers should not have to know the defaults); its other
    attributes are written only when they differ from the default.
    """
    validate(response)
    root = ElementTree.Element("Response")
    for verb in response.verbs:
        tag, attributes, text = _encode(verb)
        ElementTree.SubElement(root, tag, attributes).text = text or None
    ElementTree.indent(root)
    return _XML_DECLARATION + ElementTree.tostring(root, encoding="unicode") + "\n"


def answer_xml(*verbs: Verb) -> str:
    """``render(Response(verbs))``: the body to serve for a call."""
    return render(Response(verbs))


def _encode(verb: Verb) -> tuple[str, dict[str, str], str]:
    """The element name, attributes (in the order they are written) and text of ``verb``."""
    match verb:
        case Stream():
            return Stream.TAG, _stream_attributes(verb), verb.url
        case Speak():
            return Speak.TAG, _present(voice=verb.voice, language=verb.language), verb.text
        case Dial():
            timeout = None if verb.timeout is None else str(verb.timeout)
            return Dial.TAG, _present(callerId=verb.caller_id, timeout=timeout), verb.number
        case Hangup():
            return Hangup.TAG, _present(reason=verb.reason), ""
        case Play():
            loop = None if verb.loop is None else str(verb.loop)
            return Play.TAG, _present(loop=loop), verb.url
        case Wait():
            return Wait.TAG, {"length": str(verb.length)}, ""
        case UnknownVerb():
            return verb.tag, dict(verb.attributes), verb.text


def _present(**attributes: str | None) -> dict[str, str]:
    return {name: value for name, value in attributes.items() if value is not None}


def _stream_attributes(stream: Stream) -> dict[str, str]:
    defaults = _STREAM_DEFAULTS
    attributes = {
        "bidirectional": _boolean_text(stream.bidirectional),
        "audioTrack": stream.audio_track.value,
    }
    if stream.stream_timeout != defaults.stream_timeout:
        attributes["streamTimeout"] = str(stream.stream_timeout)
    if stream.status_callback_url is not None:
        attributes["statusCallbackUrl"] = stream.status_callback_url
    if stream.status_callback_method != defaults.status_callback_method:
        attributes["statusCallbackMethod"] = stream.status_callback_method.value
    attributes["contentType"] = stream.content_type.content_type
    if stream.extra_headers:
        attributes["extraHeaders"] = _extra_headers_text(stream.extra_headers)
    if stream.keep_call_alive != defaults.keep_call_alive:
        attributes["keepCallAlive"] = _boolean_text(stream.keep_call_alive)
    if stream.max_retries != defaults.max_retries:
        attributes["maxRetries"] = str(stream.max_retries)
    return attributes


def _boolean_text(value: bool) -> str:
    return "true" if value else "false"


def _extra_headers_text(headers: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{key}={value}" for key, value in headers)


# --- parsing ----------------------------------------------------------------------------------

_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")


def parse_response(text: str | bytes) -> Response:
    """Read answer XML into a :class:`Response`, then :func:`validate` it.

    Entity declarations and external references are refused (defusedxml). Every problem, from
    malformed XML to a broken ``<Stream>`` rule, raises :class:`XmlError` and nothing else.
    """
    root = _parse_tree(text)
    if root.tag != "Response":
        raise XmlError(f"the root element is <{root.tag}>; answer XML must be a <Response>")
    response = Response(tuple(_read_verb(element) for element in root))
    validate(response)
    return response


def _parse_tree(text: str | bytes) -> ElementTree.Element:
    try:
        return SafeElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        hint = (
            " (a bare '&', as in a URL's query string, must be written '&amp;')"
            if _BARE_AMPERSAND.search(source)
            else ""
        )
        raise XmlError(f"answer XML is not well-formed: {exc}{hint}") from exc
    except DefusedXmlException as exc:
        raise XmlError(
            f"answer XML refused ({type(exc).__name__}): entity declarations and external "
            "references are not accepted"
        ) from exc
    except (ValueError, LookupError) as exc:
        # Text that cannot be decoded: a lone surrogate, an unknown or multi-byte encoding.
        raise XmlError(f"answer XML cannot be decoded: {exc}") from exc


def _read_verb(element: ElementTree.Element) -> Verb:
    reader = _READERS.get(element.tag)
    if reader is None:
        return UnknownVerb(element.tag, tuple(element.attrib.items()), _text_of(element))
    return reader(_Element(element))


def _text_of(element: ElementTree.Element) -> str:
    return (element.text or "").strip()


class _Element:
    """A verb element being read: typed attribute access that remembers which names were asked
    for, so whatever is left over can be reported as ignored."""

    def __init__(self, element: ElementTree.Element) -> None:
        self._element = element
        self._asked: list[str] = []

    @property
    def text(self) -> str:
        return _text_of(self._element)

    def string(self, name: str) -> str | None:
        self._asked.append(name)
        return self._element.get(name)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.string(name)
        if raw is None:
            return default
        word = raw.strip().lower()
        if word not in ("true", "false"):
            raise XmlError(f"<{self._element.tag}> {name}={_shown(raw)} must be true or false")
        return word == "true"

    def integer(self, name: str, default: _T) -> int | _T:
        raw = self.string(name)
        if raw is None:
            return default
        if not _WHOLE_NUMBER.fullmatch(raw):
            raise XmlError(f"<{self._element.tag}> {name}={_shown(raw)} is not a whole number")
        return int(raw)

    def choice(self, name: str, default: _E) -> _E:
        """One of the members of ``default``'s enum, read case-insensitively."""
        raw = self.string(name)
        if raw is None:
            return default
        members = {member.value.lower(): member for member in type(default)}
        member = members.get(raw.strip().lower())
        if member is None:
            allowed = ", ".join(repr(value) for value in members.values())
            raise XmlError(f"<{self._element.tag}> {name}={_shown(raw)} must be one of {allowed}")
        return member

    def ignored(self) -> tuple[str, ...]:
        """Attributes never asked for and child elements; call after every read."""
        found: list[str] = []
        unasked = [name for name in self._element.attrib if name not in self._asked]
        for name in unasked[:SHOWN_ITEMS]:
            match = _case_insensitive_match(name, self._asked)
            hint = f" (names are case-sensitive: did you mean {match}?)" if match else ""
            value = self._element.attrib[name]
            found.append(f"attribute {loggable(name, SHOWN_CHARS)}={_shown(value)}{hint}")
        if len(unasked) > SHOWN_ITEMS:
            found.append(f"{len(unasked) - SHOWN_ITEMS} more attributes")
        children = list(self._element)
        found.extend(
            f"child element <{loggable(str(child.tag), SHOWN_CHARS)}>"
            for child in children[:SHOWN_ITEMS]
        )
        if len(children) > SHOWN_ITEMS:
            found.append(f"{len(children) - SHOWN_ITEMS} more child elements")
        return tuple(found)


def _read_stream(element: _Element) -> Stream:
    defaults = _STREAM_DEFAULTS
    content_type = element.string("contentType")
    extra_headers = element.string("extraHeaders")
    return Stream(
        url=element.text,
        bidirectional=element.boolean("bidirectional", defaults.bidirectional),
        audio_track=element.choice("audioTrack", defaults.audio_track),
        stream_timeout=element.integer("streamTimeout", defaults.stream_timeout),
        status_callback_url=element.string("statusCallbackUrl"),
        status_callback_method=element.choice(
            "statusCallbackMethod", defaults.status_callback_method
        ),
        content_type=(
            defaults.content_type if content_type is None else _read_content_type(content_type)
        ),
        extra_headers=() if extra_headers is None else parse_extra_headers(extra_headers),
        keep_call_alive=element.boolean("keepCallAlive", defaults.keep_call_alive),
        max_retries=element.integer("maxRetries", defaults.max_retries),
        ignored=element.ignored(),  # keyword arguments run in order: every read is done
    )


def _read_content_type(raw: str) -> AudioFormat:
    try:
        return parse_content_type(raw)
    except AudioError as exc:
        raise XmlError(f"<Stream> contentType={_shown(raw)}: {exc}") from exc


def parse_extra_headers(raw: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key=value`` into :attr:`Stream.extra_headers` pairs, in order.

    Whitespace around keys and values is dropped; an item without ``=`` raises :class:`XmlError`.
    The other rules (empty keys, ``=`` in a value, the size limit) are :func:`validate`'s.
    """
    if not raw.strip():
        return ()
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        key, equals, value = item.partition("=")
        if not equals:
            raise XmlError(
                f"<Stream> extraHeaders={_shown(raw)}: item {_shown(item)} is not key=value "
                "(the format is key=value,key=value)"
            )
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _read_speak(element: _Element) -> Speak:
    return Speak(
        element.text,
        voice=element.string("voice"),
        language=element.string("language"),
        ignored=element.ignored(),
    )


def _read_dial(element: _Element) -> Dial:
    return Dial(
        element.text,
        caller_id=element.string("callerId"),
        timeout=element.integer("timeout", None),
        ignored=element.ignored(),
    )


def _read_hangup(element: _Element) -> Hangup:
    return Hangup(element.string("reason"), ignored=element.ignored())


def _read_play(element: _Element) -> Play:
    return Play(element.text, loop=element.integer("loop", None), ignored=element.ignored())


def _read_wait(element: _Element) -> Wait:
    return Wait(element.integer("length", Wait().length), ignored=element.ignored())


_READERS: dict[str, Callable[[_Element], Verb]] = {
    Stream.TAG: _read_stream,
    Speak.TAG: _read_speak,
    Dial.TAG: _read_dial,
    Hangup.TAG: _read_hangup,
    Play.TAG: _read_play,
    Wait.TAG: _read_wait,
}
