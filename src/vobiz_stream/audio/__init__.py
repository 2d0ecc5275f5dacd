"""Audio building blocks: L16 in both byte orders and their detection, G.711 mu-law, streaming
resampling, 20 ms framing and a crash-safe WAV writer. Samples in memory are 1-D int16 arrays."""

from vobiz_stream.audio.detect import ByteOrderDetector
from vobiz_stream.audio.framing import FrameSlicer, silence_byte
from vobiz_stream.audio.l16 import (
    ByteOrder,
    check_l16,
    decode_l16,
    encode_l16,
    l16_little_endian,
    swap_bytes,
)
from vobiz_stream.audio.mulaw import decode_mulaw, encode_mulaw
from vobiz_stream.audio.pcm import Pcm, as_pcm
from vobiz_stream.audio.resample import Quality, Resampler
from vobiz_stream.audio.wav import WavWriter, interleave

__all__ = [
    "ByteOrder",
    "ByteOrderDetector",
    "FrameSlicer",
    "Pcm",
    "Quality",
    "Resampler",
    "WavWriter",
    "as_pcm",
    "check_l16",
    "decode_l16",
    "decode_mulaw",
    "encode_l16",
    "encode_mulaw",
    "interleave",
    "l16_little_endian",
    "silence_byte",
    "swap_bytes",
]
