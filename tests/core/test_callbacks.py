"""Status callbacks: every event of PROTOCOL.md section 5 parses and nothing is rejected; signatures
match an HMAC written out here from hashlib, published and openssl-derived known answers; the log
file holds one JSON line per callback, readable before the log is closed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import string
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, MultiDict
from vobiz.utils import validate_signature, validate_v3_signature
from vobiz.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3

from vobiz_stream.app.webhooks import CallbackCounters, WebhookLog, one_line_json
from vobiz_stream.core.callbacks import (
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    MAX_QUERY_BYTES,
    CallbackError,
    SignatureCheck,
    StatusCallback,
    form_fields,
    format_utc,
    parse_status_callback,
    read_status_callback,
    sign_v2,
    sign_v3,
    verify_signature,
)
from vobiz_stream.core.nonces import NonceWindow
from vobiz_stream.core.signatures import sdk_v3_url

TOKEN = "MAUTHTOKEN0123456789"
URL = "https://app.example/webhook?call=42"
NONCE = "nonce-12345"

COMMON = {
    "CallUUID": "5401fd2e-aaaa-bbbb-cccc-000000000001",
    "StreamID": "c4dfd815-aaaa-bbbb-cccc-000000000002",
    "From": "+14155551111",
    "To": "+14155552222",
    "Timestamp": "2025-03-04 05:06:07",
    "ParentAuthID": "MA_PARENT",
    "Error": "",
}


# --- parsing ---------------------------------------------------------------------------------


def test_start_stream_with_every_common_field_and_extra_headers() -> None:
    fields = {
        **COMMON,
        "Event": "StartStream",
        "ServiceURL": "wss://app.example/stream?call=42",
        "X-VH-sessionId": "abc123",
        "X-VH-agentId": "john",
    }
    callback = parse_status_callback(fields)
    assert callback == StatusCallback(
        event="StartStream",
        call_uuid=COMMON["CallUUID"],
        stream_id=COMMON["StreamID"],
        from_number="+14155551111",
        to="+14155552222",
        timestamp="2025-03-04 05:06:07",
        timestamp_utc=datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        parent_auth_id="MA_PARENT",
        error=None,
        name=None,
        service_url="wss://app.example/stream?call=42",
        extra_headers={"sessionId": "abc123", "agentId": "john"},
        fields=fields,
    )


@pytest.mark.parametrize(
    ("extra", "attribute", "expected"),
    [
        ({"Event": "PlayedStream", "Name": "turn-3"}, "name", "turn-3"),
        ({"Event": "ClearedAudio"}, "error", None),
        ({"Event": "DegradedStream", "Error": "queue 80% full"}, "error", "queue 80% full"),
        ({"Event": "DroppedStream", "Error": "socket closed"}, "error", "socket closed"),
        ({"Event": "StopStream"}, "error", None),
        ({"Event": "MediaError"}, "error", None),
    ],
)
def test_each_documented_event(extra: dict[str, str], attribute: str, expected: str | None) -> None:
    callback = parse_status_callback({**COMMON, **extra})
    assert callback.event == extra["Event"]
    assert getattr(callback, attribute) == expected
    assert callback.call_uuid == COMMON["CallUUID"]
    assert callback.fields == {**COMMON, **extra}


def test_unknown_event_is_kept_as_given() -> None:
    callback = parse_status_callback({**COMMON, "Event": "SomethingNew", "Extra": "1"})
    assert callback.event == "SomethingNew"
    assert callback.fields["Extra"] == "1"


def test_nothing_at_all_still_parses() -> None:
    callback = parse_status_callback({})
    assert callback == StatusCallback(event="")
    assert callback.extra_headers == {}
    assert callback.fields == {}


def test_field_names_are_read_case_insensitively() -> None:
    callback = parse_status_callback(
        {"event": "StopStream", "CALLUUID": "c-1", "streamid": "s-1", "x-vh-Key": "v"}
    )
    assert (callback.event, callback.call_uuid, callback.stream_id) == ("StopStream", "c-1", "s-1")
    assert callback.extra_headers == {"Key": "v"}


def test_repeated_field_keeps_its_last_value() -> None:
    form = MultiDict([("Event", "StartStream"), ("CallUUID", "first"), ("CallUUID", "last")])
    callback = parse_status_callback(form)
    assert callback.call_uuid == "last"
    assert callback.fields == {"Event": "StartStream", "CallUUID": "last"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-31 23:59:59", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2025-12-31T23:59:59+02:00", datetime(2025, 12, 31, 21, 59, 59, tzinfo=UTC)),
        ("yesterday", None),
        ("2025-13-01 00:00:00", None),
    ],
)
def test_timestamp_is_kept_as_given_and_parsed_when_it_can_be(
    text: str, expected: datetime | None
) -> None:
    callback = parse_status_callback({"Event": "StopStream", "Timestamp": text})
    assert callback.timestamp == text
    assert callback.timestamp_utc == expected


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=12))
def test_any_fields_parse_and_are_kept_whole(fields: dict[str, str]) -> None:
    callback = parse_status_callback(fields)
    assert callback.fields == fields
    assert isinstance(callback.event, str)


# --- signatures ------------------------------------------------------------------------------


def hmac_sha256_written_out(key: bytes, message: bytes) -> bytes:
    """RFC 2104 from hashlib alone, so the expected values do not come from the code under test."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def expected_signature(token: str, message: str) -> str:
    return base64.b64encode(hmac_sha256_written_out(token.encode(), message.encode())).decode()


