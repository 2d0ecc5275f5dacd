"""The carrier profiles and the local carrier's request shapes, without I/O."""

from __future__ import annotations

import orjson
import pytest

from vobiz_stream.audio import ByteOrder
from vobiz_stream.emulator import CallOptions, CarrierProfile
from vobiz_stream.emulator.profiles import undocumented_play_audio
from vobiz_stream.emulator.rest.shapes import (
    ApiError,
    list_body,
    parse_digits,
    parse_page,
    parse_place_call,
    parse_stream_request,
)
from vobiz_stream.emulator.source import EmulatorError


def test_a_profile_by_name_and_what_it_means() -> None:
    assert CallOptions(carrier="strict").carrier is CarrierProfile.STRICT  # type: ignore[arg-type]
    with pytest.raises(EmulatorError, match="carrier must be one of live, documented, strict"):
        CallOptions(carrier="lenient")  # type: ignore[arg-type]
    live, documented = CallOptions(), CallOptions(carrier=CarrierProfile.DOCUMENTED)
    assert (live.caller_byte_order, documented.caller_byte_order) == (
        ByteOrder.LITTLE,
        ByteOrder.BIG,
    )
    forced = CallOptions(carrier=CarrierProfile.DOCUMENTED, l16_byte_order=ByteOrder.LITTLE)
    assert forced.caller_byte_order is ByteOrder.LITTLE
    assert [p.refuses_invalid for p in CarrierProfile] == [False, False, True]


def play_audio(**media: object) -> bytes:
    return orjson.dumps({"event": "playAudio", "streamId": "s", "media": {"payload": "", **media}})


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (play_audio(contentType="audio/x-l16", sampleRate=8000), None),
        (play_audio(contentType="audio/x-mulaw", sampleRate=8000), None),
        (play_audio(contentType="audio/x-l16;rate=8000", sampleRate=8000), "is not one of"),
        (play_audio(contentType="l16", sampleRate=8000), "is not one of"),
        (play_audio(contentType="audio/x-l16"), "sampleRate is missing"),
        (play_audio(contentType="audio/x-l16", sampleRate="8000"), "sampleRate is missing"),
        (play_audio(contentType="audio/x-l16", sampleRate=True), "sampleRate is missing"),
        (b"[]", "not a JSON object"),
    ],
)
def test_what_the_documents_call_a_playaudio(frame: bytes, problem: str | None) -> None:
    found = undocumented_play_audio(frame)
    assert found is None if problem is None else problem in (found or ""), found


def test_requests_are_read_field_by_field() -> None:
    placed = parse_place_call({"from": "+911", "to": "+912", "answer_url": "https://a/x"})
    assert placed.answer_method.value == "POST"
    with pytest.raises(ApiError, match="from is required"):
        parse_place_call({"to": "+912", "answer_url": "https://a/x"})
    with pytest.raises(ApiError, match="answer_method must be GET or POST, got PUT"):
        parse_place_call(
            {"from": "1", "to": "2", "answer_url": "https://a", "answer_method": "put"}
        )
    assert parse_digits({"digits": "12*#AD"}) == "12*#AD"
    with pytest.raises(ApiError, match="leg must be aleg"):
        parse_digits({"digits": "1", "leg": "bleg"})
    with pytest.raises(ApiError, match="digits must be 1 to 64"):
        parse_digits({"digits": "1" * 65})
    assert parse_page({}) == (20, 0)
    stream = parse_stream_request(
        {"service_url": "wss://a/s", "bidirectional": True, "stream_timeout": 60,
         "extra_headers": "a=1,b=2"}
    )  # fmt: skip
    assert (stream.bidirectional, stream.stream_timeout) == (True, 60)
    assert stream.extra_headers == (("a", "1"), ("b", "2"))
    with pytest.raises(ApiError) as bad:
        parse_stream_request({"service_url": "wss://a/s", "audio_track": "sideways"})
    assert "audio_track=" in bad.value.message and "audioTrack" not in bad.value.message


def test_a_page_links_its_neighbours() -> None:
    objects = [{"n": n} for n in range(45)]
    middle = list_body(objects, 20, 20, "/p")
    assert middle["objects"] == objects[20:40]
    assert middle["meta"] == {
        "count": 45, "limit": 20, "offset": 20,
        "next": "/p?limit=20&offset=40", "previous": "/p?limit=20&offset=0",
    }  # fmt: skip
    assert list_body(objects, 20, 40, "/p")["meta"]["next"] is None
