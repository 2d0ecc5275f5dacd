"""Recordings leave the local folder for a bucket once their stream has ended.

The WAV is written locally as always (crash-safe: valid at every flush). When its stream starts,
a pending marker ``<file>.upload`` is written beside it, naming the call; when the stream ends,
the file is queued. A few workers (``concurrency``) put queued files into the bucket on threads
of their own, so the event loop and the live calls never wait for S3. After an upload the
object's size is read back (HEAD): only when it equals the file's are the file and its marker
deleted and the recording announced as saved. A failure keeps both and retries the file with
exponential backoff (``first_retry`` doubling up to ``longest_retry``), for as long as the server
runs. A marker still there at the next start (a crash, a stop with uploads pending, a recording
cut short by a crash) queues its file again.

Failures are logged once per kind (``refused``: credentials or bucket; ``unreachable``;
``failed``) until an upload works again, which is logged too; every failure is counted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from vobiz_stream.logtext import loggable
from vobiz_stream.recordings.bucket import Bucket, ObjectStoreError

__all__ = ["PENDING_SUFFIX", "RecordedStream", "RecordingSink", "SavedRecording", "Uploads"]

log = logging.getLogger("vobiz_stream.recordings")

PENDING_SUFFIX = ".upload"
"""A recording ``x.wav`` with ``x.wav.upload`` beside it is still to be uploaded."""

MARKER_BYTES = 4096
"""The most of a marker that is read: it holds a call id, a stream id and a row."""


@dataclass(frozen=True)
class RecordedStream:
    """A stream's recording file and the call it belongs to."""

    path: Path
    call_id: str
    stream_id: str | None = None
    stream_row: int | None = None


@dataclass(frozen=True)
class SavedRecording:
    """A recording in its final place: ``location`` is an ``s3://`` URL or a local path."""

    stream: RecordedStream
    location: str
    size: int


SavedHook = Callable[[SavedRecording], None]


class RecordingSink(Protocol):
    """Told of each recording when its file is created and when it is final."""

    def opened(self, stream: RecordedStream) -> None: ...

    def finished(self, stream: RecordedStream) -> None: ...