@pytest.mark.parametrize(
    ("token", "url", "nonce"),
    [
        (TOKEN, URL, NONCE),
        ("k" * 100, "http://127.0.0.1:8080/webhook", "1"),  # key longer than a block
        ("tøken", "https://app.example/wébhook?q=ü", "nöñce"),
        ("", "", ""),
    ],
)
def test_signatures_match_hmac_written_out(token: str, url: str, nonce: str) -> None:
    assert sign_v3(token, url, nonce) == expected_signature(token, f"{url}.{nonce}")
    assert sign_v2(token, url, nonce) == expected_signature(token, url + nonce)
    assert sign_v3(token, url, nonce) != sign_v2(token, url, nonce)


def test_sign_v2_rfc4231_test_case_2() -> None:
    # RFC 4231 section 4.3: HMAC-SHA256("Jefe", "what do ya want for nothing?") =
    # 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
    known = bytes.fromhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert sign_v2("Jefe", "what do ya want ", "for nothing?") == base64.b64encode(known).decode()


def test_sign_v3_fixed_known_answer() -> None:
    # Derived once with:
    # printf '%s' 'https://app.example/webhook?call=42.nonce-12345' \
    #   | openssl dgst -sha256 -hmac 'MAUTHTOKEN0123456789' -binary | base64
    assert sign_v3(TOKEN, URL, NONCE) == "RB0mDDJGpweKEY989TxDrvXUIZ5PmayEUmYsbyYDmqo="


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize(("token", "url", "nonce"), [(TOKEN, URL, NONCE), ("s3cret", "x", "y")])
def test_signatures_agree_with_openssl(token: str, url: str, nonce: str) -> None:
    def openssl(message: str) -> str:
        digest = subprocess.run(
            ["openssl", "dgst", "-sha256", "-hmac", token, "-binary"],
            input=message.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return base64.b64encode(digest).decode()

    assert sign_v3(token, url, nonce) == openssl(f"{url}.{nonce}")
    assert sign_v2(token, url, nonce) == openssl(url + nonce)


def v3_headers(signature: str, nonce: str = NONCE) -> dict[str, str]:
    return {"X-Vobiz-Signature-V3": signature, "X-Vobiz-Signature-V3-Nonce": nonce}


def v2_headers(signature: str, nonce: str = NONCE) -> dict[str, str]:
    return {"X-Vobiz-Signature-V2": signature, "X-Vobiz-Signature-V2-Nonce": nonce}


def test_valid_v3_and_v2() -> None:
    assert verify_signature(TOKEN, URL, v3_headers(sign_v3(TOKEN, URL, NONCE))) is (
        SignatureCheck.VALID
    )
    assert verify_signature(TOKEN, URL, v2_headers(sign_v2(TOKEN, URL, NONCE))) is (
        SignatureCheck.VALID
    )


def test_a_v2_signature_under_the_v3_header_is_invalid() -> None:
    assert verify_signature(TOKEN, URL, v3_headers(sign_v2(TOKEN, URL, NONCE))) is (
        SignatureCheck.INVALID
    )


@pytest.mark.parametrize(
    "headers",
    [
        v3_headers(sign_v3("other-token", URL, NONCE)),
        v3_headers(sign_v3(TOKEN, URL + "&x=1", NONCE)),
        v3_headers(sign_v3(TOKEN, URL, NONCE), nonce="another-nonce"),
        v3_headers(""),
        {"X-Vobiz-Signature-V3": sign_v3(TOKEN, URL, NONCE)},  # no nonce
        {"X-Vobiz-Signature-V2": sign_v2(TOKEN, URL, NONCE)},  # no nonce
    ],
)
def test_invalid_signatures(headers: dict[str, str]) -> None:
    assert verify_signature(TOKEN, URL, headers) is SignatureCheck.INVALID


def test_v3_is_judged_alone_when_present() -> None:
    headers = {**v3_headers("bm90IGl0"), **v2_headers(sign_v2(TOKEN, URL, NONCE))}
    assert verify_signature(TOKEN, URL, headers) is SignatureCheck.INVALID


def test_v2_is_used_when_v3_is_absent_even_with_a_stray_v3_nonce() -> None:
    headers = {"X-Vobiz-Signature-V3-Nonce": NONCE, **v2_headers(sign_v2(TOKEN, URL, NONCE))}
    assert verify_signature(TOKEN, URL, headers) is SignatureCheck.VALID


def test_unsigned() -> None:
    assert verify_signature(TOKEN, URL, {}) is SignatureCheck.UNSIGNED
    assert verify_signature(TOKEN, URL, {"Content-Type": "x"}) is SignatureCheck.UNSIGNED


def test_header_names_are_case_insensitive() -> None:
    signature = sign_v3(TOKEN, URL, NONCE)
    lower = {"x-vobiz-signature-v3": signature, "x-vobiz-signature-v3-nonce": NONCE}
    assert verify_signature(TOKEN, URL, lower) is SignatureCheck.VALID
    aiohttp_style = CIMultiDict(v3_headers(signature))
    assert verify_signature(TOKEN, URL, aiohttp_style) is SignatureCheck.VALID


def test_any_of_several_comma_separated_signatures() -> None:
    good = sign_v3(TOKEN, URL, NONCE)
    stale = sign_v3("old-token", URL, NONCE)
    assert verify_signature(TOKEN, URL, v3_headers(f"{stale}, {good}")) is SignatureCheck.VALID
    assert verify_signature(TOKEN, URL, v3_headers(f"{stale},{stale}")) is SignatureCheck.INVALID


def test_any_of_several_candidate_urls() -> None:
    public, local = URL, "http://127.0.0.1:8080/webhook?call=42"
    headers = v3_headers(sign_v3(TOKEN, public, NONCE))
    assert verify_signature(TOKEN, [local, public], headers) is SignatureCheck.VALID
    assert verify_signature(TOKEN, [local], headers) is SignatureCheck.INVALID
    assert verify_signature(TOKEN, [], headers) is SignatureCheck.INVALID


def test_headers_that_are_not_utf8_are_judged_not_raised() -> None:
    """aiohttp hands over undecodable header bytes as lone surrogates; they never match, never
    raise, and a nonce holding them is signed over its original bytes."""
    escaped = {"X-Vobiz-Signature-V3": "a\udcff", "X-Vobiz-Signature-V3-Nonce": "n\ud800"}
    assert verify_signature(TOKEN, URL, escaped) is SignatureCheck.INVALID
    nonce = b"n\xff".decode("utf-8", "surrogateescape")
    digest = hmac_sha256_written_out(TOKEN.encode(), URL.encode() + b".n\xff")
    signature = base64.b64encode(digest).decode()
    assert verify_signature(TOKEN, URL, v3_headers(signature, nonce)) is SignatureCheck.VALID


# --- reading a request -----------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


def read(
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    token: str | None = TOKEN,
    content_type: str = FORM,
) -> tuple[StatusCallback, SignatureCheck]:
    received = read_status_callback(
        query=query,
        body=body,
        content_type=content_type,
        headers=headers or {},
        urls=[URL],
        auth_token=token,
    )
    return received.callback, received.signature


def test_form_fields_query_then_body_last_value_wins() -> None:
    fields = form_fields("Event=StartStream&x=1&x=2", b"x=3&CallUUID=c%2D1&Name=a+b", FORM)
    assert fields == {"Event": "StartStream", "x": "3", "CallUUID": "c-1", "Name": "a b"}


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x", "text/plain", "application/octet-stream"]
)
def test_a_body_that_is_not_urlencoded_is_not_read(content_type: str) -> None:
    assert form_fields("a=1", b"a=2&b=3", content_type) == {"a": "1"}


