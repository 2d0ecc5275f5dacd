"""Recordings leave the local folder for a bucket once their stream has ended.

The WAV is written locally as always (crash-safe: valid at every flush). When its stream starts,
a pending marker ``<file>.upload`` is written beside it, naming the call; when the stream ends,
the file is queued. A few uploader processes (``concurrency``; spawned, with a lower CPU
priority) put queued files into the bucket, so the live calls never wait for S3 nor share the
interpreter with boto3: on a busy core their event loop comes first. After an upload the
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
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from vobiz_stream.logtext import loggable
from vobiz_stream.recordings.bucket import Bucket, ObjectStoreError
from vobiz_stream.recordings.location import ObjectFolder, S3Access

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
        self._processes = self._new_processes()
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
                continue  # uploaded, or still being recorded by another live process
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
            "pid": os.getpid(),
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
        self._processes.shutdown(wait=False, cancel_futures=True)

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

    def _new_processes(self) -> concurrent.futures.ProcessPoolExecutor:
        bucket = self.bucket
        return concurrent.futures.ProcessPoolExecutor(
            self._concurrency,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded server
            initializer=_start_uploader,
            initargs=(bucket.folder, bucket.access, bucket.timeout, os.getpid()),
        )

    async def _upload_until_done(self, stream: RecordedStream) -> None:
        delay = self._first_retry
        while True:
            try:
                saved = await self._upload(stream)
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

    async def _upload(self, stream: RecordedStream) -> SavedRecording | None:
        """Put the file (in an uploader process), confirm its size, delete it and its marker."""
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
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(self._processes, _put, path, path.name)
        except concurrent.futures.process.BrokenProcessPool:
            self._processes = self._new_processes()  # an uploader died (killed): new ones
            raise ObjectStoreError("failed", "an uploader process died; uploading again") from None
        if stored != size:
            raise ObjectStoreError(
                "failed",
                f"{self.bucket.folder.url(path.name)} holds {stored} bytes, the file"
                f" {size}: uploading it again",
            )
        # Here, on the loop (two unlinks): a stop cannot come between deleting and announcing.
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


_UPLOADER: Bucket | None = None
"""The bucket of this uploader process (set by :func:`_start_uploader`)."""

UPLOADER_PARENT_CHECK_SECONDS = 0.5
"""How often an uploader process checks that the server that started it still runs."""

UPLOADER_NICENESS = 19
"""How much lower than the server's the uploader processes' CPU priority is: on a busy core
the calls' event loop comes first."""


def _start_uploader(folder: ObjectFolder, access: S3Access, timeout: float, server: int) -> None:
    """In a new uploader process: lower its priority, open its own connection to the bucket,
    and end it when the server is gone (even killed), mid-upload or not."""
    global _UPLOADER  # noqa: PLW0603 (one bucket per uploader process)
    with contextlib.suppress(OSError):
        os.nice(UPLOADER_NICENESS)
    _UPLOADER = Bucket(folder, access, timeout)
    threading.Thread(target=_end_with, args=(server,), daemon=True).start()


def _end_with(server: int) -> None:
    """Exit this uploader process once ``server`` (the pid of the process that started it) is
    no longer its parent: it has ended, maybe before this one was even up."""
    while os.getppid() == server:
        time.sleep(UPLOADER_PARENT_CHECK_SECONDS)
    os._exit(0)  # the file and its marker stay: the next start uploads it


def _put(path: Path, name: str) -> int:
    """In an uploader process: :meth:`Bucket.upload`."""
    if _UPLOADER is None:
        raise ObjectStoreError("failed", "the uploader process has no bucket")
    return _UPLOADER.upload(path, name)


def _alive_elsewhere(pid: int) -> bool:
    """Whether ``pid`` is a running process other than this one."""
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def _marker_of(path: Path) -> Path:
    return path.with_name(path.name + PENDING_SUFFIX)


def _read_marker(marker: Path) -> RecordedStream | None:
    """The stream a marker names; None when its file is gone (the marker is removed) or another
    process that is still running writes it (a server sharing the folder)."""
    recording = marker.with_name(marker.name.removesuffix(PENDING_SUFFIX))
    if not recording.exists():
        marker.unlink(missing_ok=True)  # uploaded and deleted just before a crash
        return None
    try:
        with marker.open("rb") as file:
            details = orjson.loads(file.read(MARKER_BYTES))
        writer = details.get("pid")
        if isinstance(writer, int) and _alive_elsewhere(writer):
            return None
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
