"""What the answer request told about a call, kept until its stream starts.

The carrier's answer request carries the call's ``From``, ``To`` and ``Direction``; the live
nested ``start`` does not. :class:`AnsweredCalls` remembers them per ``CallUUID`` so the stream's
call row can show them. Nothing is stored from an answer alone (a stranger can post to the answer
URL): only an admitted stream of that call writes its row. The memory is bounded in entries, in
time and in the size of each value.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_ANSWERED = 10_000
"""Calls remembered at most (the oldest go first): more than answered in a token's lifetime."""
MAX_VALUE_CHARS = 128
"""Longer values (ids, numbers, a direction) are not believed."""


@dataclass(frozen=True)
class CallDetails:
    """Who called whom, and which way, as the answer request said."""

    from_number: str | None
    to_number: str | None
    direction: str | None


class AnsweredCalls:
    """The details of calls answered in the last ``ttl`` seconds, by call id."""

    def __init__(
        self,
        ttl: float,
        capacity: int = MAX_ANSWERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._calls: OrderedDict[str, tuple[float, CallDetails]] = OrderedDict()

    def note(self, fields: Mapping[str, str]) -> None:
        """Remember the answer request's ``From``, ``To`` and ``Direction`` for its ``CallUUID``."""
        call_id = fields.get("CallUUID")
        if not call_id or len(call_id) > MAX_VALUE_CHARS:
            return
        details = CallDetails(
            from_number=_bounded(fields.get("From")),
            to_number=_bounded(fields.get("To")),
            direction=_bounded(fields.get("Direction")),
        )
        self._calls.pop(call_id, None)
        self._calls[call_id] = (self._clock() + self._ttl, details)
        while len(self._calls) > self._capacity:
            self._calls.popitem(last=False)

    def details(self, call_id: str) -> CallDetails | None:
        """What the answer said of ``call_id``, if it was answered within ``ttl`` seconds."""
        now = self._clock()
        while self._calls:  # oldest first: drop what has expired
            oldest, (expires, _) = next(iter(self._calls.items()))
            if expires > now:
                break
            del self._calls[oldest]
        entry = self._calls.get(call_id)
        return None if entry is None else entry[1]


def _bounded(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_VALUE_CHARS else None
