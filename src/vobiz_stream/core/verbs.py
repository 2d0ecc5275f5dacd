"""The verbs of answer XML as values: ``<Response>``, ``<Stream>`` and the verbs around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, TypeAlias

from vobiz_stream.formats import (
    DEFAULT_FORMAT,
    AudioFormat,
)
from vobiz_stream.logtext import loggable

MAX_RETRIES = 10
"""The most reconnects ``maxRetries`` may ask for."""

MAX_EXTRA_HEADERS_BYTES = 512
"""The most ``extraHeaders`` may hold, UTF-8 encoded."""


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
            tag = loggable(tag_of(verb), SHOWN_CHARS)
            if isinstance(verb, UnknownVerb):
                known = case_insensitive_match(tag, list(MODELLED_TAGS))
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


def tag_of(verb: Verb) -> str:
    return verb.tag if isinstance(verb, UnknownVerb) else verb.TAG


def case_insensitive_match(name: str, candidates: list[str]) -> str | None:
    """The candidate equal to ``name`` but for case, if ``name`` is not itself one."""
    if name in candidates:
        return None
    return next((each for each in candidates if each.lower() == name.lower()), None)


SHOWN_CHARS = 80
"""How much of a value from the answer XML an error message quotes: an app's 1 MB attribute must
not become a 2 MB error."""

SHOWN_ITEMS = 10
"""How many ignored attributes, child elements or warnings are named, the rest counted: a
document of 200 000 unknown elements must not make 200 000 lines of report."""


def shown(value: str) -> str:
    """``value`` quoted as ``repr`` quotes it (control characters escaped), cut to
    :data:`SHOWN_CHARS` characters with how many there were."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}…({len(value)} chars)"


MODELLED_TAGS = ("Stream", "Speak", "Dial", "Hangup", "Play", "Wait")
"""The verbs modelled here; any other element is kept as :class:`UnknownVerb`."""

STREAM_DEFAULTS = Stream(url="")
"""A ``<Stream>`` with every attribute at the carrier's default."""
