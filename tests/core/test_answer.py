"""Answer XML: the seeds' documents, the builder read back by an independent parser, every
``<Stream>`` rule, escaping, the round trip and malformed input."""

from __future__ import annotations

import contextlib
from xml.dom import minidom

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.core.answer import (
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
    answer_xml,
    parse_extra_headers,
    parse_response,
    render,
    validate,
)
from vobiz_stream.errors import XmlError
from vobiz_stream.formats import INBOUND_RATES, AudioFormat, Encoding

# --- the seeds' own documents ----------------------------------------------------------------

SEED_000_STREAM = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Stream
bidirectional="false"
audioTrack="inbound"
streamTimeout="7200">
wss://stream.vobiz.ai/stream
</Stream>
</Response>"""

SEED_000_STREAM_BETWEEN_VERBS = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
<Speak>This call is being recorded for quality assurance.</Speak>
<Stream
bidirectional="false"
audioTrack="both"
streamTimeout="3600"
statusCallbackUrl="https://api.vobiz.ai/stream-status"
statusCallbackMethod="POST"
contentType="audio/x-l16;rate=16000"
extraHeaders="session_id=abc123,agent_id=john">
wss://stream.vobiz.ai/stream
</Stream>
<Dial>+14155551234</Dial>
</Response>"""

SEED_001_BIDIRECTIONAL = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Stream
        bidirectional="true"
        keepCallAlive="true"
        contentType="audio/x-l16;rate=8000">
        wss://stream.vobiz.ai/stream
    </Stream>
</Response>"""

PROTOCOL_SECTION_1 = """<Response>
  <Stream bidirectional="true" audioTrack="inbound" keepCallAlive="true"
          contentType="audio/x-l16;rate=16000" streamTimeout="3600"
          statusCallbackUrl="https://app.example/webhook" statusCallbackMethod="POST"
          extraHeaders="sessionId=abc123,agentId=john" maxRetries="2">
    wss://app.example/stream?call=42&amp;lang=en
  </Stream>
</Response>"""

SEED_URL = "wss://stream.vobiz.ai/stream"
L16_8K = AudioFormat(Encoding.L16, 8000)
L16_16K = AudioFormat(Encoding.L16, 16000)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            SEED_000_STREAM,
            Response.of(Stream(SEED_URL, stream_timeout=7200)),
            id="seed-000-stream",
        ),
        pytest.param(
            SEED_000_STREAM_BETWEEN_VERBS,
            Response.of(
                Speak("This call is being recorded for quality assurance."),
                Stream(
                    SEED_URL,
                    audio_track=AudioTrack.BOTH,
                    stream_timeout=3600,
                    status_callback_url="https://api.vobiz.ai/stream-status",
                    status_callback_method=CallbackMethod.POST,
                    content_type=L16_16K,
                    extra_headers=(("session_id", "abc123"), ("agent_id", "john")),
                ),
                Dial("+14155551234"),
            ),
            id="seed-000-between-verbs",
        ),
        pytest.param(
            SEED_001_BIDIRECTIONAL,
            Response.of(Stream(SEED_URL, bidirectional=True, keep_call_alive=True)),
            id="seed-001-bidirectional",
        ),
        pytest.param(
            PROTOCOL_SECTION_1,
            Response.of(
                Stream(
                    "wss://app.example/stream?call=42&lang=en",
                    bidirectional=True,
                    keep_call_alive=True,
                    content_type=L16_16K,
                    stream_timeout=3600,
                    status_callback_url="https://app.example/webhook",
                    extra_headers=(("sessionId", "abc123"), ("agentId", "john")),
                    max_retries=2,
                )
            ),
            id="protocol-section-1",
        ),
    ],
)
def test_documented_examples_parse_into_their_objects(document: str, expected: Response) -> None:
    parsed = parse_response(document)
    assert parsed == expected
    assert parse_response(document.encode()) == expected
    assert parse_response(render(parsed)) == parsed


def test_only_the_trailing_one_way_stream_of_seed_000_ends_the_call() -> None:
    assert parse_response(SEED_000_STREAM).ends_immediately
    assert not parse_response(SEED_000_STREAM_BETWEEN_VERBS).ends_immediately
    assert not parse_response(SEED_001_BIDIRECTIONAL).ends_immediately
    assert not parse_response(PROTOCOL_SECTION_1).ends_immediately


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("audio/l16", L16_8K),  # seed 002's spelling
        ("audio/x-mulaw;rate=8000", AudioFormat(Encoding.MULAW, 8000)),
        ("audio/x-l16; rate=16000", L16_16K),
        ("AUDIO/X-MULAW", AudioFormat(Encoding.MULAW, 8000)),
        ("linear16;rate=16000", L16_16K),
    ],
)
def test_content_type_is_read_loosely(content_type: str, expected: AudioFormat) -> None:
    document = f'<Response><Stream contentType="{content_type}">wss://a.example</Stream></Response>'
    assert parse_response(document).streams[0].content_type == expected


# --- the builder, read back by an independent parser ----------------------------------------


def _elements(document: str) -> list[minidom.Element]:
    """The verb elements of ``document``, read by the stdlib's DOM parser (no defusedxml)."""
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = minidom.parseString(document.encode()).documentElement
    assert root is not None
    assert root.tagName == "Response"
    return [node for node in root.childNodes if isinstance(node, minidom.Element)]


