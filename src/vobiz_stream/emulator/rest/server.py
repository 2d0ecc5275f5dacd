"""Run the local carrier: its REST API on a port, its calls against the apps' answer URLs."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from vobiz_stream.emulator.load_options import load_audio
from vobiz_stream.emulator.load_script import ScenarioScript
from vobiz_stream.emulator.options import CallOptions
from vobiz_stream.emulator.rest.app import API_PREFIX, auth_failures, carrier_app
from vobiz_stream.emulator.rest.calls import CallBook
from vobiz_stream.emulator.source import CallerSource, EmulatorError, read_caller_audio
from vobiz_stream.logtext import loggable

__all__ = ["CarrierSettings", "run_carrier"]

log = logging.getLogger("vobiz_stream.carrier")


@dataclass(frozen=True)
class CarrierSettings:
    """One local carrier: its account, where it listens, what its callers say."""

    auth_id: str
    auth_token: str
    """Checked on every request (``X-Auth-Token``), and the key that signs the answer requests
    and status callbacks of its calls, as Vobiz signs with the account's token."""
    host: str = "127.0.0.1"
    port: int = 8090
    audio: Path | None = None
    """What every caller says (the call hangs up when it ends); None: a 1 kHz tone."""
    tone_seconds: float = 30.0
    """How long the tone lasts without ``audio``."""
    scenario: Path | None = None
    """A scenario file every caller follows instead of saying ``audio``: each call ends with
    the scenario's verdict (logged, and served at ``/emulator/calls/<call_uuid>/report``)."""
    max_calls: int = 50
    """Calls live at once; one more is refused (429)."""
    call_options: CallOptions = field(default_factory=CallOptions)
    """How each call's carrier behaves (its profile, speed...); from, to and the account come
    from each request."""

    def check(self) -> None:
        if not self.auth_id or not self.auth_token:
            raise EmulatorError("the carrier needs an auth id and an auth token")
        if self.max_calls < 1:
            raise EmulatorError(f"max_calls must be at least 1, got {self.max_calls}")
        if not 0 < self.tone_seconds < math.inf:
            raise EmulatorError(f"tone_seconds must be positive, got {self.tone_seconds}")
        if self.audio is not None and self.scenario is not None:
            raise EmulatorError("audio and scenario both say what the caller says: pick one")
        self.call_options.check()

    def caller(self) -> CallerSource:
        if self.audio is not None:
            return read_caller_audio(self.audio)
        return load_audio(None, self.tone_seconds)


async def run_carrier(
    settings: CarrierSettings,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, then hang up the live calls. ``on_ready`` gets the API's
    base URL (with the port bound, when ``port`` is 0)."""
    settings.check()
    caller = settings.caller()
    script = None if settings.scenario is None else await ScenarioScript.prepare(settings.scenario)
    options = dataclasses.replace(
        settings.call_options, account_id=settings.auth_id, auth_token=settings.auth_token
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.http_timeout)
    connector = aiohttp.TCPConnector(limit=0)  # every stream holds a connection
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        book = CallBook(caller, options, max_live=settings.max_calls, http=http, script=script)
        app = carrier_app(book, settings.auth_id, settings.auth_token)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.host, settings.port)
            await site.start()
            port = runner.addresses[0][1]
            host = f"[{settings.host}]" if ":" in settings.host else settings.host
            base = f"http://{host}:{port}{API_PREFIX}"
            log.info(
                "local Vobiz carrier on %s (account %s, profile %s, up to %d live calls%s)",
                base,
                settings.auth_id,
                options.carrier.value,
                settings.max_calls,
                "" if script is None else f", callers follow {loggable(script.scenario.name, 80)}",
            )
            if on_ready is not None:
                on_ready(base)
            await stop.wait()
        finally:
            await book.close()
            await runner.cleanup()
        log.info(
            "local Vobiz carrier stopped: %d calls placed, %d refused (too many live calls), "
            "%d requests refused for their credentials",
            book.placed,
            book.refused,
            auth_failures(app),
        )
