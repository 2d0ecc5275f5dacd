"""InboundDecoder: mu-law, fixed L16 byte order, and detection that holds frames back until it
decides, on the committed espeak-ng speech fixtures (tests/data/make_fixtures.sh)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from vobiz_stream.audio import ByteOrder, Pcm, encode_l16, encode_mulaw
from vobiz_stream.audio.mulaw import decode_mulaw
from vobiz_stream.core.inbound import Decoded, InboundDecoder
from vobiz_stream.core.protocol import Media
from vobiz_stream.errors import AudioError
from vobiz_stream.formats import AudioFormat, Encoding

DATA = Path(__file__).parents[1] / "data"
L16_8K = AudioFormat(Encoding.L16, 8000)


def read_speech(name: str) -> tuple[Pcm, int]:
    with wave.open(str(DATA / f"{name}.wav"), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
        return samples.astype(np.int16), reader.getframerate()


def speech_frames(name: str) -> tuple[list[Pcm], int]:
    """Whole 20 ms frames of a fixture."""
    samples, rate = read_speech(name)
    size = rate // 50
    count = len(samples) // size
    return [samples[index * size : (index + 1) * size] for index in range(count)], rate


def l16_media(pcm: Pcm, order: ByteOrder, chunk: int) -> Media:
    return Media(payload=encode_l16(pcm, order), chunk=chunk)


def chunks_of(decoded: Decoded) -> list[int | None]:
    return [media.chunk for media, _ in decoded]


class Decisions:
    """Records ``on_decided`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[ByteOrder, int]] = []

    def __call__(self, order: ByteOrder, frames: int) -> None:
        self.calls.append((order, frames))


# --- mu-law and fixed order --------------------------------------------------------------------


@pytest.mark.parametrize("order", list(ByteOrder))
def test_a_settled_decoder_gives_each_frame_as_little_endian_bytes(order: ByteOrder) -> None:
    frames, _ = speech_frames("speech_male_8k")
    decoder = InboundDecoder(L16_8K, order)
    assert decoder.settled
    for chunk, pcm in enumerate(frames[:20]):
        assert decoder.decode(l16_media(pcm, order, chunk)) == encode_l16(pcm, ByteOrder.LITTLE)
    payload = encode_mulaw(frames[0])  # a seed-shape frame naming mu-law
    named = Media(payload=payload, media_format=AudioFormat(Encoding.MULAW, 8000))
    assert decoder.decode(named) == encode_l16(decode_mulaw(payload), ByteOrder.LITTLE)


def test_a_detecting_decoder_is_settled_once_the_order_is_known() -> None:
    frames, _ = speech_frames("speech_male_8k")
    decoder = InboundDecoder(L16_8K)
    assert not decoder.settled
    for chunk, pcm in enumerate(frames):
        decoder.push(l16_media(pcm, ByteOrder.BIG, chunk))
        if decoder.settled:
            break
    assert decoder.settled and decoder.byte_order is ByteOrder.BIG


def test_mulaw_decodes_at_once() -> None:
    frames, _ = speech_frames("speech_male_8k")
    decoder = InboundDecoder(AudioFormat(Encoding.MULAW, 8000))
    for chunk, pcm in enumerate(frames[:20]):
        payload = encode_mulaw(pcm)
        decoded = decoder.push(Media(payload=payload, chunk=chunk))
        assert chunks_of(decoded) == [chunk]
        np.testing.assert_array_equal(decoded[0][1], decode_mulaw(payload))
        # mu-law is lossy, but close to the original speech.
        assert np.abs(decoded[0][1].astype(np.int32) - pcm).max() <= max(
            64, int(np.abs(pcm).max()) // 16
        )
    assert decoder.flush() == []


def test_seed_shape_frame_that_names_mulaw_is_decoded_as_mulaw() -> None:
    decoder = InboundDecoder(L16_8K, ByteOrder.LITTLE)
    pcm = np.linspace(-8000, 8000, 160).astype(np.int16)
    media = Media(payload=encode_mulaw(pcm), media_format=AudioFormat(Encoding.MULAW, 8000))
    [(_, decoded)] = decoder.push(media)
    np.testing.assert_array_equal(decoded, decode_mulaw(media.payload))


@pytest.mark.parametrize("order", list(ByteOrder))
def test_fixed_byte_order_decodes_each_frame_at_once(order: ByteOrder) -> None:
    frames, _ = speech_frames("speech_female_8k")
    decoder = InboundDecoder(L16_8K, order)
    assert decoder.settled
    assert decoder.byte_order is order
    for chunk, pcm in enumerate(frames):
        decoded = decoder.push(l16_media(pcm, order, chunk))
        assert chunks_of(decoded) == [chunk]
        np.testing.assert_array_equal(decoded[0][1], pcm)


def test_fixed_order_reads_the_other_order_as_swapped() -> None:
    """A forced order is obeyed even when the audio says otherwise."""
    frames, _ = speech_frames("speech_male_8k")
    decoder = InboundDecoder(L16_8K, ByteOrder.LITTLE)
    pcm = frames[20]
    [(_, decoded)] = decoder.push(l16_media(pcm, ByteOrder.BIG, 0))
    np.testing.assert_array_equal(decoded, pcm.byteswap())


def test_odd_length_l16_payload_raises_audio_error() -> None:
    with pytest.raises(AudioError):
        InboundDecoder(L16_8K).push(Media(payload=b"\x01\x02\x03"))
    with pytest.raises(AudioError):
        InboundDecoder(L16_8K, ByteOrder.BIG).push(Media(payload=b"\x01"))


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["speech_male_8k", "speech_female_8k", "speech_male_16k", "speech_female_16k"]
)
@pytest.mark.parametrize("order", list(ByteOrder))
def test_detection_holds_frames_then_releases_them_in_order_decoded_right(
    name: str, order: ByteOrder
) -> None:
    frames, rate = speech_frames(name)
    decisions = Decisions()
    decoder = InboundDecoder(AudioFormat(Encoding.L16, rate), on_decided=decisions)
    assert not decoder.settled
    out: Decoded = []
    released_at: list[int] = []
    for chunk, pcm in enumerate(frames):
        decoded = decoder.push(l16_media(pcm, order, chunk))
        if decoded:
            released_at.append(chunk)
        out.extend(decoded)
    out.extend(decoder.flush())

    # Leading frames that read the same either way (digital silence) come straight back; the
    # rest is held until decided (speech decides within four informative frames, most often on
    # its first), then released all at once; after that one frame per push.
    quiet_lead = next(i for i, pcm in enumerate(frames) if (pcm.byteswap() != pcm).any())
    assert released_at[:quiet_lead] == list(range(quiet_lead))
    first_release = released_at[quiet_lead]
    assert quiet_lead <= first_release < quiet_lead + 4
    assert released_at[quiet_lead:] == list(range(first_release, len(frames)))
    assert decisions.calls == [(order, first_release + 1)]
    assert decoder.settled
    assert decoder.byte_order is order
    # Every frame, once, in order, decoded in the stream's real order.
    assert chunks_of(out) == list(range(len(frames)))
    np.testing.assert_array_equal(np.concatenate([pcm for _, pcm in out]), np.concatenate(frames))


def test_silence_is_never_held_and_detection_goes_on() -> None:
    """Frames that read the same in either order come straight back; speech then decides."""
    frames, _ = speech_frames("speech_male_8k")
    decisions = Decisions()
    decoder = InboundDecoder(L16_8K, hold_frames=25, on_decided=decisions)
    quiet = [np.zeros(160, dtype=np.int16), np.full(160, -1, dtype=np.int16)]  # 0x0000, 0xFFFF
    for chunk in range(30):
        released = decoder.push(l16_media(quiet[chunk % 2], ByteOrder.BIG, chunk))
        assert chunks_of(released) == [chunk]
        np.testing.assert_array_equal(released[0][1], quiet[chunk % 2])
    assert not decoder.settled
    assert decoder.byte_order is ByteOrder.LITTLE  # the default: no evidence yet

    # Big-endian speech follows: held until it decides, then every frame reads right.
    out: Decoded = []
    for index, pcm in enumerate(frames):
        out.extend(decoder.push(l16_media(pcm, ByteOrder.BIG, 30 + index)))
    out.extend(decoder.flush())
    assert decisions.calls and decisions.calls[0][0] is ByteOrder.BIG
    assert len(decisions.calls) == 1
    assert decoder.settled
    assert chunks_of(out) == [30 + index for index in range(len(frames))]
    np.testing.assert_array_equal(np.concatenate([pcm for _, pcm in out]), np.concatenate(frames))


def loud_noise(count: int, seed: int) -> list[Pcm]:
    """Full-scale white noise: as rough in either byte order, so it never decides and is held."""
    rng = np.random.default_rng(seed)
    return [rng.integers(-32768, 32768, 160, dtype=np.int16) for _ in range(count)]


def test_frames_that_do_not_decide_are_held() -> None:
    decoder = InboundDecoder(L16_8K)
    for chunk, pcm in enumerate(loud_noise(24, 1)):
        assert decoder.push(l16_media(pcm, ByteOrder.BIG, chunk)) == []
    assert not decoder.settled


def test_silence_after_held_frames_waits_behind_them() -> None:
    """Order comes first: once a frame is held, silence after it is held too."""
    noise = loud_noise(3, 2)
    decoder = InboundDecoder(L16_8K)
    for chunk, pcm in enumerate(noise):
        assert decoder.push(l16_media(pcm, ByteOrder.BIG, chunk)) == []
    assert decoder.push(Media(payload=b"\x00\x00" * 160, chunk=3)) == []
    released = decoder.flush()
    assert chunks_of(released) == [0, 1, 2, 3]
    swap = decoder.byte_order is not ByteOrder.BIG  # noise gives no clear evidence either way
    for (_, pcm), original in zip(released[:3], noise, strict=True):
        np.testing.assert_array_equal(pcm, original.byteswap() if swap else original)
    assert not released[3][1].any()


def test_default_order_is_used_for_undecided_silence() -> None:
    decoder = InboundDecoder(L16_8K, default_order=ByteOrder.BIG, hold_frames=2)
    assert decoder.byte_order is ByteOrder.BIG
    quiet = Media(payload=b"\x00\x00" * 160)
    for _ in range(3):
        assert len(decoder.push(quiet)) == 1
    assert decoder.byte_order is ByteOrder.BIG


def test_after_the_decision_a_frame_naming_mulaw_is_still_read_as_mulaw() -> None:
    frames, _ = speech_frames("speech_male_8k")
    decoder = InboundDecoder(L16_8K)
    for chunk, pcm in enumerate(frames[:40]):
        decoder.push(l16_media(pcm, ByteOrder.BIG, chunk))
    assert decoder.settled
    mulaw = Media(payload=encode_mulaw(frames[41]), media_format=AudioFormat(Encoding.MULAW, 8000))
    [(_, decoded)] = decoder.push(mulaw)
    np.testing.assert_array_equal(decoded, decode_mulaw(mulaw.payload))
    [(_, decoded)] = decoder.push(l16_media(frames[42], ByteOrder.BIG, 42))
    np.testing.assert_array_equal(decoded, frames[42])


def test_noise_that_never_decides_is_held_at_most_hold_frames() -> None:
    rng = np.random.default_rng(3)
    decoder = InboundDecoder(L16_8K, hold_frames=3)
    frames = [
        Media(payload=rng.integers(0, 256, size=320, dtype=np.uint8).tobytes(), chunk=chunk)
        for chunk in range(6)
    ]
    assert decoder.push(frames[0]) == []
    assert decoder.push(frames[1]) == []
    assert decoder.push(frames[2]) == []
    assert chunks_of(decoder.push(frames[3])) == [0, 1, 2, 3]
    assert chunks_of(decoder.push(frames[4])) == [4]
    assert not decoder.settled


def test_flush_releases_held_frames_by_the_evidence_so_far() -> None:
    """A call too short to decide: its few frames are read by the smoother reading.

    Loud noise weighs the same both ways; one frame of speech among it tips the evidence to
    the order it was sent in without clearing the bar for a decision."""
    frames, _ = speech_frames("speech_female_8k")
    speech = [*loud_noise(2, 3), frames[12], *loud_noise(2, 4)]
    decisions = Decisions()
    decoder = InboundDecoder(L16_8K, on_decided=decisions)  # default little: evidence must win
    for chunk, pcm in enumerate(speech):
        assert decoder.push(l16_media(pcm, ByteOrder.BIG, chunk)) == []
    assert decisions.calls == []
    assert not decoder.settled
    released = decoder.flush()
    assert chunks_of(released) == list(range(5))
    for (_, pcm), original in zip(released, speech, strict=True):
        np.testing.assert_array_equal(pcm, original)
    assert decoder.flush() == []


def test_flush_with_nothing_held_is_empty() -> None:
    assert InboundDecoder(L16_8K).flush() == []
    assert InboundDecoder(L16_8K, ByteOrder.LITTLE).flush() == []


@pytest.mark.parametrize("order", [ByteOrder.LITTLE, None])  # told, and still detecting
def test_a_frame_with_over_a_second_of_audio_is_refused(order: ByteOrder | None) -> None:
    decoder = InboundDecoder(L16_8K, order)
    second = Media(payload=b"\x01\x00" * 8000, chunk=0)  # exactly one second: taken
    assert sum(len(pcm) for _, pcm in decoder.push(second) + decoder.flush()) == 8000
    with pytest.raises(AudioError, match="more than 1 s of audio/x-l16;rate=8000"):
        decoder.push(Media(payload=b"\x01\x00" * 8001, chunk=1))
    if order is not None:
        with pytest.raises(AudioError, match="more than 1 s"):
            decoder.decode(Media(payload=b"\x01\x00" * 8001, chunk=1))


def test_a_frame_naming_its_format_is_held_to_a_second_of_that_format() -> None:
    """8001 mu-law bytes fit in a second of the stream's L16, not of the frame's own mu-law."""
    decoder = InboundDecoder(L16_8K, ByteOrder.LITTLE)
    seed = Media(payload=b"\xff" * 8001, media_format=AudioFormat(Encoding.MULAW, 8000))
    with pytest.raises(AudioError, match="more than 1 s of audio/x-mulaw"):
        decoder.decode(seed)


def test_a_frame_naming_a_higher_rate_is_still_held_to_a_second_at_the_stream_rate() -> None:
    """Its samples are recorded at the stream's rate: 16001 bytes would be 1 s and 1 sample."""
    decoder = InboundDecoder(L16_8K, ByteOrder.LITTLE)
    seed = Media(payload=b"\x01\x00" * 8001, media_format=AudioFormat(Encoding.L16, 10**9))
    with pytest.raises(AudioError, match="more than 1 s of audio/x-l16;rate=8000"):
        decoder.decode(seed)