def _attributes(element: minidom.Element) -> dict[str, str]:
    return dict(element.attributes.items())


def _text(element: minidom.Element) -> str:
    return "".join(node.data for node in element.childNodes if isinstance(node, minidom.Text))


def test_a_stream_with_every_attribute_is_written_with_vobiz_spelling() -> None:
    stream = Stream(
        "wss://app.example/stream?call=42&lang=en",
        bidirectional=True,
        keep_call_alive=True,
        stream_timeout=3600,
        status_callback_url="https://app.example/webhook",
        status_callback_method=CallbackMethod.GET,
        content_type=AudioFormat(Encoding.MULAW, 8000),
        extra_headers=(("sessionId", "abc123"), ("agentId", "john")),
        max_retries=2,
    )
    (element,) = _elements(answer_xml(stream))
    assert element.tagName == "Stream"
    assert _attributes(element) == {
        "bidirectional": "true",
        "audioTrack": "inbound",
        "streamTimeout": "3600",
        "statusCallbackUrl": "https://app.example/webhook",
        "statusCallbackMethod": "GET",
        "contentType": "audio/x-mulaw;rate=8000",
        "extraHeaders": "sessionId=abc123,agentId=john",
        "keepCallAlive": "true",
        "maxRetries": "2",
    }
    assert _text(element) == "wss://app.example/stream?call=42&lang=en"


def test_a_default_stream_writes_only_what_decides_the_socket() -> None:
    (element,) = _elements(answer_xml(Stream("wss://a.example/s")))
    assert _attributes(element) == {
        "bidirectional": "false",
        "audioTrack": "inbound",
        "contentType": "audio/x-l16;rate=8000",
    }
    assert "url" not in _attributes(element)
    assert _text(element) == "wss://a.example/s"


def test_the_other_verbs_are_written_with_their_attributes() -> None:
    document = answer_xml(
        Speak("Hello", voice="WOMAN", language="en-US"),
        Dial("+14155551234", caller_id="+14155550000", timeout=20),
        Play("https://cdn.example/a.mp3", loop=2),
        Wait(5),
        Hangup("busy"),
        UnknownVerb("GetDigits", (("action", "https://app.example/d"),), "Press 1"),
    )
    written = [
        (element.tagName, _attributes(element), _text(element)) for element in _elements(document)
    ]
    assert written == [
        ("Speak", {"voice": "WOMAN", "language": "en-US"}, "Hello"),
        ("Dial", {"callerId": "+14155550000", "timeout": "20"}, "+14155551234"),
        ("Play", {"loop": "2"}, "https://cdn.example/a.mp3"),
        ("Wait", {"length": "5"}, ""),
        ("Hangup", {"reason": "busy"}, ""),
        ("GetDigits", {"action": "https://app.example/d"}, "Press 1"),
    ]


def test_unset_optional_attributes_are_not_written() -> None:
    elements = _elements(answer_xml(Speak("Hi"), Dial("+1"), Play("https://a.example/x"), Hangup()))
    assert [_attributes(element) for element in elements] == [{}, {}, {}, {}]


def test_an_empty_response_is_a_response() -> None:
    assert _elements(render(Response())) == []
    assert parse_response(render(Response())) == Response()


# --- escaping -------------------------------------------------------------------------------


