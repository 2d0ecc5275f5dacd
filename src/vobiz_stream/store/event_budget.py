"""How many event rows each stream may have stored, and what it had counted instead.

A carrier (or anyone holding a socket) can send thousands of DTMF digits or malformed frames a
second; one row each would grow the store's queue, and the server's memory, without bound. So
each stream keeps the first ``per_kind`` events of each kind as rows; the rest of that kind are
counted, and the counts are written as one ``events_not_stored`` row of the stream when it
closes. Events the store had no room for (its backlog full) are counted there too.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from vobiz_stream.logtext import loggable

log = logging.getLogger("vobiz_stream.store")

NOT_STORED = "events_not_stored"
"""The kind of a stream's summary row: its detail maps each event kind to how many were only
counted."""


@dataclass(slots=True)
class _Tally:
    call_id: str
    stored: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


class EventBudget:
    """Per open stream (by row id): events stored and events only counted, by kind."""

    def __init__(self, per_kind: int) -> None:
        self.per_kind = per_kind
        self._streams: dict[int, _Tally] = {}

    def _tally(self, stream_row: int, call_id: str) -> _Tally:
        tally = self._streams.get(stream_row)
        if tally is None:
            tally = self._streams[stream_row] = _Tally(call_id)
        return tally

    def take(self, stream_row: int, call_id: str, kind: str) -> bool:
        """True if an event of ``kind`` may be stored; else it is counted (and False)."""
        tally = self._tally(stream_row, call_id)
        if tally.stored[kind] < self.per_kind:
            tally.stored[kind] += 1
            return True
        self.skip(stream_row, call_id, kind, f"past the first {self.per_kind} of this stream")
        return False

    def skip(self, stream_row: int, call_id: str, kind: str, why: str) -> None:
        """Count an event of ``kind`` that is not stored; the first of each kind is logged."""
        skipped = self._tally(stream_row, call_id).skipped
        skipped[kind] += 1
        if skipped[kind] == 1:
            log.warning(
                "call %s: %s events %s are counted, not stored (%s row when the stream ends)",
                loggable(call_id),
                loggable(kind),
                why,
                NOT_STORED,
            )

    def settle(self, stream_row: int) -> tuple[str, dict[str, int]] | None:
        """Forget a closed stream; its call id and the counts of events not stored, if any."""
        tally = self._streams.pop(stream_row, None)
        if tally is None or not tally.skipped:
            return None
        return tally.call_id, {str(kind): count for kind, count in tally.skipped.items()}
