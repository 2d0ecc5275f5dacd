"""``/webhook``: the status callbacks the carrier sends, read within bounds, checked, written to
the webhook log and stored before the carrier hears they were received."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from vobiz_stream.app.config import Settings
from vobiz_stream.app.signed_requests import SignedRequests
from vobiz_stream.app.webhooks import CallbackCounters, WebhookLog, read_capped_body
from vobiz_stream.core.callbacks import CallbackError, log_summary, read_status_callback
from vobiz_stream.core.redact import redact_callback
from vobiz_stream.errors import StoreError
from vobiz_stream.logtext import loggable
from vobiz_stream.store import QueuedStore, StoreBusyError

__all__ = ["StatusCallbacks"]

log = logging.getLogger("vobiz_stream.app.server")


class StatusCallbacks:
    """The server's status-callback endpoint and what it keeps: the log file and the counters."""

    def __init__(
        self,
        settings: Settings,
        store: QueuedStore,
        signed: SignedRequests,
        base_url: Callable[[web.Request], str],
    ) -> None:
        self.settings = settings
        self.store = store
        self.signed = signed
        self._base_url = base_url
        self.log_file = WebhookLog(settings.webhook_log_path)
        self.counters = CallbackCounters()

    def close(self) -> None:
        self.log_file.close()

    async def receive(self, request: web.Request) -> web.Response:
        """Read, check, log and store one status callback; 200 once it is stored."""
        urls = self.signed.urls(request, self._base_url(request))
        try:
            received = read_status_callback(
                query=request.rel_url.raw_query_string,
                body=(
                    await read_capped_body(request, timeout=self.settings.start_timeout)
                    if request.method == "POST"
                    else b""
                ),
                content_type=request.content_type,
                headers=request.headers,
                urls=urls,
                auth_token=self.settings.auth_token,
                method=request.method,
                nonces=self.signed.nonces,
            )
            await self.signed.claim(received.nonce)  # among the processes sharing the store
        except CallbackError as exc:
            if self.counters.refused(exc.reason):
                log.warning(
                    "rejected a status callback from %s (%d %s so far): %s",
                    request.remote,
                    self.counters.refusals[exc.reason],
                    exc.reason,
                    exc,
                )
            response = web.Response(status=exc.status, text=f"{exc}\n")
            if exc.status == 503:
                response.headers["Retry-After"] = "1"
            if exc.status in (408, 413):
                response.force_close()  # the rest of the body is not worth reading
            return response
        callback, check = redact_callback(received.callback), received.signature
        received_at = datetime.now(UTC)
        try:
            await self.store.wait_for_room()
        except StoreBusyError as exc:  # the carrier retries a 503: nothing is lost
            await self.signed.forget(received.nonce)  # the carrier's retry is no replay
            if self.counters.refused("store_busy"):
                call = loggable(callback.call_uuid or "-")
                log.warning("call %s: status callback refused: %s", call, exc)
            return web.Response(status=503, text=f"{exc}\n", headers={"Retry-After": "1"})
        try:
            self.log_file.write(callback, received_at, check)
            stored = self.store.add_status_callback(callback, received_at, check)
            await self.store.settled()  # stored before the carrier hears it was received
            if stored.done():
                stored.result()  # raises the StoreError of a write that was not committed
        except (OSError, StoreError) as exc:
            await self.signed.forget(received.nonce)  # the carrier's retry is no replay
            if self.counters.refused("not_stored"):
                log.error(
                    "call %s: cannot keep a status callback (answered 503, the carrier retries):"
                    " %s; free disk space in %s",
                    loggable(callback.call_uuid or "-"),
                    loggable(str(exc), 300),
                    self.settings.data_dir,
                )
            return web.Response(status=503, text="cannot store the callback now; retry\n")
        self.counters.accepted += 1
        self.counters.truncated += bool(callback.truncated)
        log.info("call %s: %s", loggable(callback.call_uuid or "-"), log_summary(callback))
        return web.Response(text="OK\n")
