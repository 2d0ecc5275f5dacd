"""Reading recordings back from wherever they live: :class:`RecordingStore`.

A recording is named by its file name (the last part of a stream's ``recording_path``). The
local store reads the recordings folder. The S3 store reads the local file while it is still
there (the stream is going on, or its upload is pending) and the bucket's object after. Reads of
the bucket block, so they run on a thread; a reader on the event loop awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Protocol

from vobiz_stream.recordings.bucket import Bucket

__all__ = ["BucketRecordings", "LocalRecordings", "RecordingStore", "recording_file_name"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}\.wav")
"""What the server names recordings: letters, digits, ``-``, ``_`` and ``.wav``."""


def recording_file_name(text: str) -> str | None:
    """``text`` if it can be a recording's file name (no folder, no dots but ``.wav``)."""
    return text if _NAME.fullmatch(text) else None


class RecordingStore(Protocol):
    """Where the server's recordings can be read, by file name.

    ``local_path`` is the file when it is on this machine (serve it as a file, with Range);
    otherwise ``size`` and ``read`` reach it wherever it is. ``location`` is where it is or will
    be once saved: a local path or an ``s3://`` URL.
    """

    def local_path(self, name: str) -> Path | None: ...

    def location(self, name: str) -> str: ...

    async def size(self, name: str) -> int | None:
        """Its size in bytes; None when there is no such recording."""
        ...

    async def read(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of it."""
        ...


class LocalRecordings:
    """Recordings in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def local_path(self, name: str) -> Path | None:
        if recording_file_name(name) is None:
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def location(self, name: str) -> str:
        return str(self.folder / name)

    async def size(self, name: str) -> int | None:
        path = self.local_path(name)
        return None if path is None else path.stat().st_size

    async def read(self, name: str, start: int, end: int) -> bytes:
        path = self.local_path(name)
        if path is None:
            raise FileNotFoundError(name)
        with path.open("rb") as file:
            file.seek(start)
            return file.read(max(0, end - start))


class BucketRecordings(LocalRecordings):
    """Recordings uploaded to a bucket, and those still in the local folder (recording or
    waiting for upload)."""

    def __init__(self, folder: Path, bucket: Bucket) -> None:
        super().__init__(folder)
        self.bucket = bucket

    def location(self, name: str) -> str:
        if self.local_path(name) is not None:
            return str(self.folder / name)
        return self.bucket.folder.url(name)

    async def size(self, name: str) -> int | None:
        if recording_file_name(name) is None:
            return None
        local = await super().size(name)
        if local is not None:
            return local
        return await asyncio.to_thread(self.bucket.size, name)

    async def read(self, name: str, start: int, end: int) -> bytes:
        if recording_file_name(name) is None:
            raise FileNotFoundError(name)
        with contextlib.suppress(FileNotFoundError):  # uploaded and deleted meanwhile: S3 has it
            return await super().read(name, start, end)
        return await asyncio.to_thread(self.bucket.read, name, start, end)
