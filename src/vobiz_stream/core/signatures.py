"""Status callback signatures: what Vobiz signs, under both readings of it, in one place.

A signed callback carries ``X-Vobiz-Signature-V3`` and ``X-Vobiz-Signature-V3-Nonce`` (or the
older V2 pair): base64 of an HMAC-SHA256 keyed by the account's auth token. Two readings of
what the HMAC covers are in use, and a receiver accepts a signature valid under either:

* **docs** (the callback-validation page): V3 over ``<full URL>.<nonce>``, V2 over
  ``<full URL><nonce>``. The request body is not covered: over plain HTTP its fields can be
  changed in flight without breaking the signature.
* **sdk** (how Vobiz's Python SDK verifies, ``vobiz.utils.validate_v3_signature`` and
  ``validate_signature``): V3 over :func:`sdk_v3_url` ``.<nonce>``, that is the URL without its
  query, then the query's fields and, for a POST, every form field, each sorted by name; V2
  over the URL without its query (:func:`sdk_v2_url`), then the nonce.

Both readings are the same HMAC over a different URL, so :func:`sign_v3` and :func:`sign_v2`
sign either: pass the URL, or what :func:`sdk_v3_url` / :func:`sdk_v2_url` make of it.
:func:`verify_signature` checks a request's headers; :func:`signed_nonce` names the nonce it
was judged on, for the replay check (:mod:`vobiz_stream.core.nonces`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import cast
from urllib.parse import parse_qsl, urlparse, urlunparse

__all__ = [
    "SignatureCheck",
    "SignatureForm",
    "as_raw_bytes",
    "missing_signature",
    "sdk_v2_url",
    "sdk_v3_url",
    "sign_v2",
    "sign_v3",
    "signed_nonce",
    "verify_signature",
]


class SignatureCheck(StrEnum):
    """What :func:`verify_signature` found."""

    VALID = "valid"
    INVALID = "invalid"
    UNSIGNED = "unsigned"


class SignatureForm(StrEnum):
    """Which reading of the signed message a signer follows (see the module's docstring)."""

    SDK = "sdk"
    DOCS = "docs"


def as_raw_bytes(text: str) -> bytes:
    """``text`` as bytes for an HMAC, whatever it holds: a header aiohttp could not decode as
    UTF-8 arrives with its bytes escaped as lone surrogates, which this turns back into them."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _sign(auth_token: str, message: str) -> str:
    digest = hmac.new(as_raw_bytes(auth_token), as_raw_bytes(message), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_v3(auth_token: str, url: str, nonce: str) -> str:
    """``X-Vobiz-Signature-V3``: base64 HMAC-SHA256 keyed by the auth token over ``url.nonce``."""
    return _sign(auth_token, f"{url}.{nonce}")


def sign_v2(auth_token: str, url: str, nonce: str) -> str:
    """``X-Vobiz-Signature-V2``: as V3 but over ``url`` and ``nonce`` with nothing between."""
    return _sign(auth_token, url + nonce)


def _without_query(url: str) -> str:
    """``scheme://host/path``: the query, fragment and ``;params`` dropped, as the SDK does."""
    parts = urlparse(url)
    return urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))


def _by_name(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def sdk_v3_url(method: str, url: str, form: Sequence[tuple[str, str]] = ()) -> str:
    """What the SDK's V3 check signs before ``.<nonce>``, for a request to ``url``.

    The URL without its query; then, for a GET, ``?`` and the query's fields (decoded) sorted
    as ``name=value&...`` when there are any; for a POST with ``form`` fields, ``?``, the URL's
    own query sorted the same way, ``.`` when that query is not empty, and every form field
    sorted by name as ``namevalue`` with nothing between. A repeated field contributes each of
    its values, sorted. (The SDK itself fails on a query holding percent-escaped non-ASCII
    bytes; here those decode as UTF-8.)
    """
    query = _by_name(parse_qsl(urlparse(url).query, keep_blank_values=True))
    sorted_query = "&".join(
        "&".join(f"{name}={value}" for value in sorted(query[name])) for name in sorted(query)
    )
    base = _without_query(url)
    if method.upper() == "GET" or not form:
        return f"{base}?{sorted_query}" if sorted_query else base
    fields = _by_name(form)
    sorted_form = "".join(
        "".join(f"{name}{value}" for value in sorted(fields[name])) for name in sorted(fields)
    )
    return f"{base}?{sorted_query}{'.' if sorted_query else ''}{sorted_form}"


def sdk_v2_url(url: str) -> str:
    """What the SDK's V2 check signs before the nonce: the URL without its query."""
    return _without_query(url)


_SCHEMES = (
    ("x-vobiz-signature-v3", "x-vobiz-signature-v3-nonce"),
    ("x-vobiz-signature-v2", "x-vobiz-signature-v2-nonce"),
)
"""Newest first: a request carrying a V3 signature is judged on it alone."""


def _judged_scheme(by_lower_name: Mapping[str, str]) -> tuple[str, str] | None:
    for signature_header, nonce_header in _SCHEMES:
        if signature_header in by_lower_name:
            return signature_header, nonce_header
    return None


def signed_nonce(headers: Mapping[str, str]) -> str | None:
    """The nonce of the signature :func:`verify_signature` judges, None without one."""
    by_lower_name = {name.lower(): value for name, value in headers.items()}
    scheme = _judged_scheme(by_lower_name)
    return None if scheme is None else by_lower_name.get(scheme[1])


def missing_signature(headers: Mapping[str, str]) -> SignatureCheck | None:
    """UNSIGNED without a signature header, INVALID with one but not its nonce, None with
    both: only then is there a signature to compute and compare."""
    by_lower_name = {name.lower(): value for name, value in headers.items()}
    scheme = _judged_scheme(by_lower_name)
    if scheme is None:
        return SignatureCheck.UNSIGNED
    return None if scheme[1] in by_lower_name else SignatureCheck.INVALID


def verify_signature(
    auth_token: str,
    url: str | Sequence[str],
    headers: Mapping[str, str],
    *,
    method: str = "POST",
    form: Sequence[tuple[str, str]] = (),
) -> SignatureCheck:
    """Check a callback's signature headers against the URL it was sent to, under both readings.

    ``url`` is the full URL the carrier sent to, query included; pass several when the server is
    reachable under more than one (the public URL, the request's own): any match is valid.
    ``method`` and ``form`` (a POST's body fields, in order) are what the SDK reading signs
    besides the URL. A signature header may hold several comma-separated signatures (token
    rotation): any match is valid. A signature without its nonce header is invalid; no
    signature header at all is unsigned.
    """
    missing = missing_signature(headers)
    if missing is not None:
        return missing
    by_lower_name = {name.lower(): value for name, value in headers.items()}
    signature_header, nonce_header = cast(tuple[str, str], _judged_scheme(by_lower_name))
    nonce = by_lower_name[nonce_header]
    candidates = (url,) if isinstance(url, str) else tuple(url)
    sign: Callable[[str, str, str], str] = sign_v2
    sdk_url: Callable[[str], str] = sdk_v2_url
    if signature_header == "x-vobiz-signature-v3":
        sign, sdk_url = sign_v3, functools.partial(sdk_v3_url, method, form=form)
    expected = {
        sign(auth_token, signed_url, nonce).encode()
        for candidate in candidates
        for signed_url in (candidate, sdk_url(candidate))
    }
    given = [as_raw_bytes(part.strip()) for part in by_lower_name[signature_header].split(",")]
    if any(hmac.compare_digest(g, e) for g in given if g for e in expected):
        return SignatureCheck.VALID
    return SignatureCheck.INVALID
