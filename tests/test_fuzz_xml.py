"""Short property runs (CI) beside fuzz/fuzz_xml.py: whatever text a setting or a caller puts into
the answer's ``<Stream>`` (URL query, callback URL, extraHeaders), the XML either round-trips it
exactly, escaped, or is refused with XmlError; it is never malformed and never raises otherwise."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.core.answer import Response, Stream, parse_response, render
from vobiz_stream.errors import XmlError

# Any character, lone surrogates included: controls, NUL, U+FFFE, quotes, & and <.
ANY_TEXT = st.text(max_size=24)


def round_trips_or_is_refused(stream: Stream) -> None:
    try:
        document = render(Response.of(stream))
    except XmlError:
        return
    assert parse_response(document).verbs == (stream,)
    assert parse_response(document.encode()).verbs == (stream,)


@given(ANY_TEXT)
def test_any_text_in_the_stream_url_query(text: str) -> None:
    round_trips_or_is_refused(Stream(f"wss://app.example/stream?call={text}&lang=en"))


@given(ANY_TEXT)
def test_any_call_id_percent_encoded_as_the_server_does_round_trips(text: str) -> None:
    url = f"wss://app.example/stream?call={quote(text, safe='')}&token=1.x"
    document = render(Response.of(Stream(url)))
    assert parse_response(document).streams[0].url == url
    assert "&amp;token=" in document


@given(ANY_TEXT)
def test_any_text_in_the_status_callback_url(text: str) -> None:
    round_trips_or_is_refused(
        Stream("wss://a.example/s", status_callback_url=f"https://a.example/hook?x={text}")
    )


@given(st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=4))
def test_any_text_in_extra_headers(pairs: list[tuple[str, str]]) -> None:
    round_trips_or_is_refused(Stream("wss://a.example/s", extra_headers=tuple(pairs)))


def test_a_lone_surrogate_in_extra_headers_is_refused_with_xml_error() -> None:
    with pytest.raises(XmlError):
        render(Response.of(Stream("wss://a.example/s", extra_headers=(("k", "v\udcff"),))))
