"""The stream server: answer XML, the carrier's WebSocket, status callbacks, and the call list.

Endpoints (one aiohttp app, one port):

* ``GET|POST /``: the ``<Response><Stream>`` answer pointing at this server's ``/stream``;
* ``GET /stream`` (WebSocket): one :class:`CallSession` per socket, recorded
  by a :class:`~vobiz_stream.app.keeper.StreamKeeper` and handed to the configured handler;
* ``GET|POST /webhook``: status callbacks, stored and appended to ``webhook-events.log``;
* ``GET /calls``: the calls with their recordings, events and callbacks, as JSON, a page at a
  time; ``GET /calls/<call id>``: one of them (:mod:`vobiz_stream.app.calls_api`);
* ``GET /healthz``: liveness (``ok`` or ``draining``) and the version; nothing about calls;
* ``GET /stats``: media frames handled and their handling latency;
* ``GET /admission``: media sockets admitted and refused, by reason (:mod:`.admission`);
* ``/ui`` and ``/api``: the web console (:mod:`.console`).
* ``GET /recordings/<file name>``: a recording, local or in S3 (:mod:`.recording_route`).

Every path but ``/``, ``/stream``, ``/webhook`` and ``/healthz`` needs the admin token
(:mod:`vobiz_stream.app.guard`).

The media socket's life (admission, session, recording, handler) is in
:mod:`vobiz_stream.app.media_socket`; its shells are in :mod:`vobiz_stream.transports`: aiohttp's
on this app's port, picows's on a port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import web

from vobiz_stream import __version__
from vobiz_stream.app.admission import Admission
from vobiz_stream.app.advice import address_in_use, wrong_answer_path
from vobiz_stream.app.answered import AnsweredCalls
from vobiz_stream.app.call_audio import add_call_audio
from vobiz_stream.app.call_control import CallControl, add_call_control
from vobiz_stream.app.callback_route import StatusCallbacks
from vobiz_stream.app.calls_api import call_page, one_call
from vobiz_stream.app.config import Settings, socket_limits
from vobiz_stream.app.console import Console
from vobiz_stream.app.console.auth import ConsoleLogins
from vobiz_stream.app.datadir_lock import DataDirLock
from vobiz_stream.app.fd_limits import fit_max_calls
from vobiz_stream.app.guard import admin_guard, unsafe_settings
from vobiz_stream.app.handlers import Handler, resolve_handler
from vobiz_stream.app.host_header import checked_host
from vobiz_stream.app.keeper import HandlingLatency
from vobiz_stream.app.malformed_requests import AIOHTTP_SERVER_LOGGER, MalformedRequests
from vobiz_stream.app.media_port import MediaPort, open_media_port
from vobiz_stream.app.media_socket import MediaStreams, OpenStream
from vobiz_stream.app.metrics import add_metrics, server_metrics
from vobiz_stream.app.recording_outlet import RecordingOutlet
from vobiz_stream.app.session import SessionOptions
from vobiz_stream.app.side_services import SideServices
from vobiz_stream.app.signed_requests import SignedRequests
from vobiz_stream.app.tracing import trace_calls
from vobiz_stream.core.answer import (
    AudioTrack,
    CallbackMethod,
    Response,
    Stream,
    parse_extra_headers,
    render,
    validate,
)
from vobiz_stream.core.callbacks import CallbackError
from vobiz_stream.core.nonces import NonceWindow
from vobiz_stream.core.redact import redact
from vobiz_stream.errors import ConfigError
from vobiz_stream.extras import require
from vobiz_stream.logtext import loggable
from vobiz_stream.store.database import open_call_store, open_shared_nonces
from vobiz_stream.transports.aiohttp import serve_stream
from vobiz_stream.transports.asgi import AsgiStreamEndpoint

log = logging.getLogger("vobiz_stream.app.server")

WRONG_PATHS_LOGGED = 100
"""Distinct unknown paths whose 404 is logged; later ones are answered but not logged."""


class StreamServer:
    """The app's state: settings, store, webhook log and the open sockets."""

    def __init__(self, settings: Settings, handler: Handler | None = None) -> None:
        if settings.media_transport == "picows":
            require("picows", "the picows media transport")
        if settings.media_transport == "asgi":
            require("uvicorn", "the ASGI media transport", extra="asgi")
            require("websockets", "the ASGI media transport", extra="asgi")
        self.settings = settings
        self.handler = handler or resolve_handler(settings.handler)
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # recordings may be elsewhere
        settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_call_store(settings.database_url)
        interrupted = self.store.mark_interrupted(datetime.now(UTC))
        if interrupted:
            log.warning("marked %d stream(s) of a previous run as interrupted", interrupted)
        # Each signed request's nonce once: in this process, and in the store shared by others.
        shared_nonces = open_shared_nonces(settings.database_url)
        self.signed = SignedRequests(settings, NonceWindow(), shared_nonces)
        self.callbacks = StatusCallbacks(settings, self.store, self.signed, self._base_url)
        self._stream_template = self._stream_element("ws://localhost/stream", None)
        validate(self._stream_template)  # a bad configuration fails at start, not per call
        self.options = SessionOptions(
            expected_format=settings.inbound_format,
            bidirectional=settings.bidirectional,
            byte_order=settings.byte_order,
            outbound_format=settings.outbound_format,
            max_lead=settings.max_lead,
        )
        self.latency = HandlingLatency()
        self.admission = Admission.from_settings(settings)
        self.outlet = RecordingOutlet.from_settings(settings, self.store)
        self.streams = MediaStreams(
            settings.recordings_dir,
            self.store,
            options=self.options,
            handler=self.handler,
            latency=self.latency,
            admission=self.admission,
            start_timeout=settings.start_timeout,
            answered=AnsweredCalls(ttl=settings.token_ttl),
            recording_sink=self.outlet,
        )
        self.control = CallControl(self.streams, self.store)  # hang-ups from the API
        self.metrics = server_metrics(self.streams, self.latency, self.admission, self.store)
        trace_calls(self.streams)  # with the otel extra: a span per stream
        self._media_server: MediaPort | None = None
        self._wrong_paths: set[str] = set()
        """Paths already logged as 404s (at most ``WRONG_PATHS_LOGGED``)."""
        self.media_port: int | None = None
        """The picows or ASGI media socket's port once it listens; None: on the aiohttp app."""
        self.reuse_port = False  # True: the ports are shared with other workers (SO_REUSEPORT)

    @property
    def sockets(self) -> set[OpenStream]:
        """The open media streams, whichever transport carries them."""
        return self.streams.open

    @property
    def draining(self) -> bool:
        return self.streams.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.streams.draining = value

    # -- the app ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        logins = ConsoleLogins(self.settings.admin_token, self.settings.public_url)
        app = web.Application(
            client_max_size=1 << 20,
            # A path no route serves gets its 404 hint first: it shows nothing but the answer URL.
            middlewares=[
                self._name_the_answer_path,
                admin_guard(self.settings.admin_token, self.settings.host, logins),
            ],
        )
        app.add_routes(
            [
                web.get("/", self.answer),
                web.post("/", self.answer),
                web.get("/stream", self.stream),
                web.post("/webhook", self.callbacks.receive),
                web.get("/webhook", self.callbacks.receive),
                web.get("/calls", self.calls),
                web.get("/calls/{call_id}", self.call),
                web.get("/healthz", self.healthz),
                web.get("/stats", self.stats),
                web.get("/admission", self.admission_counters),
                web.get("/recordings/{name}", self.outlet.serve),
            ]
        )
        add_metrics(app, self.metrics)
        add_call_control(app, self.control)
        add_call_audio(app, self.control)
        self.console = Console(
            self.store, self.outlet.recordings, lambda: self.streams.open, logins
        )
        self.console.add_to(app)
        app.on_startup.append(self.outlet.on_startup)
        if self.settings.media_transport in ("picows", "asgi"):
            app.on_startup.append(self._start_media_socket)
        app.on_cleanup.append(self._cleanup)
        return app

    @web.middleware
    async def _name_the_answer_path(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A path no route serves gets a 404 that names the answer URL (a wrong answer URL in
        the Vobiz console is the usual cause); everything else passes through untouched."""
        if request.match_info.http_exception is None or not isinstance(
            request.match_info.http_exception, web.HTTPNotFound
        ):
            return await handler(request)
        hint = wrong_answer_path(request.path, self._base_url(request) + "/")
        if len(self._wrong_paths) < WRONG_PATHS_LOGGED and request.path not in self._wrong_paths:
            self._wrong_paths.add(request.path)  # once per path: a scan cannot flood the log
            log.warning("404 for %s %s", request.method, hint.strip())
        return web.Response(status=404, text=hint)

    async def _start_media_socket(self, _app: web.Application) -> None:
        settings = self.settings
        self._media_server = await open_media_port(
            self.streams, settings, self.answer_xml, reuse_port=self.reuse_port
        )
        self.media_port = self._media_server.port
        log.info(
            "media socket (%s) on ws://%s:%d/stream",
            settings.media_transport,
            settings.host,
            self.media_port,
        )

    async def _cleanup(self, _app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening for media sockets, close the open ones (finalising their recordings),
        then the webhook log and the store."""
        if self._media_server is not None:
            self._media_server.stop_listening()  # no new sockets; the open ones are closed next
        await self.close_sockets()
        if self._media_server is not None:
            await self._media_server.close()
        await self.outlet.close()  # pending uploads resume at the next start
        self.callbacks.close()
        await self.signed.close()
        self.store.close()

    async def close_sockets(self) -> None:
        """Close every open stream; their sessions end and their recordings are finalised."""
        await self.streams.shut_down()

    # -- answer XML ---------------------------------------------------------------------------

    def _base_url(self, request: web.Request) -> str:
        """``http(s)://host`` the carrier reaches us at: the public URL, else the request's, or
        with ``trust_proxy`` the one a proxy in front forwards (``X-Forwarded-Proto``/``-Host``).
        """
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        if not self.settings.trust_proxy:  # else whoever sends the request picks the URL
            return f"{request.scheme}://{checked_host(request.host)}"
        scheme = _first_forwarded(request, "X-Forwarded-Proto") or request.scheme
        host = _first_forwarded(request, "X-Forwarded-Host") or request.host
        return f"{scheme}://{checked_host(host)}"

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

    def answer_xml(self, stream_url: str, call_uuid: str | None) -> str:
        """The answer XML pointing the call ``call_uuid`` at ``stream_url`` (with its stream
        token, if tokens are on): for a media socket served elsewhere than :meth:`answer` knows."""
        query = urlencode(self.admission.stream_query(call_uuid))
        url = urlunsplit(urlsplit(stream_url)._replace(query=query))
        return render(Response.of(self._stream_element(url, None)))

    async def answer(self, request: web.Request) -> web.Response:
        try:
            fields = await self.signed.answer_fields(request, self._base_url(request))
        except CallbackError as exc:
            return web.Response(status=exc.status, text=f"{exc}\n")
        base = urlsplit(self._base_url(request))
        ws_scheme = "wss" if base.scheme == "https" else "ws"
        call_uuid = fields.get("CallUUID") or None
        if self.streams.answered is not None:
            self.streams.answered.note(fields)
        query = urlencode(self.admission.stream_query(call_uuid))
        if self.media_port is None:
            stream_url = urlunsplit((ws_scheme, base.netloc, base.path + "/stream", query, ""))
        else:
            netloc = _with_port(base, self.media_port)
            stream_url = urlunsplit((ws_scheme, netloc, "/stream", query, ""))
        webhook_url = urlunsplit((base.scheme, base.netloc, base.path + "/webhook", "", ""))
        xml = render(Response.of(self._stream_element(stream_url, webhook_url)))
        log.info(
            "call %s: answered with a stream to %s",
            loggable(call_uuid) if call_uuid else "-",
            loggable(redact(stream_url), limit=None),  # the call id in it is percent-encoded
        )
        return web.Response(text=xml, content_type="application/xml")

    # -- the media socket ---------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        return await serve_stream(self.streams, request, socket_limits(self.settings))

    # -- pages --------------------------------------------------------------------------------

    async def calls(self, request: web.Request) -> web.Response:
        return await call_page(self.store, request)

    async def call(self, request: web.Request) -> web.Response:
        return await one_call(self.store, request)

    async def stats(self, _request: web.Request) -> web.Response:
        body = {
            "server": f"vobiz-stream {__version__}",
            "open_streams": len(self.streams.open),
            "frames": self.latency.frames,
            "handling_latency_ms": self.latency.summary(),
            "status_callbacks": self.callbacks.counters.snapshot(),
        }
        if self.outlet.uploads is not None:
            body["uploads"] = self.outlet.uploads.counters()
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def admission_counters(self, _request: web.Request) -> web.Response:
        body = orjson.dumps(self.admission.counters())
        return web.Response(body=body, content_type="application/json")

    async def healthz(self, _request: web.Request) -> web.Response:
        body = {"status": "draining" if self.draining else "ok", "version": __version__}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _with_port(base: SplitResult, port: int) -> str:
    """``base``'s host with another port (the picows media socket's)."""
    host = base.hostname or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _first_forwarded(request: web.Request, header: str) -> str | None:
    """The first value of a proxy header; a chain of proxies appends theirs after it."""
    value = request.headers.get(header, "").split(",")[0].strip()
    return value or None


def stream_endpoint(settings: Settings, handler: Handler | None = None) -> AsgiStreamEndpoint:
    """The media socket as an ASGI app, to mount in a Starlette or FastAPI app: the same
    admission, sessions, recordings and store as :func:`serve` (``settings`` as
    :func:`~vobiz_stream.app.config.load_settings` gives them). It holds the data folder's lock
    (a second server on the same folder stops here with an error) until it is closed."""
    data_lock = DataDirLock(settings.data_dir)
    data_lock.acquire()
    try:
        server = StreamServer(fit_max_calls(settings), handler)
    except BaseException:
        data_lock.release()
        raise

    async def close() -> None:
        try:
            await server.close()
        finally:
            data_lock.release()
            log.info("stream endpoint closed")

    log.info(
        "vobiz-stream %s stream endpoint (ASGI) ready; data in %s", __version__, settings.data_dir
    )
    return AsgiStreamEndpoint(
        server.streams, socket_limits(settings), answer_xml=server.answer_xml, on_close=close
    )


async def serve(
    settings: Settings,
    handler: Handler | None = None,
    *,
    supervisor_pid: int | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain: refuse new calls, let open ones finish for
    ``shutdown_grace`` seconds, close the rest (finalising every recording), and exit.

    With ``supervisor_pid`` this is a worker of ``serve --workers`` (:mod:`.workers`): the
    supervisor holds the data folder's lock, and the ports are shared with the other workers."""
    data_lock = DataDirLock(settings.data_dir)
    if supervisor_pid is None:
        data_lock.acquire()  # before anything touches the folder: a second server stops here
    settings = fit_max_calls(settings)
    server = StreamServer(settings, handler)
    server.reuse_port = supervisor_pid is not None
    # aiohttp's keep-alive timer (since 3.14.4) also closes a connection whose first request never
    # completes (half-sent headers): bounded by start_timeout like a socket that sends no start.
    runner = web.AppRunner(
        server.app(),
        handle_signals=False,
        access_log=None,
        keepalive_timeout=settings.start_timeout or 75.0,  # 0: off, aiohttp's default 75 s
        auto_decompress=False,  # else any path's gzip body is inflated (60 KB: 60 MB, 170 ms)
    )
    logging.getLogger(AIOHTTP_SERVER_LOGGER).addFilter(MalformedRequests())  # no traceback each
    try:
        await runner.setup()  # starts the picows media socket, if any
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=server.reuse_port)
        await site.start()
    except OSError as exc:
        http_port_failed = runner.server is not None  # else the media socket's, at setup
        await runner.cleanup()
        flag, port = (
            ("--port", settings.port) if http_port_failed else ("--media-port", settings.media_port)
        )
        message = address_in_use(exc, settings.host, port, flag)
        if message is None:
            raise
        raise ConfigError(message) from None
    for line in unsafe_settings(settings):
        log.warning("%s", line)
    data_lock.note(port=runner.addresses[0][1])
    log.info(
        "vobiz-stream %s serving on http://%s:%d (answer: /, stream: /stream, "
        "callbacks: /webhook, calls: /calls, console: /ui); data in %s, calls stored in %s",
        __version__,
        settings.host,
        settings.port,
        settings.data_dir,
        server.store.where,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    side = await SideServices.start(server, stop, supervisor_pid)
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
        await side.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, ValueError):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
        data_lock.release()
        log.info("stopped")
