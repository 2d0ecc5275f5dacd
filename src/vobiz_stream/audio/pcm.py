"""The one in-memory sample type of the audio package: a 1-D numpy array of native int16.

Every function that takes samples checks them here, once, so a float or int32 array is refused
with a clear message instead of being silently wrapped or truncated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vobiz_stream.errors import AudioError

Pcm = npt.NDArray[np.int16]
"""Signed 16-bit samples in native byte order; mono, or interleaved frames for stereo WAV."""


def as_pcm(samples: npt.NDArray[Any]) -> Pcm:
    """Return ``samples`` as they are if they are a 1-D int16 array, else raise AudioError."""
    if not isinstance(samples, np.ndarray):
        raise AudioError(f"expected a numpy int16 array of samples, got {type(samples).__name__}")
    if samples.dtype != np.int16:
        raise AudioError(
            f"expected int16 samples, got {samples.dtype}: scale and convert them first "
            "(for example np.clip(x * 32767, -32768, 32767).astype(np.int16))"
        )
    if samples.ndim != 1:
        raise AudioError(f"expected a 1-D array of samples, got shape {samples.shape}")
    return samples
