"""The stream server: answer XML, the carrier's WebSocket, status callbacks, and the call list.

Endpoints (one aiohttp app, one port):

* ``GET|POST /``: the ``<Response><Stream>`` answer pointing at this server's ``/stream``;
* ``GET /stream`` (WebSocket): one :class:`~vobiz_stream.session.CallSession` per socket, recorded
  by a :class:`~vobiz_stream.keeper.StreamKeeper` and handed to the configured handler;
* ``GET|POST /webhook``: status callbacks, stored and appended to ``webhook-events.log``;
* ``GET /calls``: the calls with their recordings, events and callbacks, as JSON;
* ``GET /healthz``: liveness and the number of open streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import WSMsgType, web

from vobiz_stream import __version__
from vobiz_stream.config import Settings
from vobiz_stream.handlers import Handler, resolve_handler
from vobiz_stream.keeper import StreamKeeper
from vobiz_stream.session import CallSession, SessionOptions
from vobiz_stream.store import CallStore
from vobiz_stream.webhooks import (
    SignatureCheck,
    WebhookLog,
    parse_status_callback,
    verify_signature,
)
from vobiz_stream.xml import (
    AudioTrack,
    CallbackMethod,
    Response,
    Stream,
    parse_extra_headers,
    render,
    validate,
)

log = logging.getLogger("vobiz_stream.server")

HANDLER_GRACE = 5.0
"""Seconds a handler may run on after its stream ended before it is cancelled."""


class AiohttpTransport:
    """The session's view of an aiohttp WebSocket."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self._socket = socket

    async def send_text(self, text: str) -> None:
        await self._socket.send_str(text)

    async def close(self) -> None:
        await self._socket.close()


