"""The rules answer XML must keep (the ``<Stream>`` rules, ranges, what XML can carry)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from vobiz_stream.core.answer_writing import encode_verb, extra_headers_text
from vobiz_stream.core.verbs import (
    MAX_EXTRA_HEADERS_BYTES,
    MAX_RETRIES,
    MODELLED_TAGS,
    AudioTrack,
    Dial,
    Play,
    Response,
    Stream,
    UnknownVerb,
    Verb,
    Wait,
    shown,
)
from vobiz_stream.errors import XmlError
from vobiz_stream.formats import (
    INBOUND_RATES,
    AudioFormat,
    Encoding,
)

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


def _problems(verb: Verb) -> list[str]:
    tag, attributes, text = encode_verb(verb)
    problems = _stream_problems(verb) if isinstance(verb, Stream) else _other_problems(verb)
    for name, value in [(tag, None), *attributes.items()]:
        if not _XML_NAME.fullmatch(name) or name == "xmlns":
            problems.append(f"<{tag}> name {shown(name)} is not a usable XML name")
        if value is not None and _XML_ILLEGAL_CHARACTER.search(value):
            problems.append(f"<{tag}> {name}={shown(value)} holds a character XML cannot carry")
    if _XML_ILLEGAL_CHARACTER.search(text):
        problems.append(f"<{tag}> text {shown(text)} holds a character XML cannot carry")
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
        return [f"{what} {shown(url)} contains whitespace or a control character"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return [f"{what} {shown(url)} cannot be parsed: {exc}"]
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts.scheme not in schemes:
        return [f"{what} {shown(url)} must start with {wanted}"]
    if not parts.hostname:
        return [f"{what} {shown(url)} names no host"]
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
            problems.append(f"<Stream> extraHeaders has an empty key (value {shown(value)})")
        for part, role in ((key, "key"), (value, "value")):
            if "=" in part or "," in part:
                problems.append(
                    f"<Stream> extraHeaders {role} {shown(part)} contains '=' or ',', which the "
                    "key=value,key=value format cannot carry"
                )
            elif part != part.strip():
                problems.append(
                    f"<Stream> extraHeaders {role} {shown(part)} has surrounding whitespace, "
                    "which "
                    "the key=value,key=value format does not keep"
                )
    # surrogatepass: a lone surrogate (an undecodable byte of an environment variable) is
    # counted here and refused as invalid XML text below, not raised as UnicodeEncodeError.
    size = len(extra_headers_text(headers).encode("utf-8", "surrogatepass"))
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
        if verb.tag in MODELLED_TAGS:
            return [f"UnknownVerb tag {verb.tag!r} is a verb this module models; use {verb.tag}"]
        if len(dict(verb.attributes)) < len(verb.attributes):
            return [f"UnknownVerb <{verb.tag}> has an attribute name twice"]
    return []
