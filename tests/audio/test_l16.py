"""L16 decode/encode in both byte orders and the byte swap, checked against ``struct``."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.audio import ByteOrder, decode_l16, encode_l16, l16_little_endian, swap_bytes
from vobiz_stream.errors import AudioError

STRUCT_PREFIX = {ByteOrder.LITTLE: "<", ByteOrder.BIG: ">"}
even_bytes = st.binary(max_size=2000).map(lambda data: data[: len(data) // 2 * 2])


@given(data=even_bytes, order=st.sampled_from(ByteOrder))
def test_decode_reads_each_sample_as_struct_does(data: bytes, order: ByteOrder) -> None:
    expected = struct.unpack(f"{STRUCT_PREFIX[order]}{len(data) // 2}h", data)
    decoded = decode_l16(data, order)
    assert decoded.dtype == np.int16
    assert decoded.dtype.isnative
    assert decoded.tolist() == list(expected)


@given(
    samples=st.lists(st.integers(-32768, 32767), max_size=1000),
    order=st.sampled_from(ByteOrder),
)
def test_encode_writes_each_sample_as_struct_does(samples: list[int], order: ByteOrder) -> None:
    pcm = np.array(samples, dtype=np.int16)
    assert encode_l16(pcm, order) == struct.pack(f"{STRUCT_PREFIX[order]}{len(samples)}h", *samples)


@given(data=even_bytes)
def test_swap_bytes_exchanges_the_two_bytes_of_each_sample(data: bytes) -> None:
    expected = b"".join(data[i + 1 : i + 2] + data[i : i + 1] for i in range(0, len(data), 2))
    assert swap_bytes(data) == expected
    assert decode_l16(swap_bytes(data), ByteOrder.BIG).tolist() == (
        decode_l16(data, ByteOrder.LITTLE).tolist()
    )


def test_decoded_array_is_writable_and_owns_its_data() -> None:
    data = bytes(range(8))
    decoded = decode_l16(data, ByteOrder.LITTLE)
    decoded[0] = 7
    assert decode_l16(data, ByteOrder.LITTLE)[0] == 0x0100


def test_encode_takes_a_strided_view() -> None:
    pcm = np.arange(10, dtype=np.int16)[::3]
    assert encode_l16(pcm, ByteOrder.BIG) == struct.pack(">4h", 0, 3, 6, 9)


@pytest.mark.parametrize("call", [lambda data: decode_l16(data, ByteOrder.BIG), swap_bytes])
def test_odd_byte_counts_are_refused(call: Callable[[bytes], object]) -> None:
    with pytest.raises(AudioError, match="even number of bytes"):
        call(b"\x00\x01\x02")


@pytest.mark.parametrize(
    "bad",
    [np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.int32), np.zeros((2, 2), np.int16)],
    ids=["float32", "int32", "2-D"],
)
def test_encode_refuses_anything_but_1d_int16(bad: np.ndarray) -> None:
    with pytest.raises(AudioError, match="expected"):
        encode_l16(bad, ByteOrder.LITTLE)


def test_encode_refuses_a_list() -> None:
    with pytest.raises(AudioError, match="numpy int16 array"):
        encode_l16([1, 2], ByteOrder.LITTLE)  # type: ignore[arg-type]


@given(data=even_bytes, order=st.sampled_from(ByteOrder))
def test_little_endian_bytes_hold_the_samples_decode_reads(data: bytes, order: ByteOrder) -> None:
    little = l16_little_endian(data, order)
    assert type(little) is bytes
    assert decode_l16(little, ByteOrder.LITTLE).tolist() == decode_l16(data, order).tolist()
    if order is ByteOrder.LITTLE:
        assert little is data  # nothing to convert: no copy either


@pytest.mark.parametrize("order", list(ByteOrder))
def test_little_endian_bytes_of_an_odd_payload_are_refused(order: ByteOrder) -> None:
    with pytest.raises(AudioError, match="even number of bytes"):
        l16_little_endian(b"\x01\x02\x03", order)