def test_an_ampersand_in_the_url_is_escaped() -> None:
    url = "wss://app.example/stream?call=42&lang=en&x=<y>"
    document = answer_xml(Stream(url))
    assert "call=42&amp;lang=en&amp;x=&lt;y&gt;" in document
    assert "&lang" not in document
    (element,) = _elements(document)
    assert _text(element) == url


def test_quotes_angle_brackets_and_ampersands_in_attributes_are_escaped() -> None:
    callback = 'https://cb.example/hook?a=1&b="two"&c=<3>'
    voice = 'it\'s "<&>"'
    document = answer_xml(
        Speak("a < b & c", voice=voice),
        Stream("wss://a.example/s", status_callback_url=callback),
    )
    assert 'statusCallbackUrl="https://cb.example/hook?a=1&amp;b=&quot;two&quot;&amp;c=&lt;3' in (
        document
    )
    assert "a &lt; b &amp; c" in document
    speak, stream = _elements(document)
    assert _attributes(speak)["voice"] == voice
    assert _text(speak) == "a < b & c"
    assert _attributes(stream)["statusCallbackUrl"] == callback


def test_a_bare_ampersand_in_the_url_is_malformed_and_says_how_to_write_it() -> None:
    document = "<Response>\n  <Stream>wss://a.example/s?x=1&y=2</Stream>\n</Response>"
    with pytest.raises(XmlError, match=r"line 2, column \d+") as caught:
        parse_response(document)
    assert "'&amp;'" in str(caught.value)


# --- validation: every rule, by object and by document ---------------------------------------

URL = "wss://a.example/stream"


