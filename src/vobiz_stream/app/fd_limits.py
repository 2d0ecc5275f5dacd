"""File descriptors: as many as the system allows, and no more calls than they can carry.

Every call holds descriptors while it lasts: its media socket and its WAV file, and the
carrier's HTTP connection for the answer and the status callbacks. A server whose ``max_calls``
needs more than the process may open fails at the worst time: past the limit every accept and
every new recording fails with EMFILE ("Too many open files"), for the calls already up too
(their callbacks, their reconnects). So at start the soft ``RLIMIT_NOFILE`` is raised to the hard
limit, and a ``max_calls`` the limit still cannot carry is lowered to what it can: the call past
that cap is refused with 503, which a carrier retries elsewhere.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, replace

from vobiz_stream.app.config import Settings

log = logging.getLogger("vobiz_stream.app.server")

DESCRIPTORS_PER_CALL = 3
"""The media socket, the WAV file, and the carrier's HTTP connection (answer, callbacks)."""
RESERVED_DESCRIPTORS = 64
"""For the process itself: standard streams, the database and its journal, the webhook log, the
listening sockets, the event loop's own, and the pages (/healthz, /calls) served meanwhile."""
_MOST_SOFT_LIMIT = 1 << 20
"""The soft limit asked for when the hard one is unlimited (Linux refuses more than nr_open)."""
_FALLBACK_SOFT_LIMITS = (1 << 16, 10240)
"""Lower soft limits to try when the system refuses the hard one (macOS caps a process at
``kern.maxfilesperproc``, often 10240 or more, whatever the hard limit says)."""


@dataclass(frozen=True)
class DescriptorBudget:
    """What the process may open, and how many calls that carries."""

    soft_limit: int
    """The soft limit after raising it (the most descriptors the process may open)."""
    raised_from: int | None
    """The soft limit before, if it was raised."""
    call_cap: int
    """The most concurrent calls the descriptors carry."""


def raise_descriptor_limit() -> tuple[int, int | None]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (or, where the system refuses that, as
    far as it allows); the soft limit now and before (None when it was not raised)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft, None
    highest = _MOST_SOFT_LIMIT if hard == resource.RLIM_INFINITY else hard
    for wanted in (highest, *_FALLBACK_SOFT_LIMITS):
        if soft < wanted <= highest:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            except (ValueError, OSError):
                continue
            return wanted, soft
    return soft, None


def calls_within(soft_limit: int) -> int:
    """The most concurrent calls ``soft_limit`` descriptors carry (at least 1)."""
    return max(1, (soft_limit - RESERVED_DESCRIPTORS) // DESCRIPTORS_PER_CALL)


def descriptor_budget() -> DescriptorBudget:
    """Raise the limit (see :func:`raise_descriptor_limit`) and say how many calls it carries."""
    soft, before = raise_descriptor_limit()
    if soft == resource.RLIM_INFINITY:
        soft = _MOST_SOFT_LIMIT
    return DescriptorBudget(soft, before, calls_within(soft))


def fit_max_calls(settings: Settings) -> Settings:
    """``settings`` with ``max_calls`` lowered to what the file descriptor limit carries (after
    raising the soft limit to the hard one), saying so in one line when it is."""
    budget = descriptor_budget()
    if budget.raised_from is not None:
        log.info(
            "file descriptor limit raised from %d to %d", budget.raised_from, budget.soft_limit
        )
    wanted = settings.max_calls
    if wanted and wanted <= budget.call_cap:
        return settings
    log.log(
        logging.WARNING if wanted else logging.INFO,
        "max_calls %s needs about %s file descriptors but this process may open %d "
        "(ulimit -n): serving at most %d calls at once; raise the hard limit (ulimit -Hn, "
        "LimitNOFILE= under systemd) to serve more",
        wanted or "0 (no cap)",
        wanted * DESCRIPTORS_PER_CALL + RESERVED_DESCRIPTORS if wanted else "3 per call",
        budget.soft_limit,
        budget.call_cap,
    )
    return replace(settings, max_calls=budget.call_cap)
