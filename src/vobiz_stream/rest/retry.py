"""When the client tries a request again, and how long it waits first, without I/O.

A 429 (too many requests) or a 503 (unavailable) means the API did not act: any request is tried
again. Another 5xx, or a connection lost after the request went out, may come after the API
acted: only requests that are safe to repeat (``GET``, ``DELETE``) are tried again, never a
``POST`` that could place a second call. A connection that could not be opened sent nothing: any
request is tried again.

The wait is the answer's ``Retry-After`` (seconds, or an HTTP date) when it has one, else an
exponential backoff with jitter; never more than ``max_delay``. An API that asks for a longer
wait gets none: the error says how long it asked for, and the caller decides.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["IDEMPOTENT_METHODS", "NOT_ACTED_STATUSES", "RetryPolicy", "retry_after_seconds"]

IDEMPOTENT_METHODS = frozenset({"GET", "DELETE", "HEAD"})
"""Methods a client may repeat whatever happened to the first try."""
NOT_ACTED_STATUSES = frozenset({429, 503})
"""Statuses that say the API did not act on the request."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (0 or more), or None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried; ``attempts=1`` never retries."""

    attempts: int = 4
    """Tries in all, the first included."""
    base_delay: float = 0.5
    """The backoff's first wait in seconds; each retry doubles it."""
    max_delay: float = 8.0
    """The longest wait before one retry, ``Retry-After`` included."""
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    """A number in [0, 1) per wait: waits are spread over half to all of the backoff, so
    clients refused together do not come back together."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be 1 or more, got {self.attempts}")
        if not 0 <= self.base_delay <= self.max_delay < math.inf:
            raise ValueError(
                "delays must satisfy 0 <= base_delay <= max_delay, "
                f"got {self.base_delay} and {self.max_delay}"
            )

    def retryable(self, method: str, status: int, *, sent: bool = True) -> bool:
        """Whether a try that ended in ``status`` (0: no answer; ``sent`` False: the connection
        never opened) may be tried again."""
        if status in NOT_ACTED_STATUSES or (status == 0 and not sent):
            return True
        if status == 0 or status >= 500:
            return method.upper() in IDEMPOTENT_METHODS
        return False

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try ``attempt + 1`` after try ``attempt`` failed; None when
        no try is left or the API asked for longer than ``max_delay``."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_delay else None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * (0.5 + self.jitter() / 2)