@pytest.mark.parametrize(
    ("verb", "fragments"),
    [
        pytest.param(
            Stream(URL, bidirectional=True, audio_track=AudioTrack.BOTH),
            ["audioTrack='both'", "bidirectional='true'", "hangs up", "'inbound'"],
            id="bidirectional-both",
        ),
        pytest.param(
            Stream(URL, bidirectional=True, audio_track=AudioTrack.OUTBOUND),
            ["audioTrack='outbound'", "bidirectional='true'"],
            id="bidirectional-outbound",
        ),
        pytest.param(
            Stream(URL, keep_call_alive=True),
            ["keepCallAlive='true'", "needs bidirectional='true'"],
            id="keep-alive-one-way",
        ),
        pytest.param(
            Stream(URL, content_type=AudioFormat(Encoding.L16, 24000)),
            ["contentType='audio/x-l16;rate=24000'", "rate=24000 is usable only outbound"],
            id="content-type-24k",
        ),
        pytest.param(
            Stream(URL, content_type=AudioFormat(Encoding.MULAW, 16000)),
            [
                "contentType='audio/x-mulaw;rate=16000'",
                "audio/x-l16;rate=8000, audio/x-l16;rate=16000, audio/x-mulaw;rate=8000",
            ],
            id="content-type-mulaw-16k",
        ),
        pytest.param(
            Stream(URL, stream_timeout=0),
            ["streamTimeout=0", "positive whole number"],
            id="timeout-zero",
        ),
        pytest.param(
            Stream(URL, stream_timeout=-5), ["streamTimeout=-5", "positive"], id="timeout-negative"
        ),
        pytest.param(Stream(URL, max_retries=11), ["maxRetries=11", "0 to 10"], id="retries-11"),
        pytest.param(Stream(URL, max_retries=-1), ["maxRetries=-1", "0 to 10"], id="retries-neg"),
        pytest.param(
            # bool is an int to Python and to mypy, but would be written "True".
            Stream(URL, max_retries=True),
            ["maxRetries=True", "whole number"],
            id="retries-bool",
        ),
        pytest.param(
            Stream(URL, extra_headers=(("", "x"),)),
            ["extraHeaders has an empty key"],
            id="header-empty-key",
        ),
        pytest.param(
            Stream(URL, extra_headers=(("a=b", "x"),)),
            ["extraHeaders key 'a=b'", "'=' or ','"],
            id="header-equals-in-key",
        ),
        pytest.param(
            Stream(URL, extra_headers=(("a", "x,y"),)),
            ["extraHeaders value 'x,y'", "'=' or ','"],
            id="header-comma-in-value",
        ),
        pytest.param(
            Stream(URL, extra_headers=(("a", " x"),)),
            ["extraHeaders value ' x'", "surrounding whitespace"],
            id="header-whitespace",
        ),
        pytest.param(
            # 258 characters but 513 bytes: the limit counts bytes.
            Stream(URL, extra_headers=(("k", "é" * 255 + "x"),)),
            ["extraHeaders is 513 bytes", "at most 512"],
            id="headers-too-long",
        ),
        pytest.param(Stream(""), ["has no URL", "not a url= attribute"], id="url-missing"),
        pytest.param(
            Stream("https://a.example/s"),
            ["URL 'https://a.example/s'", "ws:// or wss://"],
            id="url-https",
        ),
        pytest.param(Stream("wss:///path"), ["URL 'wss:///path'", "no host"], id="url-no-host"),
        pytest.param(
            Stream("wss://a.example/a b"), ["whitespace or a control"], id="url-whitespace"
        ),
        pytest.param(Stream("wss://[::1/s"), ["cannot be parsed"], id="url-unparseable"),
        pytest.param(Stream("wss://a.example:99999/s"), ["cannot be parsed"], id="url-port"),
        pytest.param(
            Stream(URL, status_callback_url="ftp://cb.example/x"),
            ["statusCallbackUrl 'ftp://cb.example/x'", "http:// or https://"],
            id="callback-scheme",
        ),
        pytest.param(
            Stream(URL, status_callback_url="https://"),
            ["statusCallbackUrl 'https://'", "no host"],
            id="callback-no-host",
        ),
        pytest.param(Wait(0), ["<Wait> length=0", "positive"], id="wait-zero"),
        pytest.param(Dial("+1", timeout=0), ["<Dial> timeout=0", "positive"], id="dial-timeout"),
        pytest.param(Play("https://a.example/x", loop=-1), ["<Play> loop=-1"], id="play-loop"),
        pytest.param(Speak("a\x00b"), ["character XML cannot carry"], id="illegal-char"),
        pytest.param(
            Speak("a", voice="\x1b"), ["voice='\\x1b'", "character XML"], id="illegal-attr"
        ),
        pytest.param(UnknownVerb("Stream"), ["is a verb this module models"], id="unknown-known"),
        pytest.param(UnknownVerb("1st"), ["'1st' is not a usable XML name"], id="bad-tag"),
        pytest.param(
            UnknownVerb("X", (("a b", "1"),)), ["'a b' is not a usable XML name"], id="bad-attr"
        ),
        pytest.param(
            UnknownVerb("X", (("a", "1"), ("a", "2"))), ["attribute name twice"], id="dup-attr"
        ),
        pytest.param(
            # would redeclare the default namespace instead of carrying a value
            UnknownVerb("X", (("xmlns", "urn:x"),)),
            ["'xmlns' is not a usable XML name"],
            id="xmlns-attr",
        ),
    ],
)
def test_every_rule_is_enforced_with_a_message_naming_it(verb: Verb, fragments: list[str]) -> None:
    for check in (validate, lambda verb: render(Response.of(verb))):
        with pytest.raises(XmlError) as caught:
            check(verb)
        for fragment in fragments:
            assert fragment in str(caught.value)


def test_every_broken_rule_is_reported_at_once() -> None:
    stream = Stream("http://a.example", keep_call_alive=True, stream_timeout=0, max_retries=99)
    with pytest.raises(XmlError) as caught:
        validate(Response.of(Wait(-1), stream))
    message = str(caught.value)
    for fragment in ("<Wait> length=-1", "ws:// or wss://", "keepCallAlive", "streamTimeout=0"):
        assert fragment in message
    assert "maxRetries=99" in message


def test_valid_verbs_pass_validation() -> None:
    validate(Stream(URL, bidirectional=True, keep_call_alive=True, max_retries=10))
    validate(Stream(URL, audio_track=AudioTrack.BOTH, content_type=L16_16K))
    validate(Stream(URL, extra_headers=(("k", "x" * 510),)))  # exactly 512 bytes