def test_form_fields_with_a_charset_parameter_or_an_empty_type_are_read() -> None:
    assert form_fields("", b"a=%C3%A9", FORM + "; charset=UTF-8") == {"a": "é"}
    assert form_fields("", b"a=1", "") == {"a": "1"}


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    fields = form_fields("q=%ff&r=\udcff", b"b=%fe\xff", FORM)
    assert fields == {"q": "\ufffd", "r": "\ufffd", "b": "\ufffd\ufffd"}
    json.dumps(fields).encode("utf-8")  # storable and loggable


def test_too_many_fields_is_a_400() -> None:
    body = "&".join(f"f{number}=1" for number in range(MAX_FIELDS + 1)).encode()
    with pytest.raises(CallbackError, match="1001 fields") as raised:
        form_fields("", body, FORM)
    assert raised.value.status == 400
    assert len(form_fields("", body.rsplit(b"&", 1)[0], FORM)) == MAX_FIELDS


def test_read_signed_v3_and_v2_known_answers() -> None:
    body = b"Event=StartStream&CallUUID=c-1"
    v3 = v3_headers("RB0mDDJGpweKEY989TxDrvXUIZ5PmayEUmYsbyYDmqo=")  # the openssl answer above
    callback, check = read(body=body, headers=v3)
    assert (callback.event, callback.call_uuid, check) == (
        "StartStream",
        "c-1",
        SignatureCheck.VALID,
    )
    v2 = v2_headers(expected_signature(TOKEN, URL + NONCE))
    assert read(body=body, headers=v2)[1] is SignatureCheck.VALID


