"""Stream tokens kept out of everything the server writes down or serves.

A stream URL carries its call's token (``?call=...&token=<expires>.<signature>``, see
:mod:`vobiz_stream.app.admission`), and that URL comes back in places that outlive the answer: the
``ServiceURL`` of a status callback (stored, served by ``/calls``, appended to
``webhook-events.log``) and the log line of the answer. A token read from any of them would open
a socket for its call until it expires, so each goes through :func:`redact` first.
"""

from __future__ import annotations

import dataclasses
import re

from vobiz_stream.core.callbacks import StatusCallback

REDACTED = "<redacted>"

_TOKEN_VALUE = re.compile(
    r"(?:^|(?<=[^\w.~%-])|(?<=%26)|(?<=%3[fF]))(token(?:=|%3[dD]))[^&#\s\"'<>]*", re.ASCII
)
"""A ``token`` parameter and its value, also percent-encoded (a URL inside a URL, after ``%3F``
or ``%26``); the value runs to the next parameter, fragment, space or quote (an encoded URL's
later parameters go with it)."""


def redact(text: str) -> str:
    """``text`` with the value of every ``token`` parameter replaced by ``<redacted>``."""
    if "token" not in text:
        return text  # the common case: no parameter of that name, no regex run
    return _TOKEN_VALUE.sub(lambda match: match.group(1) + REDACTED, text)


def redact_callback(callback: StatusCallback) -> StatusCallback:
    """``callback`` with no token in any field (``ServiceURL`` above all), to store and log."""
    fields = {name: redact(value) for name, value in callback.fields.items()}
    if fields == callback.fields:
        return callback
    service_url = None if callback.service_url is None else redact(callback.service_url)
    return dataclasses.replace(callback, fields=fields, service_url=service_url)