def _stream_document(attributes: str, url: str = URL) -> str:
    return f"<Response><Stream {attributes}>{url}</Stream></Response>"


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        (
            _stream_document('bidirectional="true" audioTrack="both"'),
            ["audioTrack='both'", "hangs up"],
        ),
        (_stream_document('keepCallAlive="true"'), ["keepCallAlive='true'", "bidirectional"]),
        (_stream_document('contentType="audio/x-l16;rate=24000"'), ["usable only outbound"]),
        (_stream_document('contentType="audio/opus"'), ["contentType='audio/opus'", "unknown"]),
        (_stream_document('contentType="audio/x-l16;rate=fast"'), ["contentType=", "number"]),
        (_stream_document('streamTimeout="0"'), ["streamTimeout=0", "positive"]),
        (_stream_document('streamTimeout="abc"'), ["streamTimeout='abc'", "not a whole number"]),
        (_stream_document('streamTimeout="1.5"'), ["streamTimeout='1.5'", "not a whole number"]),
        (_stream_document('maxRetries="11"'), ["maxRetries=11", "0 to 10"]),
        (_stream_document('maxRetries="two"'), ["maxRetries='two'", "not a whole number"]),
        (_stream_document('bidirectional="yes"'), ["bidirectional='yes'", "true or false"]),
        (_stream_document('keepCallAlive="1"'), ["keepCallAlive='1'", "true or false"]),
        (_stream_document('audioTrack="left"'), ["audioTrack='left'", "'inbound'", "'both'"]),
        (_stream_document('statusCallbackMethod="PUT"'), ["statusCallbackMethod='PUT'", "'GET'"]),
        (_stream_document('statusCallbackUrl="ftp://x"'), ["statusCallbackUrl", "https://"]),
        (_stream_document('extraHeaders="sessionId"'), ["item 'sessionId' is not key=value"]),
        (_stream_document('extraHeaders="a=1,"'), ["item '' is not key=value"]),
        (_stream_document('extraHeaders="a=b=c"'), ["extraHeaders value 'b=c'"]),
        (_stream_document('extraHeaders="=x"'), ["empty key"]),
        (_stream_document(f'extraHeaders="k={"v" * 511}"'), ["513 bytes", "at most 512"]),
        (_stream_document("", url="  "), ["has no URL"]),
        (_stream_document('url="wss://a.example"', url=""), ["not a url= attribute"]),
        (_stream_document("", url="https://a.example"), ["ws:// or wss://"]),
        ('<Response><Wait length="ten"/></Response>', ["<Wait> length='ten'", "whole number"]),
        ('<Response><Dial timeout="-3">+1</Dial></Response>', ["<Dial> timeout=-3"]),
        ('<Response><Play loop="x">https://a.example</Play></Response>', ["<Play> loop='x'"]),
    ],
)
def test_parsing_enforces_every_rule(document: str, fragments: list[str]) -> None:
    with pytest.raises(XmlError) as caught:
        parse_response(document)
    for fragment in fragments:
        assert fragment in str(caught.value)


# --- malformed and hostile documents ---------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Response><Speak>&lol3;</Speak></Response>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Response><Speak>&secret;</Speak></Response>"""


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ("", ["not well-formed", "line 1, column 0"]),
        ("<Response><Stream>wss://a.example</Response>", ["not well-formed", "mismatched tag"]),
        ("<Stream>wss://a.example</Stream>", ["root element is <Stream>", "<Response>"]),
        ("<response/>", ["root element is <response>"]),
        (BILLION_LAUGHS, ["refused", "EntitiesForbidden"]),
        (EXTERNAL_ENTITY, ["refused", "EntitiesForbidden"]),
        (b'<?xml version="1.0" encoding="no-such"?><Response/>', ["cannot be decoded"]),
        ("<Response>\ud800</Response>", ["cannot be decoded"]),
        (b"<Response>\xff</Response>", ["not well-formed"]),
    ],
)
def test_malformed_and_hostile_documents_raise_xml_error(
    document: str | bytes, fragments: list[str]
) -> None:
    with pytest.raises(XmlError) as caught:
        parse_response(document)
    for fragment in fragments:
        assert fragment in str(caught.value)


# --- tolerance and warnings -----------------------------------------------------------------


def test_whitespace_around_the_url_and_boolean_case_are_tolerated() -> None:
    document = _stream_document(
        'bidirectional="TRUE" keepCallAlive="True"', url="\n\t  wss://a.b \n"
    )
    assert parse_response(document) == Response.of(
        Stream("wss://a.b", bidirectional=True, keep_call_alive=True)
    )