@pytest.mark.parametrize(
    ("headers", "check"),
    [
        ({}, "unsigned"),
        (v3_headers(sign_v3("another-token", URL, NONCE)), "invalid"),
        ({"X-Vobiz-Signature-V3": sign_v3(TOKEN, URL, NONCE)}, "invalid"),
    ],
)
def test_read_rejects_what_is_not_validly_signed_with_403(
    headers: dict[str, str], check: str
) -> None:
    with pytest.raises(CallbackError) as raised:
        read(body=b"Event=StartStream", headers=headers)
    assert (raised.value.status, str(raised.value)) == (403, f"signature {check}")


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    """An unsigned request with a body too big to parse is refused for its signature."""
    body = b"&".join(b"f%d=1" % number for number in range(MAX_FIELDS * 2))
    with pytest.raises(CallbackError) as raised:
        read(body=body)
    assert raised.value.status == 403


def test_without_a_token_every_callback_is_kept_unsigned() -> None:
    callback, check = read(query="Event=StopStream", token=None, headers=v3_headers("x"))
    assert (callback.event, check) == ("StopStream", SignatureCheck.UNSIGNED)


# --- time format -----------------------------------------------------------------------------


def test_format_utc_is_javascript_iso_string() -> None:
    moment = datetime(2025, 3, 4, 7, 6, 7, 891_234, tzinfo=timezone(timedelta(hours=2)))
    assert format_utc(moment) == "2025-03-04T05:06:07.891Z"


def test_format_utc_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="time zone"):
        format_utc(datetime(2025, 3, 4, 5, 6, 7))


# --- the log ---------------------------------------------------------------------------------

ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_log_appends_one_json_line_per_callback_flushed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "webhook-events.log"
    path.write_text('{"earlier": "line"}\n')
    start = parse_status_callback({**COMMON, "Event": "StartStream", "X-VH-k": "v"})
    stop = parse_status_callback({"Event": "StopStream", "CallUUID": "c-2"})
    received = datetime(2025, 3, 4, 5, 6, 7, 8000, tzinfo=UTC)

    log = WebhookLog(path)
    log.write(start, received, SignatureCheck.VALID)
    log.write(stop, received + timedelta(seconds=1), SignatureCheck.UNSIGNED)
    lines = path.read_text(encoding="utf-8").splitlines()  # read before close: already flushed
    log.close()

    assert len(lines) == 3
    assert json.loads(lines[0]) == {"earlier": "line"}
    first, second = json.loads(lines[1]), json.loads(lines[2])
    assert first == {
        **COMMON,
        "Event": "StartStream",
        "X-VH-k": "v",
        "receivedAt": "2025-03-04T05:06:07.008Z",
        "signature": "valid",
    }
    assert second["Event"] == "StopStream"
    assert second["signature"] == "unsigned"
    assert ISO_MS_UTC.fullmatch(second["receivedAt"])
    assert second["receivedAt"] == "2025-03-04T05:06:08.008Z"


