"""G.711 mu-law against an independent scalar port of Sun's g711.c, and against ``audioop``."""

from __future__ import annotations

import importlib
import types
import warnings

import numpy as np
import pytest

from vobiz_stream.audio import decode_mulaw, encode_mulaw
from vobiz_stream.errors import AudioError

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))

# Sun Microsystems g711.c (public domain), linear2ulaw() and ulaw2linear(), one sample at a time.
SUN_BIAS = 0x84
SUN_SEG_END = (0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF)


def sun_linear2ulaw(pcm_val: int) -> int:
    if pcm_val < 0:
        pcm_val = SUN_BIAS - pcm_val
        mask = 0x7F
    else:
        pcm_val += SUN_BIAS
        mask = 0xFF
    seg = 0
    while seg < len(SUN_SEG_END) and pcm_val > SUN_SEG_END[seg]:
        seg += 1
    if seg >= 8:  # out of range: the largest magnitude
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm_val >> (seg + 3)) & 0xF)) ^ mask


def sun_ulaw2linear(u_val: int) -> int:
    u_val = ~u_val & 0xFF
    t = ((u_val & 0x0F) << 3) + SUN_BIAS
    t <<= (u_val & 0x70) >> 4
    return SUN_BIAS - t if u_val & 0x80 else t - SUN_BIAS


def load_audioop() -> types.ModuleType | None:
    """The stdlib ``audioop`` (Python < 3.13), or None where it is gone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ModuleNotFoundError:
            return None


audioop = load_audioop()
needs_audioop = pytest.mark.skipif(audioop is None, reason="audioop left Python in 3.13")


def test_decode_matches_sun_on_all_256_codes() -> None:
    assert decode_mulaw(ALL_CODES).tolist() == [sun_ulaw2linear(code) for code in ALL_CODES]


def test_encode_matches_sun_on_all_65536_samples() -> None:
    expected = bytes(sun_linear2ulaw(int(sample)) for sample in ALL_SAMPLES)
    assert encode_mulaw(ALL_SAMPLES) == expected


@needs_audioop
def test_decode_matches_audioop_on_all_256_codes() -> None:
    assert audioop is not None
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    assert decode_mulaw(ALL_CODES).tolist() == expected.tolist()


@needs_audioop
def test_encode_matches_audioop_wherever_audioop_keeps_all_bits() -> None:
    """``audioop`` drops the two low bits (an arithmetic shift, so negatives round away from
    zero) before quantising; on samples whose low bits are zero the two agree, and on every
    sample audioop's code is the code of the sample with its low bits cleared."""
    assert audioop is not None
    theirs = audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)
    assert encode_mulaw(ALL_SAMPLES & ~3) == theirs
    ours = np.frombuffer(encode_mulaw(ALL_SAMPLES), dtype=np.uint8)
    same = ours == np.frombuffer(theirs, dtype=np.uint8)
    assert same[ALL_SAMPLES >= 0].all()
    assert same[ALL_SAMPLES % 4 == 0].all()


def test_silence_is_0xff_and_both_zeros_decode_to_zero() -> None:
    assert encode_mulaw(np.zeros(160, dtype=np.int16)) == b"\xff" * 160
    assert decode_mulaw(b"\xff\x7f").tolist() == [0, 0]


def test_every_code_but_negative_zero_survives_a_round_trip() -> None:
    codes = [code for code in ALL_CODES if code != 0x7F]  # -0 decodes to 0, which is 0xFF
    assert encode_mulaw(decode_mulaw(bytes(codes))) == bytes(codes)


def test_error_is_at_most_half_a_step_of_the_segment() -> None:
    """Each decoded level sits mid-way in its step, so |x - decode(encode(x))| <= step / 2,
    where the step is 8 in the first segment and doubles in each of the next."""
    round_trip = decode_mulaw(encode_mulaw(ALL_SAMPLES)).astype(np.int32)
    samples = ALL_SAMPLES.astype(np.int32)
    in_range = np.abs(samples) <= 32124  # beyond the largest level, mu-law clips
    magnitude = np.abs(samples[in_range]) + SUN_BIAS
    step = 8 << np.maximum(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0)
    assert (np.abs(samples[in_range] - round_trip[in_range]) <= step // 2).all()


def test_encode_takes_a_strided_view_and_refuses_other_types() -> None:
    samples = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
    assert encode_mulaw(samples[::2]) == encode_mulaw(samples[[0, 2, 4]].copy())
    with pytest.raises(AudioError, match="int16"):
        encode_mulaw(samples.astype(np.float64))
