"""Who may open a media socket: per-call stream tokens, a cap on concurrent calls, a cap per IP.

A transport asks before it accepts a WebSocket upgrade, and refuses with the status it is given::

    decision = admission.admit(request.query, peer_ip)
    if isinstance(decision, Refused):
        return http_response(decision.status, decision.message)
    try:
        ...  # run the stream; decision.call_id is the call the socket was admitted for
    finally:
        decision.release()

Nothing here does I/O, so the aiohttp WebSocket of :mod:`vobiz_stream.app.server` and any other
transport share one set of rules and one set of counters.

**Stream tokens.** With a stream secret, the answer XML's socket URL carries
``?call=<call id>&token=<expires>.<signature>`` (:meth:`Admission.stream_query`): ``expires`` is
Unix seconds, ``signature`` the unpadded base64url HMAC-SHA256, keyed by the secret, of
``vobiz-stream-token/1``, the call id and ``expires`` joined by newlines. So a socket is accepted
only for a call this server answered, until the token expires; the comparison is constant-time.
The expiry bounds every socket of the call, reconnects (``maxRetries``) included, so ``token_ttl``
must cover the longest call that may reconnect. Refusals: no token 401, a token that is not of
that form 401, a signature that does not match the call (or a URL that names no call) 403,
expired 403.

A token admits its own call only: an answer request that names no call gets a socket URL without
a token (its socket is refused), and a socket admitted for call X whose ``start`` names another
call is ended with close code 1008 (:meth:`Admission.refuse_start`, counted as
``call_mismatch``): the URL's call is checked at the upgrade, the ``start``'s once it arrives.

**Caps.** At most ``max_calls`` sockets at once (503 beyond), and ``max_calls_per_ip`` from one
peer address (429 beyond); 0 means no cap. Carriers send many calls from few media servers, and a
reverse proxy makes every peer the proxy, so the per-IP cap is off unless configured.

Every decision is counted (:meth:`Admission.counters`); refusals are logged at most once per
second per reason, so a flood of bad sockets cannot flood the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from vobiz_stream.app.config import Settings
from vobiz_stream.logtext import loggable

__all__ = [
    "CALL_PARAMETER",
    "TOKEN_PARAMETER",
    "Admission",
    "Admitted",
    "Refusal",
    "Refused",
    "StreamTokens",
]

log = logging.getLogger("vobiz_stream.app.admission")

CALL_PARAMETER = "call"
TOKEN_PARAMETER = "token"
AUTO_SECRET = "auto"
"""``stream_secret = "auto"``: a random secret per process (tokens die with the process)."""
MIN_SECRET_LENGTH = 16

_CONTEXT = b"vobiz-stream-token/1"
_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
"""``<expires>.<signature>``: Unix seconds, then 32 bytes in unpadded base64url."""
_LOG_EVERY = 1.0
"""Seconds between two log lines about refusals for one reason."""


class Refusal(StrEnum):
    """Why a socket was refused."""

    TOKEN_MISSING = "token_missing"
    TOKEN_MALFORMED = "token_malformed"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    AT_CAPACITY = "at_capacity"
    PEER_LIMIT = "peer_limit"
    CALL_MISMATCH = "call_mismatch"
    """The socket's ``start`` named another call than the one its token admits."""
    START_TIMEOUT = "start_timeout"
    """Admitted, then closed: it sent no ``start`` within ``start_timeout``."""


_STATUS = {
    Refusal.TOKEN_MISSING: 401,
    Refusal.TOKEN_MALFORMED: 401,
    Refusal.TOKEN_INVALID: 403,
    Refusal.TOKEN_EXPIRED: 403,
    Refusal.AT_CAPACITY: 503,
    Refusal.PEER_LIMIT: 429,
    Refusal.CALL_MISMATCH: 403,
    Refusal.START_TIMEOUT: 408,
}


@dataclass(frozen=True, slots=True)
class Refused:
    """A socket that must not be accepted; ``message`` is safe to log and to send back."""

    reason: Refusal
    message: str

    @property
    def status(self) -> int:
        """The HTTP status to refuse the upgrade with."""
        return _STATUS[self.reason]


