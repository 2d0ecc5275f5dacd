"""The app's ``playAudio`` as the carrier hears it: decoded and resampled to the call's rate."""

from __future__ import annotations

from vobiz_stream.audio import ByteOrder, Pcm, Quality, Resampler, decode_l16, decode_mulaw
from vobiz_stream.core.protocol import PlayAudio
from vobiz_stream.formats import Encoding


class AppAudioDecoder:
    """Turns ``playAudio`` payloads into PCM at ``rate``; L16 is read in ``byte_order``."""

    def __init__(self, rate: int, byte_order: ByteOrder) -> None:
        self.rate = rate
        self.byte_order = byte_order
        self._resamplers: dict[int, Resampler] = {}

    def decode(self, command: PlayAudio) -> Pcm:
        """The command's audio at :attr:`rate` (a resampler may hold a little of it back)."""
        if command.encoding is Encoding.MULAW:
            pcm = decode_mulaw(command.payload)
        else:
            pcm = decode_l16(command.payload, self.byte_order)
        if command.sample_rate == self.rate:
            return pcm
        resampler = self._resamplers.get(command.sample_rate)
        if resampler is None:
            # QQ holds back under a millisecond; a filtering quality would hold back up to
            # ~115 ms, delaying audio and inventing underruns the real carrier would not have.
            resampler = Resampler(command.sample_rate, self.rate, Quality.QQ)
            self._resamplers[command.sample_rate] = resampler
        return resampler.process(pcm)

    def flush(self) -> list[Pcm]:
        """What the resamplers hold back, pushed out (before a checkpoint)."""
        tails = (resampler.flush() for resampler in self._resamplers.values())
        return [tail for tail in tails if len(tail)]

    def reset(self) -> None:
        """Forget what the resamplers hold (a clear)."""
        for resampler in self._resamplers.values():
            resampler.reset()
