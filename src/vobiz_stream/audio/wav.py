"""A WAV writer for long recordings that stays a valid file at every moment.

The header is written at open with empty sizes. Samples are buffered in memory and written out at
least every ``flush_interval_ms`` of audio; each flush writes the samples first and only then
rewrites the header with the new sizes. So a reader that opens the file mid-call, or after the
writing process was killed, finds a valid WAV holding every sample flushed so far (the kernel
keeps written data when a process dies; only a machine crash could lose it, as no fsync is done).
Per flush that is two system calls (``pwrite`` of the samples at the end, then of the header at
the start; Windows, which has no ``pwrite``, seeks before each), none per frame; a whole flush
interval handed over at once goes to the file as it is, without a copy.
"""

from __future__ import annotations

import os
import struct
import sys

import numpy as np

from vobiz_stream.audio.pcm import Pcm, as_pcm
from vobiz_stream.closing import Closeable
from vobiz_stream.errors import AudioError

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_HEADER_BYTES = _HEADER.size  # 44
_MAX_DATA_BYTES = 0xFFFF_FFFF - (_HEADER_BYTES - 8)
"""The RIFF size field is 32 bits and counts everything after its own 8 bytes."""
_SAMPLE_WIDTH = 2
_PCM_FORMAT_TAG = 1

if sys.platform == "win32":

    def _pwrite(fd: int, data: memoryview, offset: int) -> int:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)

else:
    _pwrite = os.pwrite


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    """All of ``data`` at ``offset``: one system call unless the kernel takes it in parts."""
    while data:
        written = _pwrite(fd, data, offset)
        if written <= 0:
            raise OSError(f"the file took none of the {len(data)} bytes written to it")
        data = data[written:]
        offset += written


def interleave(left: Pcm, right: Pcm) -> Pcm:
    """Two mono tracks of equal length as one interleaved stereo array (L, R, L, R, ...)."""
    left, right = as_pcm(left), as_pcm(right)
    if len(left) != len(right):
        raise AudioError(
            f"stereo tracks must be equally long, got {len(left)} and {len(right)} samples: "
            "pad the shorter one with silence first"
        )
    stereo = np.empty(2 * len(left), dtype=np.int16)
    stereo[0::2] = left
    stereo[1::2] = right
    return stereo


class WavWriter(Closeable):
    """Writes 16-bit PCM WAV, mono or interleaved stereo, flushing every ``flush_interval_ms``.

    ``write`` takes int16 arrays (interleaved for stereo) or little-endian L16 bytes, always whole
    sample frames. Use it as a context manager, or call :meth:`close` (which may be called twice).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int,
        channels: int = 1,
        flush_interval_ms: int = 1000,
    ) -> None:
        if channels not in (1, 2):
            raise AudioError(f"a WAV recording has 1 or 2 channels, got {channels}")
        if sample_rate <= 0 or flush_interval_ms <= 0:
            raise AudioError(
                f"sample rate and flush interval must be positive, got {sample_rate} Hz "
                f"and {flush_interval_ms} ms"
            )
        self.path = os.fspath(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self._block_align = channels * _SAMPLE_WIDTH
        self._flush_bytes = sample_rate * flush_interval_ms // 1000 * self._block_align
        self._buffer = bytearray()
        self._flushed_bytes = 0
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 (closed by close())
        self._write_at(memoryview(self._header()), 0)

    @property
    def frames_written(self) -> int:
        """Sample frames accepted by :meth:`write` so far (flushed or still buffered)."""
        return (self._flushed_bytes + len(self._buffer)) // self._block_align

    @property
    def frames_flushed(self) -> int:
        """Sample frames on disk, under a header that counts them."""
        return self._flushed_bytes // self._block_align

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._file.closed

    def write(self, audio: Pcm | bytes) -> None:
        """Append whole sample frames; writes to disk only when a flush interval has filled."""
        if self._file.closed:
            raise AudioError(f"cannot write to {self.path}: the WavWriter is closed")
        if isinstance(audio, bytes):
            data = memoryview(audio)
        else:
            data = np.ascontiguousarray(as_pcm(audio), dtype="<i2").data.cast("B")
        if len(data) % self._block_align:
            raise AudioError(
                f"{len(data)} bytes is not a whole number of {self.channels}-channel 16-bit frames"
            )
        if self._flushed_bytes + len(self._buffer) + len(data) > _MAX_DATA_BYTES:
            raise AudioError(f"{self.path} would pass the 4 GiB limit of WAV: start a new file")
        if not self._buffer and len(data) >= self._flush_bytes:
            self._write_out(data)  # a whole interval at once: no copy into the buffer
            return
        self._buffer += data
        if len(self._buffer) >= self._flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the buffered samples, then the header that counts them."""
        if not self._buffer or self._file.closed:
            return
        # A fresh buffer: views of the old one, held by a failed write's traceback, cannot then
        # stop the next write from growing it.
        buffered, self._buffer = self._buffer, bytearray()
        self._write_out(memoryview(buffered))

    def _write_out(self, data: memoryview) -> None:
        """Samples after those in the file, then the header that counts them (in that order:
        a reader, or a process killed between the two, never sees a count without its data)."""
        self._write_at(data, _HEADER_BYTES + self._flushed_bytes)
        self._flushed_bytes += len(data)
        self._write_at(memoryview(self._header()), 0)

    def _write_at(self, data: memoryview, offset: int) -> None:
        _write_at(self._file.fileno(), data, offset)

    def close(self) -> None:
        """Flush and close the file; later calls do nothing."""
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()

    def _header(self) -> bytes:
        return _HEADER.pack(
            b"RIFF",
            _HEADER_BYTES - 8 + self._flushed_bytes,
            b"WAVE",
            b"fmt ",
            16,
            _PCM_FORMAT_TAG,
            self.channels,
            self.sample_rate,
            self.sample_rate * self._block_align,
            self._block_align,
            8 * _SAMPLE_WIDTH,
            b"data",
            self._flushed_bytes,
        )
