"""``recording.saved`` posted as JSON to the operator's ``--recording-webhook`` URL.

Signed like the carrier signs its callbacks when the server has the account's auth token: an
``X-Vobiz-Signature-V3`` over ``<URL>.<nonce>`` with the nonce in ``X-Vobiz-Signature-V3-Nonce``
(the body is not covered: use HTTPS). A post that fails (no answer, an error status) is tried
again ``attempts`` times in all with doubling waits; at most ``max_pending`` posts wait at once,
and one past that is dropped and counted. Nothing here ever delays a call: posts run as their own
tasks and a failure is logged once until a post works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping

import aiohttp
import orjson

from vobiz_stream.core.signatures import sign_v3
from vobiz_stream.logtext import loggable

__all__ = ["SavedNotices"]

log = logging.getLogger("vobiz_stream.recordings")


class SavedNotices:
    """Posts to one URL, bounded in number, attempts and time."""

    def __init__(
        self,
        url: str,
        auth_token: str | None = None,
        *,
        attempts: int = 5,
        first_retry: float = 1.0,
        timeout: float = 10.0,
        max_pending: int = 1000,
    ) -> None:
        self.url = url
        self._auth_token = auth_token
        self._attempts = max(1, attempts)
        self._first_retry = first_retry
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: aiohttp.ClientSession | None = None
        self._failing = False
        self.posted = 0
        self.failed = 0
        """Notices given up after every attempt failed."""
        self.dropped = 0
        """Notices not even tried: ``max_pending`` were waiting already."""

    def post(self, notice: Mapping[str, object]) -> None:
        """Post ``notice`` in the background (call on the event loop)."""
        if len(self._tasks) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1:
                log.error(
                    "recording webhook %s is far behind: notices are being dropped",
                    loggable(self.url, 200),
                )
            return
        task = asyncio.get_running_loop().create_task(self._deliver(orjson.dumps(notice)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float = 2.0) -> None:
        """Give posts under way ``grace`` seconds, cancel the rest, close the client."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client is not None:
            await self._client.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._auth_token:
            nonce = f"{secrets.randbelow(10**20):020d}"
            headers["X-Vobiz-Signature-V3"] = sign_v3(self._auth_token, self.url, nonce)
            headers["X-Vobiz-Signature-V3-Nonce"] = nonce
        return headers

    async def _deliver(self, body: bytes) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=self._timeout)
        delay = self._first_retry
        problem = ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                async with self._client.post(self.url, data=body, headers=self._headers()) as reply:
                    if reply.status < 300:
                        self.posted += 1
                        if self._failing:
                            self._failing = False
                            log.info("recording webhook %s answers again", loggable(self.url, 200))
                        return
                    problem = f"answered {reply.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        self.failed += 1
        if not self._failing:
            self._failing = True
            log.error(
                "recording webhook %s: notice not delivered after %d attempts (%s);"
                " the event is still in the call's events",
                loggable(self.url, 200),
                self._attempts,
                loggable(problem, 200),
            )
