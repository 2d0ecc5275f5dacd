"""Reads of the call store on a thread of their own, so the event loop never waits for one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from vobiz_stream.closing import Closeable
from vobiz_stream.store.interface import StoreEngine

__all__ = ["CallReader"]

_Result = TypeVar("_Result")


class CallReader(Closeable):
    """Runs reads of a call store on one thread, with a store engine of that thread's own
    (opened by ``open_store`` at the first read): reads never wait on the event loop's thread
    nor hold it up, and they run one at a time, in order."""

    def __init__(self, open_store: Callable[[], StoreEngine]) -> None:
        self._open_store = open_store
        self._store: StoreEngine | None = None
        """Used on the reading thread only (a SQLite connection belongs to its thread)."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vobiz-stream-reads")

    async def read(self, read: Callable[[StoreEngine], _Result]) -> _Result:
        """``read(store)`` on the reading thread; raises what it raises (:class:`StoreError`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._on_thread, read)

    def _on_thread(self, read: Callable[[StoreEngine], _Result]) -> _Result:
        if self._store is None:
            self._store = self._open_store()
        return read(self._store)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Finish the reads under way, close the connection and the thread; safe twice."""
        try:
            self._thread.submit(self._close_store)
        except RuntimeError:  # already shut down
            return
        self._thread.shutdown(wait=True)