class Uploads:
    """The upload queue of one server: markers, workers, retries and counters."""

    def __init__(
        self,
        bucket: Bucket,
        folder: Path,
        on_saved: SavedHook,
        *,
        concurrency: int = 2,
        first_retry: float = 1.0,
        longest_retry: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.folder = folder
        self._on_saved = on_saved
        self._concurrency = max(1, concurrency)
        self._first_retry = first_retry
        self._longest_retry = longest_retry
        self._queue: asyncio.Queue[RecordedStream] = asyncio.Queue()
        self._threads = concurrent.futures.ThreadPoolExecutor(
            self._concurrency, thread_name_prefix="vobiz-upload"
        )
        self._workers: list[asyncio.Task[None]] = []
        self._reported: set[str] = set()
        """Kinds of failure logged since the last upload that worked."""
        self.backlog = 0
        """Recordings queued or uploading."""
        self.uploaded = 0
        self.bytes_uploaded = 0
        self.failures = 0
        """Upload attempts that failed (each retry counts)."""

    # -- called by the server -----------------------------------------------------------------

    @property
    def started(self) -> bool:
        return bool(self._workers)

    def start(self) -> int:
        """Start the workers and queue every recording a previous run left pending; returns
        how many. Call it on the event loop, before any stream starts."""
        resumed = 0
        for marker in sorted(self.folder.glob(f"*.wav{PENDING_SUFFIX}")):
            stream = _read_marker(marker)
            if stream is None:
                continue
            self._enqueue(stream)
            resumed += 1
        if resumed:
            log.info(
                "%d recording(s) of a previous run queued for upload to %s",
                resumed,
                self.bucket.folder,
            )
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(self._concurrency)]
        return resumed

    def opened(self, stream: RecordedStream) -> None:
        """A recording was created: mark it pending, so a crash cannot strand it."""
        marker = _marker_of(stream.path)
        details = {
            "call_id": stream.call_id,
            "stream_id": stream.stream_id,
            "stream_row": stream.stream_row,
        }
        try:
            marker.write_bytes(orjson.dumps(details))
        except OSError as exc:  # the upload still happens at the end; only a crash strands it
            log.warning(
                "call %s: cannot mark %s for upload: %s", loggable(stream.call_id), marker.name, exc
            )

    def finished(self, stream: RecordedStream) -> None:
        """A recording is final: queue it for upload."""
        self._enqueue(stream)

    async def close(self) -> None:
        """Stop the workers; what is not uploaded yet keeps its marker for the next start."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        self._threads.shutdown(wait=False, cancel_futures=True)

    def counters(self) -> dict[str, int]:
        return {
            "backlog": self.backlog,
            "uploaded": self.uploaded,
            "bytes_uploaded": self.bytes_uploaded,
            "failures": self.failures,
        }

    # -- the workers --------------------------------------------------------------------------

    def _enqueue(self, stream: RecordedStream) -> None:
        self.backlog += 1
        self._queue.put_nowait(stream)

    async def _work(self) -> None:
        while True:
            stream = await self._queue.get()
            try:
                await self._upload_until_done(stream)
            finally:
                self.backlog -= 1

    async def _upload_until_done(self, stream: RecordedStream) -> None:
        loop = asyncio.get_running_loop()
        delay = self._first_retry
        while True:
            try:
                saved = await loop.run_in_executor(self._threads, self._upload, stream)
            except ObjectStoreError as exc:
                self.failures += 1
                self._report(exc, stream)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # spread the retries
                delay = min(delay * 2, self._longest_retry)
                continue
            break
        if saved is None:
            return
        if self._reported:
            log.info(
                "uploads to %s work again (%d failed attempt(s) so far)",
                self.bucket.folder,
                self.failures,
            )
            self._reported.clear()
        self.uploaded += 1
        self.bytes_uploaded += saved.size
        log.info(
            "call %s: recording saved to %s (%d bytes)",
            loggable(stream.call_id),
            saved.location,
            saved.size,
        )
        self._on_saved(saved)

    def _upload(self, stream: RecordedStream) -> SavedRecording | None:
        """On a worker thread: put the file, confirm its size, delete it and its marker."""
        path = stream.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            log.warning(
                "call %s: recording %s is gone; nothing to upload",
                loggable(stream.call_id),
                path.name,
            )
            _marker_of(path).unlink(missing_ok=True)
            return None
        stored = self.bucket.upload(path, path.name)
        if stored != size:
            raise ObjectStoreError(
                "failed",
                f"{self.bucket.folder.url(path.name)} holds {stored} bytes, the file"
                f" {size}: uploading it again",
            )
        path.unlink()
        _marker_of(path).unlink(missing_ok=True)  # last: a crash before it re-checks, no loss
        return SavedRecording(stream, self.bucket.folder.url(path.name), size)

    def _report(self, exc: ObjectStoreError, stream: RecordedStream) -> None:
        if exc.kind in self._reported:
            return
        self._reported.add(exc.kind)
        advice = (
            ""
            if exc.kind != "refused"
            else "; recordings stay in the local folder until it is fixed and the server restarted"
        )
        log.error(
            "call %s: recording %s not uploaded, kept locally and retried: %s%s",
            loggable(stream.call_id),
            stream.path.name,
            loggable(str(exc), 400),
            advice,
        )


def _marker_of(path: Path) -> Path:
    return path.with_name(path.name + PENDING_SUFFIX)


def _read_marker(marker: Path) -> RecordedStream | None:
    """The stream a marker names; None (and the marker removed) when its file is gone."""
    recording = marker.with_name(marker.name.removesuffix(PENDING_SUFFIX))
    if not recording.exists():
        marker.unlink(missing_ok=True)  # uploaded and deleted just before a crash
        return None
    try:
        with marker.open("rb") as file:
            details = orjson.loads(file.read(MARKER_BYTES))
        call_id = str(details["call_id"])
        stream_id = details.get("stream_id")
        row = details.get("stream_row")
        return RecordedStream(
            recording,
            call_id,
            None if stream_id is None else str(stream_id),
            row if isinstance(row, int) else None,
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "pending upload marker %s unreadable (%s): uploading %s without its call",
            marker.name,
            loggable(str(exc)),
            recording.name,
        )
        return RecordedStream(recording, "unknown-call")