def test_whitespace_around_extra_header_keys_and_values_is_dropped() -> None:
    document = _stream_document('extraHeaders=" sessionId = abc123 , agentId=john "')
    (stream,) = parse_response(document).streams
    assert stream.extra_headers == (("sessionId", "abc123"), ("agentId", "john"))
    assert 'extraHeaders="sessionId=abc123,agentId=john"' in answer_xml(stream)
    assert parse_extra_headers(" sessionId = abc123 , agentId=john ") == stream.extra_headers
    assert parse_extra_headers("  ") == ()


def test_unknown_verbs_are_kept_with_their_attributes_and_text() -> None:
    document = (
        '<Response><GetDigits action="https://a.example/d" numDigits="1"> Press 1 <Speak/>'
        "</GetDigits><Wait/></Response>"
    )
    response = parse_response(document)
    assert response == Response.of(
        UnknownVerb(
            "GetDigits", (("action", "https://a.example/d"), ("numDigits", "1")), "Press 1"
        ),
        Wait(1),
    )
    assert response.warnings == ("verb 1 <GetDigits> is not modelled; kept as UnknownVerb",)


def test_unknown_attributes_and_children_are_ignored_and_reported() -> None:
    document = _stream_document('audiotrack="both" url="wss://elsewhere" foo="1"', url=URL + "<x/>")
    response = parse_response(document)
    assert response == Response.of(Stream(URL))
    warnings = "\n".join(response.warnings)
    hint = "(names are case-sensitive: did you mean audioTrack?)"
    assert f"ignored attribute audiotrack='both' {hint}" in warnings
    assert "ignored attribute url='wss://elsewhere'" in warnings
    assert "ignored attribute foo='1'" in warnings
    assert "ignored child element <x>" in warnings


def test_a_verb_name_in_the_wrong_case_is_pointed_out() -> None:
    response = parse_response("<Response><stream>wss://a.example</stream></Response>")
    assert response.streams == ()
    assert "did you mean <Stream>?" in response.warnings[0]


@pytest.mark.parametrize(
    ("verbs", "ends"),
    [
        ((Stream(URL),), True),
        ((Stream(URL, bidirectional=True),), True),
        ((Stream(URL, bidirectional=True, keep_call_alive=True),), False),
        ((Stream(URL), Wait(10)), False),
        ((Stream(URL, bidirectional=True, keep_call_alive=True), Stream(URL)), True),
        ((Speak("hi"),), False),
        ((), False),
    ],
)
def test_ends_immediately_flags_a_trailing_stream_that_does_not_hold(
    verbs: tuple[Verb, ...], ends: bool
) -> None:
    response = Response(verbs)
    assert response.ends_immediately is ends
    assert any("hangs up as soon as the stream starts" in w for w in response.warnings) is ends
    assert parse_response(render(response)).ends_immediately is ends  # legal either way


def test_streams_lists_the_stream_verbs_in_order() -> None:
    first, second = Stream(URL), Stream(URL + "/2", bidirectional=True)
    assert Response.of(first, Speak("x"), second).streams == (first, second)


# --- properties -----------------------------------------------------------------------------

_XML_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"))
# Element text: parsing strips surrounding whitespace and XML turns line ends into "\n".
_TEXT = st.text(_XML_CHARACTERS, max_size=30).map(str.strip)
# Attribute values keep every character, escaped where needed.
_ATTRIBUTE = st.text(_XML_CHARACTERS | st.sampled_from("\t\n\r"), max_size=20)
_QUERY_PART = st.text(st.sampled_from("abcXYZ019-_.~%<>\"';:/?@!$*+&="), min_size=1, max_size=8)
_HOST = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6}){0,2}", fullmatch=True)
_PATH = st.from_regex(r"(/[A-Za-z0-9._~-]{0,8}){0,3}", fullmatch=True)
_PORT = st.none() | st.integers(1, 65535)


def _url(schemes: list[str]) -> st.SearchStrategy[str]:
    def build(scheme: str, host: str, port: int | None, path: str, query: list[str]) -> str:
        netloc = host if port is None else f"{host}:{port}"
        return f"{scheme}://{netloc}{path}" + ("?" + "&".join(query) if query else "")

    return st.builds(
        build, st.sampled_from(schemes), _HOST, _PORT, _PATH, st.lists(_QUERY_PART, max_size=4)
    )


_HEADERS = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
        st.text(
            st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters=",="),
            max_size=15,
        ).map(str.strip),
    ),
    max_size=6,
).map(tuple)
_INBOUND_FORMATS = [AudioFormat(e, rate) for e, rates in INBOUND_RATES.items() for rate in rates]


