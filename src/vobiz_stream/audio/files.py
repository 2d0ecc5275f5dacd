"""Audio files of any common kind read as mono int16, saying what was converted.

A caller's audio comes from wherever the user has it: a WAV at 44.1 kHz, 24-bit or float, mu-law
or A-law, stereo, WAVE_FORMAT_EXTENSIBLE; a FLAC, Ogg or MP3. libsndfile (through ``soundfile``)
reads them all; this module mixes to mono, converts to 16-bit, and describes the file and the
conversions in one line. A file it cannot read gets one line too: its size, what its first bytes
look like, and a command that converts it.

Integer PCM and G.711 come out as libsndfile decodes them to 16 bits (exact for 16-bit input,
the top 16 bits of 24 and 32); float is scaled by 32768, the inverse of how int16 is read as
float, so a float file made from int16 samples reads back exactly.
"""

from __future__ import annotations

import io
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from vobiz_stream.audio.pcm import Pcm
from vobiz_stream.errors import AudioError
from vobiz_stream.logtext import loggable

__all__ = ["MAX_SECONDS", "AudioFile", "read_audio_bytes", "read_audio_file"]

MAX_SECONDS = 3600.0
"""The longest file read (an hour): the whole file is held in memory as mono int16."""

_BLOCK_FRAMES = 1 << 16

_SUBTYPES = {
    "PCM_U8": "8-bit",
    "PCM_S8": "8-bit",
    "PCM_16": "16-bit",
    "PCM_24": "24-bit",
    "PCM_32": "32-bit",
    "FLOAT": "32-bit float",
    "DOUBLE": "64-bit float",
    "ULAW": "mu-law",
    "ALAW": "A-law",
    "VORBIS": "Vorbis",
    "OPUS": "Opus",
}
_FORMATS = {"WAV": "WAV", "WAVEX": "WAV (extensible)", "OGG": "Ogg", "MP3": "MP3", "RF64": "WAV"}
_EXACT_16 = frozenset({"PCM_16"})
_FLOAT = frozenset({"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III"})

_WAV_TAGS = {
    1: "PCM",
    2: "MS ADPCM",
    3: "IEEE float",
    6: "A-law",
    7: "mu-law",
    0x11: "IMA ADPCM",
    0x31: "GSM 6.10",
    0x55: "MP3",
    0xFFFE: "extensible",
}


@dataclass(frozen=True, slots=True)
class AudioFile:
    """A file's audio as mono int16 at its own ``rate``, and what it was."""

    name: str
    """The file's name, escaped for a log line."""
    pcm: Pcm
    rate: int
    channels: int
    kind: str
    """What the file holds, in words: ``16-bit WAV``, ``Vorbis Ogg``, ``MP3``..."""
    converted: bool
    """Whether its samples were converted to 16-bit (anything but 16-bit PCM)."""

    def describe(self, target_rate: int | None = None) -> str:
        """One line for the user: the file, and every conversion made to send it at
        ``target_rate`` (``caller audio x.flac: 44.1 kHz stereo 16-bit FLAC, mixed to mono and
        resampled to 8 kHz``)."""
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels}-channel")
        steps = []
        if self.channels > 1:
            steps.append("mixed to mono")
        if self.converted:
            steps.append("converted to 16-bit")
        if target_rate is not None and target_rate != self.rate:
            steps.append(f"resampled to {_khz(target_rate)}")
        done = (
            ", ".join(steps[:-1]) + " and " + steps[-1]
            if len(steps) > 1
            else (steps[0] if steps else "sent as it is")
        )
        return f"caller audio {self.name}: {_khz(self.rate)} {layout} {self.kind}, {done}"


def read_audio_file(path: Path) -> AudioFile:
    """Read ``path`` (any format libsndfile reads) as mono int16; raise :class:`AudioError`
    with one line saying what was found and how to convert it."""
    name = loggable(str(path), 200)
    if not path.is_file():
        raise AudioError(
            f"caller audio {name}: "
            + ("is a directory, not a file" if path.is_dir() else "no such file")
        )
    try:
        with soundfile.SoundFile(path) as sound:
            return _read(sound, name)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(_unreadable(path, name, str(exc))) from None


