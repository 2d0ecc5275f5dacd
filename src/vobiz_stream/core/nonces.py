"""The nonces of signed callbacks seen lately, so a captured callback cannot be replayed.

A signature covers the URL (and, in the SDK's reading, the fields) with a nonce the carrier picks
fresh for each request; whoever captured one signed request could otherwise send it again as
often as they like. :class:`NonceWindow` accepts each nonce once within its window (5 minutes) and
forgets it after. Its memory is bounded twice over: each nonce is kept as a 16-byte digest,
whatever its length, and at most ``capacity`` are kept; past that the oldest is forgotten early
(counted in :attr:`NonceWindow.forgotten_early`), since only requests signed with the auth token
reach the window and refusing the carrier's own callbacks would be worse.

Server processes sharing a PostgreSQL call store also claim each nonce this window accepts in
the store (:mod:`vobiz_stream.store.postgres_nonces`), so a replay sent to another process is
refused too; this window stays the first check, free of I/O.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["NONCE_CAPACITY", "NONCE_WINDOW", "NonceWindow", "nonce_digest"]

NONCE_WINDOW = 300.0
"""Seconds a nonce, once accepted, is refused again."""

NONCE_CAPACITY = 50_000
"""Most nonces remembered: 166 signed callbacks a second for 5 minutes, about 9 MB when full."""


class NonceWindow:
    """Nonces accepted within the last ``window`` seconds, at most ``capacity`` of them."""

    def __init__(
        self,
        window: float = NONCE_WINDOW,
        capacity: int = NONCE_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.capacity = capacity
        self.forgotten_early = 0
        """Nonces dropped before their window ended because the memory was full."""
        self._clock = clock
        self._expiries: OrderedDict[bytes, float] = OrderedDict()
        """Digest -> when it may be accepted again; oldest first (all share one window)."""

    def __len__(self) -> int:
        return len(self._expiries)

    def accept(self, nonce: str) -> bool:
        """True the first time ``nonce`` is seen within the window (it is remembered), else
        False: a replay."""
        now = self._clock()
        while self._expiries and next(iter(self._expiries.values())) <= now:
            self._expiries.popitem(last=False)
        key = nonce_digest(nonce)
        if key in self._expiries:
            return False
        if len(self._expiries) >= self.capacity:
            self._expiries.popitem(last=False)
            self.forgotten_early += 1
        self._expiries[key] = now + self.window
        return True

    def forget(self, nonce: str) -> None:
        """Accept ``nonce`` again: its callback was refused after all (it could not be stored,
        and the carrier may retry it as it was)."""
        self._expiries.pop(nonce_digest(nonce), None)


def nonce_digest(nonce: str) -> bytes:
    """The 16 bytes a nonce is kept as, whatever its length (here and in a shared store)."""
    return hashlib.blake2b(nonce.encode("utf-8", "surrogatepass"), digest_size=16).digest()