class Admitted:
    """One admitted socket's call slot; :meth:`release` it when the socket ends."""

    __slots__ = ("_release", "bound", "call_id", "peer_ip")

    def __init__(
        self,
        call_id: str | None,
        peer_ip: str,
        release: Callable[[Admitted], None],
        *,
        bound: bool = False,
    ) -> None:
        self.call_id = call_id
        """The call the socket was admitted for (checked against its token when tokens are on)."""
        self.peer_ip = peer_ip
        self.bound = bound
        """Whether a token bound the socket to ``call_id``: its ``start`` may name no other."""
        self._release: Callable[[Admitted], None] | None = release

    def release(self) -> None:
        """Give the slot back; later calls do nothing."""
        release, self._release = self._release, None
        if release is not None:
            release(self)


class StreamTokens:
    """Issues and checks the per-call tokens of stream URLs (see the module's docstring)."""

    def __init__(self, secret: bytes, ttl: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"a stream secret needs at least {MIN_SECRET_LENGTH} bytes")
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"StreamTokens(ttl={self.ttl})"  # never the secret

    def _signature(self, call_id: str, expires: str) -> bytes:
        message = b"\n".join((_CONTEXT, call_id.encode("utf-8", "surrogatepass"), expires.encode()))
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=")

    def issue(self, call_id: str) -> str:
        """The token for the sockets of ``call_id``, valid for ``ttl`` seconds from now."""
        expires = str(int(self._clock()) + self.ttl)
        return f"{expires}.{self._signature(call_id, expires).decode('ascii')}"

    def check(self, call_id: str, token: str | None) -> Refused | None:
        """None when ``token`` admits a socket for ``call_id`` now, else why not."""
        if not token:
            return Refused(
                Refusal.TOKEN_MISSING,
                "no stream token: connect to the socket URL of this server's answer XML, "
                f"which carries ?{TOKEN_PARAMETER}=",
            )
        form = _TOKEN.fullmatch(token)
        if form is None:
            return Refused(Refusal.TOKEN_MALFORMED, "the stream token is not <expires>.<signature>")
        if not call_id:
            return Refused(
                Refusal.TOKEN_INVALID,
                f"the socket URL names no call (?{CALL_PARAMETER}=): a stream token admits the "
                "sockets of one call only",
            )
        expires, signature = form.groups()
        if not hmac.compare_digest(self._signature(call_id, expires), signature.encode("ascii")):
            return Refused(
                Refusal.TOKEN_INVALID,
                "the stream token does not match this call (another call id, or another "
                "server's secret)",
            )
        late = int(self._clock()) - int(expires)
        if late > 0:
            return Refused(
                Refusal.TOKEN_EXPIRED,
                f"the stream token expired {late} s ago; tokens last token_ttl={self.ttl} s "
                "from the answer",
            )
        return None


