"""How many log lines a stream's carrier-sent events may cost.

A carrier, or anyone holding a socket, can send thousands of ``dtmf``, ``playedStream`` or
``clearedAudio`` frames a second; one log line each grows the log by more than the frame's own
size, without bound. So each stream logs the first :data:`LOGGED_PER_KIND` of each such kind, then
says once that the rest are not logged. The store keeps and counts them as before
(:mod:`vobiz_stream.event_budget`), so nothing is lost but the log lines.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

__all__ = ["CARRIER_SENT", "LOGGED_PER_KIND", "LogBudget"]

log = logging.getLogger("vobiz_stream.app.session")

LOGGED_PER_KIND = 100
"""Log lines per kind and stream: as many as the store keeps rows."""
CARRIER_SENT = frozenset({"dtmf", "checkpoint_played", "cleared", "unexpected_cleared"})
"""The kinds a peer can send as often as it likes; others are paced by the call itself."""


class LogBudget:
    """Per stream: whether one more event of a kind may have its log line."""

    def __init__(self, per_kind: int = LOGGED_PER_KIND) -> None:
        self.per_kind = per_kind
        self._logged: Counter[str] = Counter()

    def allows(self, kind: str, label: Callable[[], str]) -> bool:
        """True for the first ``per_kind`` events of a :data:`CARRIER_SENT` kind (and any other);
        past them False, and the first refusal logs that the rest go unlogged (``label``: the
        call's, escaped)."""
        if kind not in CARRIER_SENT:
            return True
        count = self._logged[kind] = self._logged[kind] + 1
        if count == self.per_kind + 1:
            log.warning(
                "call %s: more than %d %s events: the rest of this stream's are not logged "
                "(the store counts them)",
                label(),
                self.per_kind,
                kind,
            )
        return count <= self.per_kind
