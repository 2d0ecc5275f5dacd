"""Streaming sample-rate conversion between the protocol's rates (8, 16 and 24 kHz), on soxr.

soxr filters in blocks, so a stream does not come out as it goes in: output arrives in bursts and
part of the audio is held back until more input (or :meth:`Resampler.flush`) pushes it out. Held
back is delay: soxr's output is aligned with its input, so audio not yet out is audio late.
Measured streaming 20 ms chunks (``bench/bench_codecs.py``; all cost 3-6 us per chunk):

=======  ================  ================  ================  ==========  ==================
quality  8k<->16k held      16k->24k held     24k->8k held      top burst   speech SNR vs VHQ
         mean / max ms      mean / max ms     mean / max ms     ms          (worst fixture)
=======  ================  ================  ================  ==========  ==================
QQ       0.2 / 0.2         0.1 / 0.1         0.0 / 0.0         20          14-30 dB
LQ       32 / 61           11 / 20           23 / 40           59          18-34 dB
MQ       64 / 118          21 / 38           43 / 75           108         50-67 dB
HQ       64 / 115          21 / 37           42 / 73           104         55-71 dB
VHQ      64 / 111          42 / 76           84 / 153          138         (reference)
=======  ================  ================  ================  ==========  ==================

Only two qualities are worth having. ``QQ`` holds nothing back but is cubic interpolation, not a
filter: going down it folds everything above the new Nyquist back at full level (a 5 kHz tone
comes out of 16 -> 8 kHz as a 3 kHz tone), going up it leaves images and loses 2 dB at 3 kHz.
``HQ`` is a real filter whose difference from VHQ is at least 55 dB below the speech (G.711
itself manages about 38 dB), with the least delay of the filtered qualities (MQ is no faster; LQ
is slower than QQ and rolls off inside the phone band, -8 dB at 3.4 kHz at 8 kHz).

The default is ``HQ``, knowingly. In a voice agent the outbound path (TTS to caller) gets its
audio faster than real time and knows where each utterance ends, so the held-back audio costs
little there (only a first chunk waits for the filter to fill) if the caller flushes at the end
of each utterance and resets at a barge-in clear (never on an idle timer, which would cut off the
tail), while aliasing would be heard on every sibilant. On the real-time inbound path (caller to
STT) the hold-back is added latency, 64 ms on average and up to 115 ms from 8 to 16 kHz: give the
STT the carrier's own rate if it takes it, else pass ``quality=Quality.QQ`` there if latency
matters more than fidelity.

soxr puts +-1 LSB of TPDF dither on int16 output, so digital silence comes out as the faintest
noise (inaudible, and silence again after mu-law) and two runs differ by a least significant bit.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import soxr

from vobiz_stream.audio.pcm import Pcm, as_pcm
from vobiz_stream.errors import AudioError

_EMPTY: Pcm = np.zeros(0, dtype=np.int16)


class Quality(StrEnum):
    """soxr's quality presets, from quick cubic interpolation to very high quality."""

    QQ = "QQ"
    LQ = "LQ"
    MQ = "MQ"
    HQ = "HQ"
    VHQ = "VHQ"


class Resampler:
    """Converts one mono int16 stream from ``in_rate`` to ``out_rate``, chunk by chunk.

    Equal rates pass samples through untouched (the same array, not a copy).
    """

    __slots__ = ("_stream", "in_rate", "out_rate", "quality")

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = Quality.HQ) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality.value)
        )

    def process(self, pcm: Pcm) -> Pcm:
        """Resample the next chunk; the result may be shorter or longer than the rate ratio says.

        The shortfall is held back and comes out with later chunks or :meth:`flush`.
        """
        samples = as_pcm(pcm)
        if self._stream is None:
            return samples
        result: Pcm = self._stream.resample_chunk(np.ascontiguousarray(samples))
        return result

    def flush(self) -> Pcm:
        """End the stream: return every sample still held back, then start afresh.

        Call it where the audio really ends (the end of an utterance, of a call); after it the
        resampler takes a new stream, as if just made.
        """
        if self._stream is None:
            return _EMPTY
        tail: Pcm = self._stream.resample_chunk(_EMPTY, last=True)
        self._stream.clear()
        return tail

    def reset(self) -> None:
        """Drop the held-back audio and the filter's memory (for example at a barge-in clear)."""
        if self._stream is not None:
            self._stream.clear()