def read_audio_bytes(data: bytes, name: str, max_samples: int) -> AudioFile:
    """Read audio sent as bytes (an upload; ``name`` says where it came from) as mono int16,
    at most ``max_samples`` samples (checked before decoding: a small compressed file can
    hold hours); raise :class:`AudioError` saying what the bytes look like or hold."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            if sound.frames > max_samples:
                raise AudioError(
                    f"{name} holds {sound.frames} samples ({sound.frames / sound.samplerate:.0f} s"
                    f" at {_khz(sound.samplerate)}); at most {max_samples} are taken: send a"
                    " shorter file or a lower rate"
                )
            return _read(sound, name, max_samples)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            f"{name} cannot be read: {len(data)} bytes, {_guess(data[:64], len(data))} "
            f"({loggable(str(exc), 120)}); send a WAV or FLAC file"
        ) from None


def _read(sound: soundfile.SoundFile, name: str, max_samples: int | None = None) -> AudioFile:
    rate, channels, subtype = int(sound.samplerate), int(sound.channels), str(sound.subtype)
    if rate <= 0 or channels <= 0:
        raise AudioError(f"caller audio {name}: {rate} Hz with {channels} channels is no audio")
    limit = round(MAX_SECONDS * rate) if max_samples is None else max_samples
    if sound.frames > limit:
        raise AudioError(
            f"caller audio {name} lasts {sound.frames / rate / 60:.1f} min; the emulator takes up "
            f"to {MAX_SECONDS / 60:g} min: cut it first (sox in.wav out.wav trim 0 {MAX_SECONDS:g})"
        )
    floating = subtype in _FLOAT
    blocks: list[Pcm] = []
    total = 0
    for block in sound.blocks(
        _BLOCK_FRAMES, dtype="float64" if floating else "int16", always_2d=True
    ):
        total += len(block)
        if total > limit:  # frames unknown up front (some compressed files)
            raise AudioError(
                f"caller audio {name} lasts over {MAX_SECONDS / 60:g} min; cut it first "
                f"(sox in.wav out.wav trim 0 {MAX_SECONDS:g})"
            )
        blocks.append(_mono_int16(block, floating))
    pcm = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
    if not len(pcm):
        raise AudioError(f"caller audio {name} has no samples")
    return AudioFile(
        name=name,
        pcm=pcm,
        rate=rate,
        channels=channels,
        kind=_kind(str(sound.format), subtype),
        converted=subtype not in _EXACT_16,
    )


def _mono_int16(block: np.ndarray, floating: bool) -> Pcm:
    """One block (frames x channels) mixed to mono int16."""
    mono: Pcm
    if floating:
        mixed = block.mean(axis=1) * 32768.0
        mono = np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
    elif block.shape[1] == 1:
        mono = np.ascontiguousarray(block[:, 0])
    else:
        mono = (block.astype(np.int32).sum(axis=1) // block.shape[1]).astype(np.int16)
    return mono


def _kind(container: str, subtype: str) -> str:
    if container == "MP3" or subtype == "MPEG_LAYER_III":
        return "MP3"
    word = _SUBTYPES.get(subtype, subtype.replace("_", " ").lower())
    return f"{word} {_FORMATS.get(container, container)}"


def _khz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


def _unreadable(path: Path, name: str, reason: str) -> str:
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(64)
    except OSError as exc:
        return f"caller audio {name} cannot be opened: {loggable(str(exc))}"
    out = shlex.quote(str(path.with_name(path.stem + "-8k.wav")))
    source = shlex.quote(str(path))
    commands = loggable(
        f"ffmpeg -i {source} -ar 8000 -ac 1 -c:a pcm_s16le {out} "
        f"(or sox {source} -r 8000 -c 1 -b 16 {out})",
        600,
    )
    why = loggable(reason.removeprefix(f"Error opening {str(path)!r}: "), 120)
    return (
        f"caller audio {name} cannot be read: {size} bytes, {_guess(head, size)} "
        f"(first bytes {head[:12].hex(' ') or 'none'}; {why}); convert it to a 16-bit WAV: "
        f"{commands}"
    )


def _guess(head: bytes, size: int) -> str:
    """What the first bytes of a file look like."""
    if size == 0:
        return "an empty file"
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        fmt = head.find(b"fmt ")
        if fmt >= 0 and len(head) >= fmt + 10:
            tag = int.from_bytes(head[fmt + 8 : fmt + 10], "little")
            return f"a WAV with format tag {tag} ({_WAV_TAGS.get(tag, 'unknown')})"
        return "a WAV header without its fmt chunk where expected"
    signatures = (
        (head[:4] == b"fLaC", "FLAC"),
        (head[:4] == b"OggS", "Ogg"),
        (head[:3] == b"ID3" or (head[:1] == b"\xff" and head[1:2] >= b"\xe0"), "MP3"),
        (head[4:8] == b"ftyp", "MP4/M4A (AAC)"),
        (head[:4] == b"\x1aE\xdf\xa3", "WebM/Matroska"),
        (head[:5] == b"#!AMR", "AMR"),
        (head[:4] == b"FORM", "AIFF"),
    )
    for matched, kind in signatures:
        if matched:
            return f"looks like {kind}"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "text, not audio"
    return "in no format recognised"