class StreamServer:
    """The app's state: settings, store, webhook log and the open sockets."""

    def __init__(self, settings: Settings, handler: Handler | None = None) -> None:
        self.settings = settings
        self.handler = handler or resolve_handler(settings.handler)
        settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.store = CallStore(settings.database_path)
        interrupted = self.store.mark_interrupted(datetime.now(UTC))
        if interrupted:
            log.warning("marked %d stream(s) of a previous run as interrupted", interrupted)
        self.webhook_log = WebhookLog(settings.webhook_log_path)
        self.sockets: set[web.WebSocketResponse] = set()
        self.draining = False
        self._stream_template = self._stream_element("ws://localhost/stream", None)
        validate(self._stream_template)  # a bad configuration fails at start, not per call
        self.options = SessionOptions(
            expected_format=settings.inbound_format,
            bidirectional=settings.bidirectional,
            byte_order=settings.byte_order,
            outbound_format=settings.outbound_format,
            max_lead=settings.max_lead,
        )

    # -- the app ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.add_routes(
            [
                web.get("/", self.answer),
                web.post("/", self.answer),
                web.get("/stream", self.stream),
                web.post("/webhook", self.webhook),
                web.get("/webhook", self.webhook),
                web.get("/calls", self.calls),
                web.get("/healthz", self.healthz),
            ]
        )
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self.close_sockets()
        self.webhook_log.close()
        self.store.close()

    async def close_sockets(self) -> None:
        """Close every open stream; their sessions end and their recordings are finalised."""
        await asyncio.gather(
            *(socket.close(code=1001, message=b"server shutting down") for socket in self.sockets),
            return_exceptions=True,
        )

    # -- answer XML ---------------------------------------------------------------------------

    def _base_url(self, request: web.Request) -> str:
        """``http(s)://host`` the carrier reaches us at: the public URL, else the request's."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        scheme = _first_forwarded(request, "X-Forwarded-Proto") or request.scheme
        host = _first_forwarded(request, "X-Forwarded-Host") or request.host
        return f"{scheme}://{host}"

    def _stream_element(self, stream_url: str, webhook_url: str | None) -> Stream:
        settings = self.settings
        return Stream(
            url=stream_url,
            bidirectional=settings.bidirectional,
            audio_track=AudioTrack(settings.audio_track),
            stream_timeout=settings.stream_timeout,
            status_callback_url=settings.status_callback_url or webhook_url,
            status_callback_method=CallbackMethod(settings.status_callback_method.upper()),
            content_type=settings.inbound_format,
            extra_headers=parse_extra_headers(settings.extra_headers),
            keep_call_alive=settings.keep_call_alive,
            max_retries=settings.max_retries,
        )

    async def answer(self, request: web.Request) -> web.Response:
        fields = await _form_fields(request)
        base = urlsplit(self._base_url(request))
        ws_scheme = "wss" if base.scheme == "https" else "ws"
        call_uuid = fields.get("CallUUID")
        query = urlencode({"call": call_uuid}) if call_uuid else ""
        stream_url = urlunsplit((ws_scheme, base.netloc, base.path + "/stream", query, ""))
        webhook_url = urlunsplit((base.scheme, base.netloc, base.path + "/webhook", "", ""))
        xml = render(Response.of(self._stream_element(stream_url, webhook_url)))
        log.info("call %s: answered with a stream to %s", call_uuid or "-", stream_url)
        return web.Response(text=xml, content_type="application/xml")

    # -- the media socket ---------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            return web.Response(status=503, text="server is shutting down; retry elsewhere\n")
        socket = web.WebSocketResponse(
            max_msg_size=self.settings.max_message_bytes, heartbeat=20.0, autoping=True
        )
        await socket.prepare(request)
        self.sockets.add(socket)
        keeper = StreamKeeper(self.settings.recordings_dir, self.store)
        session = CallSession(AiohttpTransport(socket), self.options, keeper, request.query)
        session.call_id = request.query.get("call") or None
        handler_task = asyncio.create_task(self._run_handler(session))
        reason = "socket_closed"
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    session.feed(message.data)
                    if session.closed:  # the carrier's stop: the stream is over
                        reason = "stop"
                        await socket.close()
                        break
                elif message.type is WSMsgType.BINARY:
                    session.reject(
                        f"binary frame of {len(message.data)} bytes; frames are JSON text"
                    )
                elif message.type is WSMsgType.ERROR:
                    reason = f"socket_error: {socket.exception()}"
        except (ConnectionError, asyncio.CancelledError) as exc:
            reason = f"socket_dropped: {type(exc).__name__}"
            raise
        finally:
            if session.end_reason is None and socket.close_code not in (None, 1000, 1001, 1005):
                reason = f"socket_closed ({socket.close_code})"
            session.close(reason)
            try:
                await self._finish_handler(session, handler_task)
            finally:
                self.sockets.discard(socket)
        return socket

    async def _run_handler(self, session: CallSession) -> None:
        if not await session.wait_started():
            return
        try:
            await self.handler(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "call %s: the handler failed; the stream and its recording go on",
                session.describe(),
            )

    async def _finish_handler(self, session: CallSession, task: asyncio.Task[None]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(task), HANDLER_GRACE)
        except TimeoutError:
            log.warning(
                "call %s: the handler did not return %.0f s after the stream ended; cancelling it",
                session.describe(),
                HANDLER_GRACE,
            )
            task.cancel()
        except asyncio.CancelledError:
            task.cancel()
            raise
        await session.aclose()

    # -- status callbacks ---------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        fields = await _form_fields(request)
        check = SignatureCheck.UNSIGNED
        if self.settings.auth_token:
            # The carrier signs the URL it was given: the advertised one, or this one.
            advertised = self._base_url(request) + request.path_qs
            candidates = list(dict.fromkeys([advertised, str(request.url)]))
            check = verify_signature(self.settings.auth_token, candidates, request.headers)
            if check is not SignatureCheck.VALID:
                log.warning(
                    "rejected a status callback with a %s signature from %s",
                    check.value,
                    request.remote,
                )
                return web.Response(status=403, text=f"signature {check.value}\n")
        callback = parse_status_callback(fields)
        received_at = datetime.now(UTC)
        self.webhook_log.write(callback, received_at, check)
        self.store.add_status_callback(callback, received_at, check)
        log.info(
            "call %s: status callback %s%s",
            callback.call_uuid or "-",
            callback.event or "?",
            f" error={callback.error}" if callback.error else "",
        )
        return web.Response(text="OK\n")

    # -- pages --------------------------------------------------------------------------------

    async def calls(self, request: web.Request) -> web.Response:
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "100"))))
        except ValueError:
            return web.Response(status=400, text="limit must be a whole number\n")
        body = orjson.dumps({"calls": self.store.list_calls(limit)})
        return web.Response(body=body, content_type="application/json")

    async def healthz(self, _request: web.Request) -> web.Response:
        body = {
            "status": "draining" if self.draining else "ok",
            "version": __version__,
            "open_streams": len(self.sockets),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _first_forwarded(request: web.Request, header: str) -> str | None:
    """The first value of a proxy header; a chain of proxies appends theirs after it."""
    value = request.headers.get(header, "").split(",")[0].strip()
    return value or None


async def _form_fields(request: web.Request) -> dict[str, str]:
    """The query, then the form body; a repeated field keeps its last value."""
    fields = {key: value for key, value in request.query.items()}
    if request.method == "POST":
        fields.update({key: str(value) for key, value in (await request.post()).items()})
    return fields


async def serve(settings: Settings, handler: Handler | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain: refuse new calls, let open ones finish for
    ``shutdown_grace`` seconds, close the rest (finalising every recording), and exit."""
    server = StreamServer(settings, handler)
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "vobiz-stream %s serving on http://%s:%d (answer: /, stream: /stream, "
        "callbacks: /webhook, calls: /calls); data in %s",
        __version__,
        settings.host,
        settings.port,
        settings.data_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        server.draining = True
        log.info(
            "shutting down: refusing new calls; %d open stream(s) get %.0f s to finish",
            len(server.sockets),
            settings.shutdown_grace,
        )
        deadline = loop.time() + settings.shutdown_grace
        while server.sockets and loop.time() < deadline:
            await asyncio.sleep(0.1)
        await server.close_sockets()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, ValueError):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
        log.info("stopped")
