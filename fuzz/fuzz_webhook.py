"""Fuzz the status callback reader (atheris): ``read_status_callback`` raises
:class:`~vobiz_stream.core.callbacks.CallbackError` and nothing else, whatever the query, body,
content type, headers and token; what it accepts can be logged as JSON and stored (no lone
surrogates); and a request signed with the token over its URL and nonce is always accepted.

Run it with ``fuzz/run.py`` or directly::

    python fuzz/fuzz_webhook.py -runs=100000 fuzz/corpus/webhook
"""

from __future__ import annotations

import sys

import atheris
import orjson

with atheris.instrument_imports(include=["vobiz_stream"]):
    from vobiz_stream.core.callbacks import (
        CallbackError,
        SignatureCheck,
        read_status_callback,
        sign_v2,
        sign_v3,
    )

CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
)


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    mode = provider.ConsumeIntInRange(0, 7)
    token = provider.ConsumeUnicode(24) if mode & 1 else None
    url = provider.ConsumeUnicode(64)
    nonce = provider.ConsumeUnicode(16)
    content_type = CONTENT_TYPES[provider.ConsumeIntInRange(0, len(CONTENT_TYPES) - 1)]
    query = provider.ConsumeUnicode(128)
    header_value = provider.ConsumeUnicode(64)
    body = provider.ConsumeBytes(provider.remaining_bytes())
    signs_correctly = bool(token) and mode & 2
    if signs_correctly:
        assert token is not None
        sign, version = (sign_v3, "V3") if mode & 4 else (sign_v2, "V2")
        header_value = sign(token, url, nonce)
    else:
        version = "V3" if mode & 4 else "V2"
    headers = {
        f"X-Vobiz-Signature-{version}": header_value,
        f"X-Vobiz-Signature-{version}-Nonce": nonce,
    }
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
        if signs_correctly and rejected.status == 403:
            raise AssertionError("a correctly signed callback was rejected") from None
        return
    if signs_correctly and received.signature is not SignatureCheck.VALID:
        raise AssertionError("a correctly signed callback was not found valid")
    fields = received.callback.fields
    orjson.dumps(fields)  # the webhook log
    for name, value in fields.items():
        name.encode("utf-8")  # SQLite stores them as UTF-8
        value.encode("utf-8")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
