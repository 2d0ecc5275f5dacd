"""How each verb is written: its element name, attributes and text."""

from __future__ import annotations

from vobiz_stream.core.verbs import (
    STREAM_DEFAULTS,
    Dial,
    Hangup,
    Play,
    Speak,
    Stream,
    UnknownVerb,
    Verb,
    Wait,
)


def encode_verb(verb: Verb) -> tuple[str, dict[str, str], str]:
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
    defaults = STREAM_DEFAULTS
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
        attributes["extraHeaders"] = extra_headers_text(stream.extra_headers)
    if stream.keep_call_alive != defaults.keep_call_alive:
        attributes["keepCallAlive"] = _boolean_text(stream.keep_call_alive)
    if stream.max_retries != defaults.max_retries:
        attributes["maxRetries"] = str(stream.max_retries)
    return attributes


def _boolean_text(value: bool) -> str:
    return "true" if value else "false"


def extra_headers_text(headers: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{key}={value}" for key, value in headers)
