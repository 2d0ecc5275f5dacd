"""Which URLs the carrier signed, and answer requests read with or without their signature.

The carrier signs the URL it was given: the advertised one (the public URL, else the request's
own), or the operator's ``statusCallbackUrl``; never one a stranger names in a header we do not
trust. Status callbacks are checked against those URLs whenever there is an auth token; answer
requests only with ``verify_answers``, since Vobiz does not document signing them: without it the
first answer request says in the log whether it came signed, so the operator can tell whether to
turn it on.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from vobiz_stream.app.config import Settings
from vobiz_stream.app.webhooks import read_capped_body
from vobiz_stream.core.callbacks import form_fields, read_signed_form
from vobiz_stream.core.nonces import NonceWindow
from vobiz_stream.core.signatures import missing_signature

log = logging.getLogger("vobiz_stream.app.server")


class SignedRequests:
    """The server's view of signed requests: its settings and the nonces seen lately."""

    def __init__(self, settings: Settings, nonces: NonceWindow) -> None:
        self._settings = settings
        self._nonces = nonces
        self._answer_signing_noted = False

    def urls(self, request: web.Request, base_url: str) -> list[str]:
        """The URLs the carrier may have signed for ``request`` (``base_url``: the advertised
        base, the public URL or the request's own)."""
        urls = [base_url + request.path_qs]
        if not self._settings.public_url:
            urls.append(str(request.url))
        if self._settings.status_callback_url:
            configured = urlsplit(self._settings.status_callback_url)
            urls.append(f"{configured.scheme}://{configured.netloc}{request.path_qs}")
        return list(dict.fromkeys(urls))

    async def answer_fields(self, request: web.Request, base_url: str) -> dict[str, str]:
        """The answer request's fields: with ``verify_answers``, only if the carrier signed it
        (:class:`~vobiz_stream.core.callbacks.CallbackError`, 403, otherwise); at most 64 KiB (413),
        whole within ``start_timeout`` (408)."""
        settings = self._settings
        body = b""
        if request.method == "POST":
            body = await read_capped_body(request, timeout=settings.start_timeout)
        query = request.rel_url.raw_query_string
        if not (settings.verify_answers and settings.auth_token):
            if settings.auth_token:
                self._note_answer_signing(missing_signature(request.headers) is None)
            return form_fields(query, body, request.content_type)
        return read_signed_form(
            query=query,
            body=body,
            content_type=request.content_type,
            headers=request.headers,
            urls=self.urls(request, base_url),
            auth_token=settings.auth_token,
            method=request.method,
            nonces=self._nonces,
        )

    def _note_answer_signing(self, signed: bool) -> None:
        if self._answer_signing_noted:
            return
        self._answer_signing_noted = True
        if signed:
            log.info(
                "the first answer request carries a signature: set --verify-answers true to "
                "refuse answer requests without one"
            )
        else:
            log.info(
                "the first answer request carries no signature: answer requests cannot be "
                "checked (--verify-answers would refuse them)"
            )