class Admission:
    """The admission rules of one server process, and what they decided so far."""

    def __init__(
        self,
        tokens: StreamTokens | None = None,
        max_calls: int = 0,
        max_calls_per_ip: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.max_calls = max_calls
        self.max_calls_per_ip = max_calls_per_ip
        self._monotonic = monotonic
        self._open = 0
        self._per_ip: Counter[str] = Counter()
        self._admitted_total = 0
        self._refused: Counter[Refusal] = Counter()
        self._logged: dict[Refusal, tuple[float, int]] = {}
        """Per reason: when a refusal was last logged, and how many were not since."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        """The rules ``settings`` ask for (start-up warns when they admit anyone:
        :func:`vobiz_stream.app.guard.unsafe_settings`)."""
        secret = settings.stream_secret
        tokens = None
        if secret is not None:
            key = secrets.token_bytes(32) if secret == AUTO_SECRET else secret.encode()
            tokens = StreamTokens(key, settings.token_ttl)
        return cls(tokens, settings.max_calls, settings.max_calls_per_ip)

    @property
    def open_calls(self) -> int:
        return self._open

    def stream_query(self, call_id: str | None) -> dict[str, str]:
        """The query parameters of the socket URL served for ``call_id``. None (an answer request
        that names no call): no token, so with tokens on its socket is refused."""
        if call_id is None:
            return {}
        query = {CALL_PARAMETER: call_id}
        if self.tokens is not None:
            query[TOKEN_PARAMETER] = self.tokens.issue(call_id)
        return query

    def admit(self, query: Mapping[str, str], peer_ip: str) -> Admitted | Refused:
        """Decide on a socket from ``peer_ip`` whose URL has ``query``; hold a slot if admitted."""
        call_id = query.get(CALL_PARAMETER) or None
        refused = self._refusal(call_id, query.get(TOKEN_PARAMETER), peer_ip)
        if refused is not None:
            self._refused[refused.reason] += 1
            self._log(refused, call_id, peer_ip)
            return refused
        self._open += 1
        self._per_ip[peer_ip] += 1
        self._admitted_total += 1
        return Admitted(call_id, peer_ip, self._release, bound=self.tokens is not None)

    def refuse_start(self, admitted: Admitted, named_call_id: str) -> Refused:
        """``admitted``'s socket sent a ``start`` naming ``named_call_id``, not the call its token
        admits: count it, log it (as any refusal), and say why, for the socket's close frame."""
        refused = Refused(
            Refusal.CALL_MISMATCH,
            f"the start names call {loggable(named_call_id)} but the stream token admits "
            "another call only; ended the socket",
        )
        self._refused[refused.reason] += 1
        self._log(refused, admitted.call_id, admitted.peer_ip)
        return refused

    def _refusal(self, call_id: str | None, token: str | None, peer_ip: str) -> Refused | None:
        if self.tokens is not None:
            refused = self.tokens.check(call_id or "", token)
            if refused is not None:
                return refused
        if self.max_calls and self._open >= self.max_calls:
            return Refused(
                Refusal.AT_CAPACITY,
                f"the server is at its cap of {self.max_calls} concurrent calls (max_calls); "
                "retry later or on another server",
            )
        if self.max_calls_per_ip and self._per_ip[peer_ip] >= self.max_calls_per_ip:
            return Refused(
                Refusal.PEER_LIMIT,
                f"{peer_ip} already has {self.max_calls_per_ip} open calls (max_calls_per_ip)",
            )
        return None

    def note_start_timeout(self, admitted: Admitted, message: str) -> None:
        """An admitted socket is being closed for sending no ``start`` in time: counted and
        logged with the refusals (at most once a second); its slot is given back as it ends."""
        refused = Refused(Refusal.START_TIMEOUT, message)
        self._refused[refused.reason] += 1
        self._log(refused, admitted.call_id, admitted.peer_ip)

    def _release(self, admitted: Admitted) -> None:
        self._open -= 1
        self._per_ip[admitted.peer_ip] -= 1
        if self._per_ip[admitted.peer_ip] <= 0:
            del self._per_ip[admitted.peer_ip]  # the table holds only peers with open calls

    def _log(self, refused: Refused, call_id: str | None, peer_ip: str) -> None:
        now = self._monotonic()
        last, unlogged = self._logged.get(refused.reason, (-_LOG_EVERY, 0))
        if now - last < _LOG_EVERY:
            self._logged[refused.reason] = (last, unlogged + 1)
            return
        self._logged[refused.reason] = (now, 0)
        more = (
            f" (and {unlogged} more refused for this since the last such line)" if unlogged else ""
        )
        log.warning(
            "call %s: refused a media socket from %s with %s: %s%s",
            loggable(call_id) if call_id else "-",  # from the wire: no line breaks
            peer_ip or "-",
            "close code 1008" if refused.reason is Refusal.CALL_MISMATCH else refused.status,
            refused.message,
            more,
        )

    def counters(self) -> dict[str, object]:
        """What :meth:`admit` and :meth:`refuse_start` decided so far, for ``/admission``."""
        return {
            "open_calls": self._open,
            "max_calls": self.max_calls,
            "max_calls_per_ip": self.max_calls_per_ip,
            "tokens": self.tokens is not None,
            "admitted": self._admitted_total,
            "refused": {reason.value: self._refused[reason] for reason in Refusal},
        }