def test_log_keeps_non_ascii_and_works_as_a_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    callback = parse_status_callback({"Event": "PlayedStream", "Name": "grüße \n 👋"})
    with WebhookLog(path) as log:
        log.write(callback, datetime(2025, 1, 1, tzinfo=UTC), SignatureCheck.INVALID)
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["Name"] == "grüße \n 👋"
    assert json.loads(line)["signature"] == "invalid"


# --- bounds ----------------------------------------------------------------------------------


def test_a_query_past_the_cap_is_a_414_asking_for_post() -> None:
    with pytest.raises(CallbackError, match="POST") as raised:
        read(query="Error=" + "x" * MAX_QUERY_BYTES, token=None)
    assert (raised.value.status, raised.value.reason) == (414, "too_large")
    assert read(query="Error=" + "x" * (MAX_QUERY_BYTES - 6), token=None)[0].error is not None


def test_long_names_and_values_are_cut_marked_and_listed() -> None:
    body = f"Event=StopStream&Error={'e' * 5000}&{'n' * 2000}=v&ok=1".encode()
    callback, _ = read(body=body, token=None)
    cut_name = "n" * MAX_FIELD_CHARS + "…(2000 chars)"
    assert callback.error == "e" * MAX_FIELD_CHARS + "…(5000 chars)"
    assert callback.fields[cut_name] == "v"
    assert callback.fields["ok"] == "1"
    assert callback.truncated == ("Error", cut_name)
    exact = read(body=f"Error={'e' * MAX_FIELD_CHARS}".encode(), token=None)[0]
    assert exact.truncated == () and exact.error == "e" * MAX_FIELD_CHARS


def test_the_log_line_escapes_what_breaks_lines_and_reads_back_the_same(tmp_path: Path) -> None:
    hostile = 'a\nb\rc\u2028d\u2029e\x85f\x1b[2Jg\x9bh\x7fi\\j"k'
    log = WebhookLog(tmp_path / "webhook-events.log")
    log.write(
        parse_status_callback({"Event": hostile, hostile: hostile}, truncated=(hostile,)),
        datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        SignatureCheck.UNSIGNED,
    )
    log.close()
    text = (tmp_path / "webhook-events.log").read_text()
    assert len(text.splitlines()) == 1 and text.endswith("\n")
    assert not set(text) & set("\r\x1b\x85\x9b\x7f\u2028\u2029")
    record = json.loads(text)
    assert record["Event"] == record[hostile] == hostile
    assert record["truncated"] == [hostile]


def test_one_line_json_leaves_ordinary_text_as_orjson_writes_it() -> None:
    record = {"a": "ünïcode ✓ 日本", "b": 1}
    assert (
        one_line_json(record)
        == json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    )


# --- replays ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_nonce_is_accepted_once_within_its_window_then_forgotten() -> None:
    clock = FakeClock()
    window = NonceWindow(window=300, capacity=10, clock=clock)
    assert window.accept("n1") and not window.accept("n1")
    clock.now += 299.9
    assert not window.accept("n1")
    clock.now += 0.2
    assert window.accept("n1")  # its window ended: forgotten, and seen afresh
    assert len(window) == 1


def test_the_nonce_memory_is_bounded_in_count_and_size() -> None:
    clock = FakeClock()
    window = NonceWindow(window=300, capacity=3, clock=clock)
    for number in range(5):
        assert window.accept(f"{number}" * 10_000)  # long nonces are kept as digests
    assert len(window) == 3 and window.forgotten_early == 2
    assert not window.accept("4" * 10_000)
    assert window.accept("0" * 10_000)  # forgotten early (the memory was full)


def test_a_forgotten_nonce_is_accepted_again() -> None:
    window = NonceWindow()
    assert window.accept("n1") and not window.accept("n1")
    window.forget("n1")
    window.forget("never-seen")
    assert window.accept("n1") and len(window) == 1


def test_read_refuses_a_replayed_nonce_with_403() -> None:
    window = NonceWindow()
    headers = v3_headers(sign_v3(TOKEN, URL, NONCE))

    def signed_read() -> SignatureCheck:
        return read_status_callback(
            query="",
            body=b"Event=StartStream",
            content_type=FORM,
            headers=headers,
            urls=[URL],
            auth_token=TOKEN,
            nonces=window,
        ).signature

    assert signed_read() is SignatureCheck.VALID
    with pytest.raises(CallbackError, match="replayed") as raised:
        signed_read()
    assert (raised.value.status, raised.value.reason) == (403, "replayed")


