"""Reading answer XML into verbs, tolerant where the carrier is."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from vobiz_stream.core.answer_rules import validate
from vobiz_stream.core.verbs import (
    SHOWN_CHARS,
    SHOWN_ITEMS,
    STREAM_DEFAULTS,
    Dial,
    Hangup,
    Play,
    Response,
    Speak,
    Stream,
    UnknownVerb,
    Verb,
    Wait,
    case_insensitive_match,
    shown,
)
from vobiz_stream.errors import AudioError, XmlError
from vobiz_stream.formats import (
    AudioFormat,
    parse_content_type,
)
from vobiz_stream.logtext import loggable

_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


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
            raise XmlError(f"<{self._element.tag}> {name}={shown(raw)} must be true or false")
        return word == "true"

    def integer(self, name: str, default: _T) -> int | _T:
        raw = self.string(name)
        if raw is None:
            return default
        if not _WHOLE_NUMBER.fullmatch(raw):
            raise XmlError(f"<{self._element.tag}> {name}={shown(raw)} is not a whole number")
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
            raise XmlError(f"<{self._element.tag}> {name}={shown(raw)} must be one of {allowed}")
        return member

    def ignored(self) -> tuple[str, ...]:
        """Attributes never asked for and child elements; call after every read."""
        found: list[str] = []
        unasked = [name for name in self._element.attrib if name not in self._asked]
        for name in unasked[:SHOWN_ITEMS]:
            match = case_insensitive_match(name, self._asked)
            hint = f" (names are case-sensitive: did you mean {match}?)" if match else ""
            value = self._element.attrib[name]
            found.append(f"attribute {loggable(name, SHOWN_CHARS)}={shown(value)}{hint}")
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
    defaults = STREAM_DEFAULTS
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
        raise XmlError(f"<Stream> contentType={shown(raw)}: {exc}") from exc


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
                f"<Stream> extraHeaders={shown(raw)}: item {shown(item)} is not key=value "
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
