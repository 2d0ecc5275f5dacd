"""Audio to say something with: espeak-ng speech when it is installed, and a plain tone.

Speech comes from the ``espeak-ng`` program (Debian/Ubuntu ``apt install espeak-ng``, macOS
``brew install espeak-ng``), run as a subprocess: it needs no model download and answers in
about 0.1 s for a sentence. The text goes in on stdin, never on the command line, so no text can
be read as an option. Its WAV (22 050 Hz) is resampled to the rate asked for.

The emulator uses these to play ``<Speak>`` to the caller, and agents to say a greeting.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import wave

import numpy as np

from vobiz_stream.audio.pcm import Pcm
from vobiz_stream.audio.resample import Resampler
from vobiz_stream.errors import AudioError

__all__ = [
    "TONE_AMPLITUDE",
    "TONE_HZ",
    "SpeechUnavailable",
    "asynthesize",
    "speech_available",
    "synthesize",
    "tone",
]

ESPEAK = "espeak-ng"
TIMEOUT = 30.0
"""Seconds espeak-ng may take before it counts as hung."""

TONE_HZ = 1000
TONE_AMPLITUDE = 8000
"""About -12 dBFS: a clear tone, far from clipping."""


class SpeechUnavailable(AudioError):  # noqa: N818  (an "unavailable" condition, not a failure)
    """espeak-ng is not installed, or it failed: fall back to :func:`tone` or install it."""


def speech_available() -> bool:
    """True when ``espeak-ng`` is on the PATH."""
    return shutil.which(ESPEAK) is not None


def tone(seconds: float, rate: int, hz: float = TONE_HZ, amplitude: int = TONE_AMPLITUDE) -> Pcm:
    """A sine tone of ``seconds`` at ``rate``: what to play when there is no speech to play."""
    if seconds < 0:
        raise AudioError(f"a tone needs 0 or more seconds, got {seconds}")
    phase = 2 * np.pi * hz * np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(phase)).round().astype(np.int16)


def synthesize(
    text: str, rate: int, *, voice: str | None = None, words_per_minute: int = 160
) -> Pcm:
    """``text`` spoken by espeak-ng, as samples at ``rate``.

    Raises :class:`SpeechUnavailable` when espeak-ng is missing, fails or hangs.
    """
    command = _command(voice, words_per_minute)
    try:
        done = subprocess.run(
            command, input=text.encode(), capture_output=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise SpeechUnavailable(f"espeak-ng took more than {TIMEOUT:g}s to speak") from None
    return _to_pcm(done.returncode, done.stdout, done.stderr, rate)


async def asynthesize(
    text: str, rate: int, *, voice: str | None = None, words_per_minute: int = 160
) -> Pcm:
    """:func:`synthesize` without blocking the event loop (for agents speaking mid-call)."""
    command = _command(voice, words_per_minute)
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            stdout, stderr = await process.communicate(text.encode())
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SpeechUnavailable(f"espeak-ng took more than {TIMEOUT:g}s to speak") from None
    assert process.returncode is not None
    return _to_pcm(process.returncode, stdout, stderr, rate)


def _command(voice: str | None, words_per_minute: int) -> list[str]:
    program = shutil.which(ESPEAK)
    if program is None:
        raise SpeechUnavailable(
            "espeak-ng is not installed: install it (apt install espeak-ng) to hear speech, "
            "or use a tone"
        )
    command = [program, "--stdout", "-s", str(words_per_minute)]
    if voice is not None:
        command += ["-v", voice]
    return command


def _to_pcm(returncode: int, wav_bytes: bytes, stderr: bytes, rate: int) -> Pcm:
    """espeak-ng's WAV output as samples at ``rate``."""
    if returncode != 0:
        problem = stderr.decode(errors="replace").strip() or f"exit status {returncode}"
        raise SpeechUnavailable(f"espeak-ng failed: {problem}")
    try:
        with wave.open(io.BytesIO(wav_bytes), "rb") as reader:
            source_rate = reader.getframerate()
            if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
                raise SpeechUnavailable("espeak-ng wrote audio that is not 16-bit mono")
            samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    except (EOFError, wave.Error) as exc:
        raise SpeechUnavailable(f"espeak-ng wrote no readable WAV: {exc}") from None
    pcm = samples.astype(np.int16)
    if source_rate == rate:
        return pcm
    resampler = Resampler(source_rate, rate)
    return np.concatenate([resampler.process(pcm), resampler.flush()])
