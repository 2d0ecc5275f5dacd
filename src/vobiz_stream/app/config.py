"""Server settings: defaults, a TOML config file, ``VOBIZ_STREAM_*`` variables, flags; last wins.

Each setting has one name used everywhere: ``max_lead`` is ``max_lead = 0.2`` in the config file,
``VOBIZ_STREAM_MAX_LEAD=0.2`` in the environment and ``--max-lead 0.2`` on the command line.
The config file is ``--config PATH``, else ``VOBIZ_STREAM_CONFIG``, else ``vobiz-stream.toml`` in
the working directory if there is one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vobiz_stream.app.advice import missing_scheme, unknown_environment_variables
from vobiz_stream.audio import ByteOrder
from vobiz_stream.errors import ConfigError, StoreError, VobizStreamError
from vobiz_stream.formats import AudioFormat, parse_content_type
from vobiz_stream.recordings import RecordingsError, recordings_target
from vobiz_stream.store.database import database_path
from vobiz_stream.transports.gateway import SocketLimits

ENV_PREFIX = "VOBIZ_STREAM_"
DEFAULT_CONFIG_FILE = "vobiz-stream.toml"

log = logging.getLogger("vobiz_stream.app.config")


@dataclass(frozen=True)
class Settings:
    """Everything ``vobiz-stream serve`` can be told. Defaults record every call."""

    host: str = "127.0.0.1"
    port: int = 3000
    data_dir: Path = Path("data")
    database: str | None = field(default=None, repr=False)
    """Where calls are stored: ``sqlite:///path`` or ``postgresql://...``
    (:mod:`vobiz_stream.store.database`). None: ``vobiz-stream.db`` in ``data_dir``. Not shown
    in the settings' repr: the URL may hold a password."""
    handler: str = "record"
    """``record``, ``echo`` or ``MODULE:FUNCTION`` (an ``async def handler(session)``)."""
    public_url: str | None = None
    """Base URL the carrier reaches this server at (``https://abc.example``); else the request's."""
    # -- the <Stream> element the answer serves
    bidirectional: bool = True
    audio_track: str = "inbound"
    content_type: str = "audio/x-l16;rate=8000"
    stream_timeout: int = 86400
    keep_call_alive: bool = True
    status_callback_url: str | None = None
    """None: this server's own ``/webhook``."""
    status_callback_method: str = "POST"
    extra_headers: str = ""
    """``key=value,key=value``; reach the app only in status callbacks."""
    max_retries: int = 0
    # -- media
    l16_byte_order: str = "auto"
    """``auto`` detects the inbound L16 byte order per stream; ``little``/``big`` force it."""
    outbound_content_type: str | None = None
    """Format of the audio the app plays (``audio/x-l16;rate=16000``); None: the inbound format."""
    max_lead: float = 0.2
    max_message_bytes: int = 1 << 20
    media_transport: str = "aiohttp"
    """``aiohttp``: the media socket on ``port`` with everything else; ``picows``: on its own
    ``media_port``, with less CPU per frame (bench/RESULTS.md); ``asgi``: the ASGI stream
    endpoint under uvicorn on its own ``media_port``."""
    media_port: int = 0
    """Port of the picows or asgi media socket; 0 picks a free one (the answer XML names it)."""
    # -- security and lifecycle
    auth_token: str | None = field(default=None, repr=False)
    """Vobiz auth token: when set, status callbacks must carry a valid V2/V3 signature."""
    admin_token: str | None = field(default=None, repr=False)
    """Bearer token that guards call data and server internals (``/calls``, ``/stats``,
    ``/admission``: every path but the carrier's, :mod:`vobiz_stream.app.guard`). None: open on
    loopback only, refused (403) beyond it or through a proxy or tunnel."""
    verify_answers: bool = False
    """Refuse (403) answer requests without a valid signature made with ``auth_token``. Off by
    default: turn it on once start-up or the log shows your account's answer requests are signed
    (until then anyone who reaches the answer URL can get a stream token for a call id)."""
    trust_proxy: bool = False
    """Believe ``X-Forwarded-Proto``/``-Host`` from a proxy in front (signature URLs, answer XML).
    Off: a stranger could choose the URL a callback signature is checked against."""
    stream_secret: str | None = field(default=None, repr=False)
    """Key of the per-call stream tokens (:mod:`vobiz_stream.app.admission`): a secret of 16+
    characters shared by every server behind one answer URL, ``auto`` for a random one per
    process, or None: tokens off, any socket to ``/stream`` is accepted."""
    token_ttl: int = 3600
    """Seconds a stream token admits sockets after the answer, reconnects included."""
    max_calls: int = 1000
    """Most concurrent calls; more sockets are refused with 503. 0: no cap."""
    max_calls_per_ip: int = 0
    """Most concurrent calls from one peer address (429 beyond). 0: no cap (carriers send many
    calls from few addresses)."""
    heartbeat: float = 5.0
    """Seconds of silence from the carrier before it is pinged; no answer in half that drops the
    socket and finalises the call. 0: never ping."""
    start_timeout: float = 10.0
    """Seconds a new socket (or a half-sent HTTP request) gets to send ``start``; then it is
    closed and its slot freed. 0: wait for ever."""
    send_timeout: float = 10.0
    """Seconds a send to the carrier may wait (it stopped reading) before its socket is dropped.
    0: wait for ever."""
    shutdown_grace: float = 30.0
    """Seconds open calls get to finish after SIGTERM before their recordings are finalised."""
    log_level: str = "INFO"
    # -- workers and metrics
    workers: int = 0
    """Worker processes sharing ``port`` under a supervisor that restarts them
    (:mod:`vobiz_stream.app.workers`); 0: one process, no supervisor. Above 1 needs PostgreSQL."""
    metrics_port: int = 0
    """Port serving ``/metrics`` alone, without the admin token; 0: only ``/metrics`` on
    ``port``, behind the admin token."""
    metrics_host: str = "127.0.0.1"
    """Address of ``metrics_port``: loopback unless the scraper is on another machine."""
    # -- recordings (docs/recordings.md)
    recordings: str | None = None
    """Where finished recordings go: a folder (None: ``data_dir/recordings``) or
    ``s3://bucket/prefix``, uploaded from ``data_dir/recordings`` once each stream ends."""
    s3_endpoint_url: str | None = None
    """The S3-compatible service; None: ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, else
    Amazon S3."""
    s3_region: str | None = None
    """None: ``AWS_REGION``/``AWS_DEFAULT_REGION``, else us-east-1."""
    s3_access_key_id: str | None = field(default=None, repr=False)
    """None: ``AWS_ACCESS_KEY_ID`` (or boto3's own sources)."""
    s3_secret_access_key: str | None = field(default=None, repr=False)
    """None: ``AWS_SECRET_ACCESS_KEY`` (or boto3's own sources)."""
    upload_concurrency: int = 2
    """Recordings uploaded at once, each by an uploader process of lower CPU priority."""
    recording_webhook: str | None = None
    """URL that gets each ``recording.saved`` event as JSON (signed with ``auth_token``)."""

    @property
    def recordings_dir(self) -> Path:
        """Where recordings are written: the ``recordings`` folder, else ``data_dir/recordings``
        (also the staging folder of an ``s3://`` target)."""
        target = recordings_target(self.recordings, self.data_dir / "recordings")
        return target if isinstance(target, Path) else self.data_dir / "recordings"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "vobiz-stream.db"

    @property
    def database_url(self) -> str:
        """The ``database`` setting, or the data folder's SQLite file as a URL."""
        return self.database or f"sqlite:///{self.database_path}"

    @property
    def webhook_log_path(self) -> Path:
        return self.data_dir / "webhook-events.log"

    @property
    def inbound_format(self) -> AudioFormat:
        return parse_content_type(self.content_type)

    @property
    def outbound_format(self) -> AudioFormat | None:
        text = self.outbound_content_type
        return None if text is None else parse_content_type(text)

    @property
    def byte_order(self) -> ByteOrder | None:
        return None if self.l16_byte_order == "auto" else ByteOrder(self.l16_byte_order)


