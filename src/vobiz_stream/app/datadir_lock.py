"""One server per data folder: an OS lock on ``<data dir>/.vobiz-stream.lock``.

Two servers on one folder would write one database and one recordings folder, and the second
would, at start, mark the first one's open streams interrupted. So ``serve`` takes an exclusive
:func:`fcntl.flock` on the lock file before it touches anything else, and holds it while it runs;
the kernel drops the lock when the process ends, however it ends (``kill -9`` included), so a
stale file never blocks the next start. The holder writes its pid and port into the file, for
the message the next server gives when it finds the folder taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from vobiz_stream.errors import VobizStreamError
from vobiz_stream.logtext import loggable

LOCK_NAME = ".vobiz-stream.lock"


class DataDirInUseError(VobizStreamError):
    """Another process holds the data folder's lock."""


class DataDirLock:
    """The lock of one data folder, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DataDirInUseError` naming the holder's pid and port."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirInUseError(
                f"data folder {self.data_dir} is in use by another vobiz-stream server "
                f"({holder}); stop that server first, or give this one another --data-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.note(port=None)

    def note(self, port: int | None) -> None:
        """Write this process's pid and, once it listens, its port into the lock file."""
        if self._fd is None:
            return
        text = f"pid {os.getpid()}" + (f", port {port}" if port is not None else "")
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode() + b"\n", 0)

    def release(self) -> None:
        """Let the lock go (the kernel also does when the process ends)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_holder(fd: int) -> str:
    """What the holder wrote ("pid 123, port 8080"), escaped; or that it wrote nothing yet."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return loggable(text, limit=80) if text else "pid unknown: it has not written it yet"
