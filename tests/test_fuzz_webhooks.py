"""Short property runs (CI) of what fuzz/fuzz_webhook.py runs for millions of inputs: any request
is read or refused with CallbackError and nothing else, what is read can be logged and stored,
and a request signed with the token is always accepted."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.core.callbacks import (
    CallbackError,
    SignatureCheck,
    read_status_callback,
    sign_v2,
    sign_v3,
)

CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""]
)
HEADER_NAMES = st.sampled_from(
    [
        "X-Vobiz-Signature-V3",
        "X-Vobiz-Signature-V3-Nonce",
        "X-Vobiz-Signature-V2",
        "X-Vobiz-Signature-V2-Nonce",
        "x-vobiz-signature-v3",
        "Content-Type",
    ]
)


@given(
    query=st.text(max_size=60),
    body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode),
    content_type=CONTENT_TYPES,
    headers=st.dictionaries(HEADER_NAMES, st.text(max_size=50), max_size=4),
    url=st.text(max_size=40),
    token=st.none() | st.text(max_size=20),
)
def test_any_request_is_read_or_refused_with_callback_error(  # noqa: PLR0917 (hypothesis)
    query: str, body: bytes, content_type: str, headers: dict[str, str], url: str, token: str | None
) -> None:
    try:
        received = read_status_callback(
            query=query,
            body=body,
            content_type=content_type,
            headers=headers,
            urls=[url],
            auth_token=token,
        )
    except CallbackError as rejected:
        assert rejected.status in (400, 403)
        return
    orjson.dumps(received.callback.fields)
    for name, value in received.callback.fields.items():
        (name + value).encode("utf-8")


@pytest.mark.parametrize(("version", "sign"), [("V3", sign_v3), ("V2", sign_v2)])
@given(token=st.text(min_size=1, max_size=20), url=st.text(max_size=40), nonce=st.text(max_size=20))
def test_a_correctly_signed_request_is_always_valid(
    version: str, sign: object, token: str, url: str, nonce: str
) -> None:
    assert callable(sign)
    headers = {
        f"X-Vobiz-Signature-{version}": sign(token, url, nonce),
        f"X-Vobiz-Signature-{version}-Nonce": nonce,
    }
    received = read_status_callback(
        query="Event=StartStream",
        body=b"",
        content_type="",
        headers=headers,
        urls=[url],
        auth_token=token,
    )
    assert received.signature is SignatureCheck.VALID