def test_counters_log_the_first_refusal_of_a_kind_then_stay_quiet() -> None:
    counters = CallbackCounters(quiet=60)
    assert counters.refused("replayed")
    assert not counters.refused("replayed")
    assert counters.refused("signature")  # another kind is logged on its own
    assert counters.snapshot() == {
        "accepted": 0,
        "truncated": 0,
        "refused": {"replayed": 2, "signature": 1},
    }


# --- signatures as Vobiz's Python SDK computes them ------------------------------------------

SDK_FIELDS = st.dictionaries(
    st.text(string.ascii_letters + "-_", min_size=1, max_size=12),
    st.text(string.printable, max_size=20),
    max_size=8,
)


def sdk_signature(method: str, url: str, fields: dict[str, str], nonce: str) -> str:
    """V3 as the SDK computes it, from its own functions."""
    if method == "GET":
        signed = construct_get_url(url, dict(fields))
    else:
        signed = construct_post_url(url, dict(fields))
    return str(get_signature_v3(TOKEN, signed.decode(), nonce).decode())


@given(
    fields=SDK_FIELDS,
    url_query=st.sampled_from(["", "?tenant=7", "?b=2&a=1&a=0"]),
    nonce=st.text(string.digits, min_size=1, max_size=20),
)
def test_sdk_v3_post_signatures_verify(fields: dict[str, str], url_query: str, nonce: str) -> None:
    url = f"https://app.example/webhook{url_query}"
    signature = sdk_signature("POST", url, fields, nonce)
    headers = v3_headers(signature, nonce)
    form = tuple(fields.items())
    assert verify_signature(TOKEN, url, headers, form=form) is SignatureCheck.VALID
    assert sign_v3(TOKEN, sdk_v3_url("POST", url, form), nonce) == signature
    if fields:  # a changed field breaks it
        changed = tuple((name, value + "!") for name, value in form)
        assert verify_signature(TOKEN, url, headers, form=changed) is SignatureCheck.INVALID


@given(fields=SDK_FIELDS, nonce=st.text(string.digits, min_size=1, max_size=20))
def test_sdk_v3_get_signatures_verify(fields: dict[str, str], nonce: str) -> None:
    url = f"https://app.example/webhook?tenant=7&{urlencode(fields, quote_via=quote)}"
    signature = sdk_signature("GET", url, fields, nonce)
    headers = v3_headers(signature, nonce)
    assert verify_signature(TOKEN, url, headers, method="GET") is SignatureCheck.VALID
    assert validate_v3_signature("GET", url, nonce, TOKEN, signature, dict(fields))


def test_sdk_v3_by_hand() -> None:
    """The SDK's message written out: URL, ``?``, the URL's sorted query, ``.``, the sorted form
    fields as ``namevalue``, ``.``, the nonce; a GET has its sorted query alone."""
    form = (("To", "+2"), ("Event", "StopStream"), ("CallUUID", "c-1"))
    post_message = "https://h/w?a=1&b=2.CallUUIDc-1EventStopStreamTo+2.42"
    assert sdk_v3_url("POST", "https://h/w?b=2&a=1", form) + ".42" == post_message
    assert sdk_v3_url("POST", "https://h/w", form) == "https://h/w?CallUUIDc-1EventStopStreamTo+2"
    assert sdk_v3_url("POST", "https://h/w?b=2&a=1") == "https://h/w?a=1&b=2"
    assert sdk_v3_url("GET", "https://h/w?To=%2B2&Event=Stop+Stream") == (
        "https://h/w?Event=Stop Stream&To=+2"
    )
    headers = v3_headers(expected_signature(TOKEN, post_message), "42")
    assert verify_signature(TOKEN, "https://h/w?b=2&a=1", headers, form=form) is (
        SignatureCheck.VALID
    )


def test_sdk_v2_signs_the_url_without_its_query() -> None:
    url = "https://app.example/webhook?call=42"
    signature = expected_signature(TOKEN, "https://app.example/webhook" + NONCE)
    assert validate_signature(url, NONCE, signature, TOKEN)
    assert verify_signature(TOKEN, url, v2_headers(signature)) is SignatureCheck.VALID


def test_one_valid_signature_among_several_is_enough() -> None:
    good = sign_v3(TOKEN, URL, NONCE)
    headers = v3_headers(f"{sign_v3('old-token', URL, NONCE)}, {good}")
    assert verify_signature(TOKEN, URL, headers) is SignatureCheck.VALID
    assert verify_signature(TOKEN, URL, v3_headers("a,,b")) is SignatureCheck.INVALID
