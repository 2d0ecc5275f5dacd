"""Stream tokens redacted wherever a URL carrying one may appear."""

from __future__ import annotations

from vobiz_stream.core.callbacks import parse_status_callback
from vobiz_stream.core.redact import redact, redact_callback

TOKEN = "1767225660.MHxOT7ubHUWvn5K9j-LwPDXvnQzE3OCokoZleSEtJe4"


def test_the_token_parameter_is_redacted_wherever_it_stands() -> None:
    cases = {
        f"wss://h/stream?call=c-1&token={TOKEN}": "wss://h/stream?call=c-1&token=<redacted>",
        f"wss://h/stream?token={TOKEN}&call=c-1": "wss://h/stream?token=<redacted>&call=c-1",
        f"wss://h/stream?call=c-1&amp;token={TOKEN}": "wss://h/stream?call=c-1&amp;token=<redacted>",
        f"u=wss%3A%2F%2Fh%2Fstream%3Fcall%3Dc%26token%3D{TOKEN}": (
            "u=wss%3A%2F%2Fh%2Fstream%3Fcall%3Dc%26token%3D<redacted>"
        ),
        f"to wss://h/s?call=c&token={TOKEN} now": "to wss://h/s?call=c&token=<redacted> now",
        f"?token={TOKEN}#frag": "?token=<redacted>#frag",
        "?token=": "?token=<redacted>",
    }
    for text, redacted in cases.items():
        assert redact(text) == redacted
        assert TOKEN not in redact(text)


def test_other_text_is_left_alone() -> None:
    for text in ("wss://h/s?call=c-1", "access_token=abc", "xtoken=abc", "a%3Dtoken=", "tokens"):
        assert redact(text) == text


def test_a_callbacks_fields_lose_their_tokens() -> None:
    url = f"wss://h/stream?call=c-1&token={TOKEN}"
    callback = parse_status_callback({"Event": "StartStream", "ServiceURL": url, "X-VH-k": url})
    clean = redact_callback(callback)
    assert clean.service_url == "wss://h/stream?call=c-1&token=<redacted>"
    assert TOKEN not in repr(clean.fields)
    assert clean.fields["Event"] == "StartStream"
    plain = parse_status_callback({"Event": "StopStream", "CallUUID": "c-1"})
    assert redact_callback(plain) is plain