SETTING_NAMES = tuple(field.name for field in fields(Settings))


def _convert(name: str, value: Any) -> Any:
    """Turn a file, environment or flag value into the setting's type, or raise ConfigError."""
    if value is None:
        return None
    default = getattr(Settings(), name)
    kind = type(default) if default is not None else str
    try:
        if kind is bool and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(value)
            return lowered in {"true", "1", "yes"}
        if issubclass(kind, Path):
            return Path(value)
        if kind is int and (
            isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())
        ):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} = {value!r} is not a valid {kind.__name__}") from None


def _validate(settings: Settings) -> Settings:
    try:
        settings.inbound_format  # noqa: B018  (parsing is the check)
        settings.outbound_format  # noqa: B018
    except VobizStreamError as exc:
        raise ConfigError(f"content type setting: {exc}") from None
    if settings.l16_byte_order not in {"auto", "little", "big"}:
        raise ConfigError(
            f"l16_byte_order must be auto, little or big, got {settings.l16_byte_order!r}"
        )
    choices = {
        "audio_track": ("inbound", "outbound", "both"),
        "status_callback_method": ("GET", "POST"),
        "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    }
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            raise ConfigError(
                f"{name} must be one of {', '.join(allowed)}, got {getattr(settings, name)!r}"
            )
    if settings.public_url is not None:
        problem = missing_scheme(settings.public_url, "public_url")
        if problem is not None:
            raise ConfigError(problem)
    if not 0 < settings.port < 65536:
        raise ConfigError(f"port must be 1-65535, got {settings.port}")
    if settings.media_transport not in ("aiohttp", "picows", "asgi"):
        raise ConfigError(
            f"media_transport must be aiohttp, picows or asgi, got {settings.media_transport!r}"
        )
    if not 0 <= settings.media_port < 65536 or settings.media_port == settings.port:
        raise ConfigError(
            f"media_port must be 0 (any free port) or 1-65535 and not the HTTP port "
            f"{settings.port}, got {settings.media_port}"
        )
    _validate_security(settings)
    try:
        database_path(settings.database_url)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    _validate_recordings(settings)
    if not math.isfinite(settings.max_lead) or settings.max_lead < 0.02:
        raise ConfigError(
            f"max_lead must be at least one 20 ms frame (0.02), got {settings.max_lead}"
        )
    return settings


def _validate_recordings(settings: Settings) -> None:
    try:
        recordings_target(settings.recordings, settings.data_dir / "recordings")
    except RecordingsError as exc:
        raise ConfigError(str(exc)) from None
    for name in ("recording_webhook", "s3_endpoint_url"):
        url = getattr(settings, name)
        problem = None if url is None else missing_scheme(url, name)
        if problem is not None:
            raise ConfigError(problem)
    if not 1 <= settings.upload_concurrency <= 32:
        raise ConfigError(
            f"upload_concurrency must be 1-32 uploads at once, got {settings.upload_concurrency}"
        )


def _validate_security(settings: Settings) -> None:
    secret = settings.stream_secret
    if settings.verify_answers and not settings.auth_token:
        raise ConfigError(
            "verify_answers checks answer requests against auth_token: set --auth-token (or "
            "VOBIZ_STREAM_AUTH_TOKEN) too"
        )
    admin = settings.admin_token
    if admin is not None and len(admin) < 16:
        raise ConfigError(  # never the token itself
            f"admin_token has {len(admin)} characters; use at least 16 (a random string)"
        )
    if secret is not None and secret != "auto" and len(secret) < 16:
        raise ConfigError(  # never the secret itself
            f"stream_secret has {len(secret)} characters; use at least 16 (a random string, "
            "the same on every server behind one answer URL), or auto"
        )
    if settings.token_ttl < 1:
        raise ConfigError(f"token_ttl must be at least 1 second, got {settings.token_ttl}")
    for name in ("max_calls", "max_calls_per_ip"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} must be 0 (no cap) or more, got {getattr(settings, name)}")
    for name in ("heartbeat", "send_timeout", "start_timeout"):
        value = getattr(settings, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be 0 (off) or more seconds, got {value}")


def load_settings(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults, the config file, the environment and ``flags`` (None means not given)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (
        Path(environ[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in environ else None
    )
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        values.update(_read_config_file(path))
    for warning in unknown_environment_variables(environ, ENV_PREFIX, (*SETTING_NAMES, "config")):
        log.warning("%s", warning)
    for name in SETTING_NAMES:
        if f"{ENV_PREFIX}{name.upper()}" in environ:
            values[name] = environ[f"{ENV_PREFIX}{name.upper()}"]
    values.update({name: value for name, value in flags.items() if value is not None})
    converted = {name: _convert(name, value) for name, value in values.items()}
    return _validate(dataclasses.replace(Settings(), **converted))


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("serve", data)
    unknown = sorted(set(section) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(SETTING_NAMES)}"
        )
    return dict(section)


def socket_limits(settings: Settings) -> SocketLimits:
    """What every media transport applies to a carrier socket, from ``settings``."""
    return SocketLimits(
        max_message_bytes=settings.max_message_bytes,
        heartbeat=settings.heartbeat,
        send_timeout=settings.send_timeout,
    )
