"""Running a coroutine on the fastest event loop available: uvloop where installed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # uvloop does not build on Windows; asyncio's own loop works too
    uvloop = None  # type: ignore[assignment]

_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on uvloop when it is installed."""
    if uvloop is None:
        return asyncio.run(main)
    return uvloop.run(main)