@st.composite
def _streams(draw: st.DrawFn) -> Stream:
    bidirectional = draw(st.booleans())
    return Stream(
        draw(_url(["ws", "wss"])),
        bidirectional=bidirectional,
        audio_track=AudioTrack.INBOUND if bidirectional else draw(st.sampled_from(AudioTrack)),
        keep_call_alive=bidirectional and draw(st.booleans()),
        stream_timeout=draw(st.integers(1, 10**7)),
        status_callback_url=draw(st.none() | _url(["http", "https"])),
        status_callback_method=draw(st.sampled_from(CallbackMethod)),
        content_type=draw(st.sampled_from(_INBOUND_FORMATS)),
        extra_headers=draw(_HEADERS),
        max_retries=draw(st.integers(0, 10)),
    )


_OPTIONAL = st.none() | _ATTRIBUTE
_UNKNOWN_TAGS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda tag: tag not in {"Stream", "Speak", "Dial", "Hangup", "Play", "Wait"}
)
_VERBS: st.SearchStrategy[Verb] = st.one_of(
    _streams(),
    st.builds(Speak, _TEXT, voice=_OPTIONAL, language=_OPTIONAL),
    st.builds(Dial, _TEXT, caller_id=_OPTIONAL, timeout=st.none() | st.integers(1, 600)),
    st.builds(Hangup, _OPTIONAL),
    st.builds(Play, _TEXT, loop=st.none() | st.integers(0, 100)),
    st.builds(Wait, st.integers(1, 3600)),
    st.builds(
        UnknownVerb,
        _UNKNOWN_TAGS,
        st.dictionaries(st.from_regex(r"[a-z][A-Za-z0-9]{0,8}", fullmatch=True), _ATTRIBUTE).map(
            lambda attributes: tuple(attributes.items())
        ),
        _TEXT,
    ),
)
_RESPONSES = st.lists(_VERBS, max_size=5).map(lambda verbs: Response(tuple(verbs)))


@given(_RESPONSES)
def test_parse_inverts_render(response: Response) -> None:
    document = render(response)
    assert parse_response(document) == response
    assert parse_response(document.encode()) == response


@given(_streams())
def test_an_independent_parser_reads_every_stream_attribute(stream: Stream) -> None:
    (element,) = _elements(answer_xml(stream))
    attributes = _attributes(element)
    assert _text(element) == stream.url
    assert attributes["bidirectional"] == str(stream.bidirectional).lower()
    assert attributes["audioTrack"] == stream.audio_track.value
    assert attributes["contentType"] == (
        f"{stream.content_type.encoding.value};rate={stream.content_type.sample_rate}"
    )
    assert attributes.get("keepCallAlive", "false") == str(stream.keep_call_alive).lower()
    assert int(attributes.get("streamTimeout", "86400")) == stream.stream_timeout
    assert int(attributes.get("maxRetries", "0")) == stream.max_retries
    assert attributes.get("statusCallbackUrl") == stream.status_callback_url
    assert attributes.get("statusCallbackMethod", "POST") == stream.status_callback_method.value
    headers = attributes.get("extraHeaders")
    pairs = [] if headers is None else [item.split("=") for item in headers.split(",")]
    assert [tuple(pair) for pair in pairs] == list(stream.extra_headers)


def _parses_or_raises_xml_error(document: str | bytes) -> None:
    with contextlib.suppress(XmlError):
        parse_response(document)


@given(st.text() | st.binary())
def test_random_input_raises_only_xml_error(document: str | bytes) -> None:
    _parses_or_raises_xml_error(document)


@given(st.text(st.sampled_from("<>/=\"'&;#! \nResponsStreamWaitx:[]DOCTYPENTITY0123456789")))
def test_xml_like_noise_raises_only_xml_error(document: str) -> None:
    _parses_or_raises_xml_error(document)


@given(_RESPONSES, st.data())
def test_damaged_documents_raise_only_xml_error(response: Response, data: st.DataObject) -> None:
    document = render(response)
    start = data.draw(st.integers(0, len(document)))
    end = data.draw(st.integers(start, min(len(document), start + 12)))
    patch = data.draw(st.text(max_size=6) | st.sampled_from(["&", "<", '"', "</Stream>", 'x="']))
    _parses_or_raises_xml_error(document[:start] + patch + document[end:])
