"""Which URLs the carrier signed, and answer requests read with or without their signature.

The carrier signs the URL it was given: the advertised one (the public URL, else the request's
own), or the operator's ``statusCallbackUrl``; never one a stranger names in a header we do not
trust. Status callbacks are checked against those URLs whenever there is an auth token; answer
requests only with ``verify_answers``, since Vobiz does not document signing them: without it the
first answer request says in the log whether it came signed, so the operator can tell whether to
turn it on.

Each signed request's nonce is accepted once within its window: by this process's
:class:`~vobiz_stream.core.nonces.NonceWindow` first, then, on a PostgreSQL call store, by
every process sharing it (:meth:`SignedRequests.claim`). When the store cannot say whether
another process took the nonce, the request gets 503 (the carrier retries a status callback):
a replay is never let through because the database was away.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from vobiz_stream.app.config import Settings
from vobiz_stream.app.webhooks import read_capped_body
from vobiz_stream.core.callbacks import CallbackError, form_fields, read_signed_form, replayed
from vobiz_stream.core.nonces import NonceWindow
from vobiz_stream.core.signatures import missing_signature, signed_nonce
from vobiz_stream.errors import StoreError
from vobiz_stream.store.database import SharedNonces

log = logging.getLogger("vobiz_stream.app.server")


class SignedRequests:
    """The server's view of signed requests: its settings and the nonces seen lately, here
    (``nonces``) and, with ``shared``, by the other processes sharing the call store."""

    def __init__(
        self, settings: Settings, nonces: NonceWindow, shared: SharedNonces | None = None
    ) -> None:
        self._settings = settings
        self.nonces = nonces
        self._shared = shared
        self._answer_signing_noted = False

    async def claim(self, nonce: str | None) -> None:
        """Claim ``nonce``, fresh in this process's window, among the processes sharing the
        store: :class:`CallbackError` 403 (as a replay here) if one of them took it, 503 if the
        store cannot say. Either way this process forgets it: the store decides the next time.
        """
        if nonce is None or self._shared is None:
            return
        try:
            claimed = await self._shared.claim(nonce)
        except StoreError as exc:
            self.nonces.forget(nonce)
            raise CallbackError(
                503, f"{exc}; cannot tell whether this request is a replay, send it again",
                "nonce_unchecked",
            ) from exc  # fmt: skip
        if not claimed:
            self.nonces.forget(nonce)  # if its taker forgets it too, the carrier's retry is fine
            raise replayed()

    async def forget(self, nonce: str | None) -> None:
        """Accept ``nonce`` again, here and in the shared store: its request was refused after
        all (it could not be stored), and the carrier may retry it as it was."""
        if nonce is None:
            return
        self.nonces.forget(nonce)
        if self._shared is not None:
            await self._shared.forget(nonce)

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()

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
        (:class:`~vobiz_stream.core.callbacks.CallbackError`, 403, otherwise, or 503 when the
        shared store cannot say whether it is a replay); at most 64 KiB (413), whole within
        ``start_timeout`` (408)."""
        settings = self._settings
        body = b""
        if request.method == "POST":
            body = await read_capped_body(request, timeout=settings.start_timeout)
        query = request.rel_url.raw_query_string
        if not (settings.verify_answers and settings.auth_token):
            if settings.auth_token:
                self._note_answer_signing(missing_signature(request.headers) is None)
            return form_fields(query, body, request.content_type)
        fields = read_signed_form(
            query=query,
            body=body,
            content_type=request.content_type,
            headers=request.headers,
            urls=self.urls(request, base_url),
            auth_token=settings.auth_token,
            method=request.method,
            nonces=self.nonces,
        )
        await self.claim(signed_nonce(request.headers))
        return fields

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
