"""Playing into a call and clearing it from the API, whichever worker holds its media socket.

* ``POST /api/calls/<call id>/play`` (admin token), the body a WAV or FLAC file of at most
  :data:`MAX_PLAY_BYTES` holding at most :data:`MAX_PLAY_SAMPLES`: the audio is queued on the
  call's stream (mixed to mono, resampled to the stream's rate) and followed by a checkpoint.
  The answer, 202, names the checkpoint: the call's events show it sent and played (``GET
  /calls/<id>``). 404: no open stream of that call; 409: the stream is one-way; 400: the body
  is no audio; 413: too big. A JSON body ``{"text": "..."}`` (``Content-Type:
  application/json``) is spoken with espeak-ng when the server has it (501 when not).
* ``POST /api/calls/<call id>/clear``: what the stream plays is dropped (a barge-in from the
  API); 200 cleared here, 202 sent to the worker holding it, 404 no open stream.

With ``serve --workers`` (PostgreSQL) the request may reach a worker that does not hold the
call: the order goes over the :class:`~vobiz_stream.app.call_control.ControlBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import orjson
from aiohttp import web

from vobiz_stream.app.call_control import ApiAudio, CallControl, Outcome
from vobiz_stream.audio.files import read_audio_bytes
from vobiz_stream.audio.pcm import Pcm
from vobiz_stream.audio.speech import SpeechUnavailable, asynthesize
from vobiz_stream.core.stream_events import SessionError
from vobiz_stream.errors import AudioError

__all__ = ["MAX_PLAY_BYTES", "MAX_PLAY_SAMPLES", "MAX_TEXT_CHARS", "add_call_audio"]

MAX_PLAY_BYTES = 5 * 1024 * 1024
"""The largest audio file the play endpoint takes."""
MAX_PLAY_SAMPLES = 600 * 16000
"""The most samples it plays: 10 minutes at 16 kHz (a compressed file can hold far more than
its bytes suggest; they are decoded to 2 bytes a sample, and stored so for another worker)."""
MAX_TEXT_CHARS = 2000
"""The longest text the play endpoint speaks."""
SPOKEN_TEXT_RATE = 16000
"""The rate espeak-ng speaks a text at for the play endpoint."""
DECODING_AT_ONCE = 2
"""Play requests read and decoded (or spoken) at once, off the event loop; others wait."""


def _answer(status: int, call_id: str, **fields: str) -> web.Response:
    body = {"call_id": call_id, **fields}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _not_found(call_id: str) -> web.Response:
    error = "no open stream of this call: it ended, or never reached this server"
    return _answer(404, call_id, outcome=Outcome.NOT_FOUND.value, error=error)


async def _bounded_body(request: web.Request) -> bytes | None:
    """The request's body, or None when it is over :data:`MAX_PLAY_BYTES` (read no further)."""
    if (request.content_length or 0) > MAX_PLAY_BYTES:
        return None
    body = bytearray()
    async for piece in request.content.iter_chunked(1 << 16):
        body += piece
        if len(body) > MAX_PLAY_BYTES:
            return None
    return bytes(body)


async def _request_audio(request: web.Request) -> tuple[Pcm, int] | web.Response:
    """The request's audio (samples and rate), or the answer saying why it is refused."""
    call_id = request.match_info["call_id"]
    body = await _bounded_body(request)
    if body is None:
        error = (
            f"the audio is over {MAX_PLAY_BYTES // (1024 * 1024)} MB: send a shorter or "
            "compressed file (sox in.wav -r 8000 -c 1 out.flac trim 0 60)"
        )
        return _answer(413, call_id, error=error)
    if request.content_type == "application/json":
        return await _spoken(call_id, body)
    try:
        audio = await asyncio.to_thread(
            read_audio_bytes, body, "the request's audio", MAX_PLAY_SAMPLES
        )
    except AudioError as exc:
        return _answer(400, call_id, error=str(exc))
    return audio.pcm, audio.rate


async def _spoken(call_id: str, body: bytes) -> tuple[Pcm, int] | web.Response:
    """``{"text": "..."}`` spoken by espeak-ng, when the server has it."""
    text = None
    with contextlib.suppress(orjson.JSONDecodeError):
        order = orjson.loads(body)
        text = order.get("text") if isinstance(order, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
        error = f'send {{"text": "what to say"}} (1 to {MAX_TEXT_CHARS} characters), or a WAV file'
        return _answer(400, call_id, error=error)
    try:
        return await asynthesize(text, SPOKEN_TEXT_RATE), SPOKEN_TEXT_RATE
    except SpeechUnavailable as exc:
        return _answer(501, call_id, error=f"{exc}; or send a WAV or FLAC file")


async def play_response(
    control: CallControl, request: web.Request, decoding: asyncio.Semaphore
) -> web.Response:
    call_id = request.match_info["call_id"]
    async with decoding:
        audio = await _request_audio(request)
    if isinstance(audio, web.Response):
        return audio
    samples, rate = audio
    checkpoint = f"api-play-{secrets.token_hex(4)}"
    order = ApiAudio(samples.astype("<i2").tobytes(), rate, checkpoint)
    try:
        outcome = await control.play(call_id, order)
    except SessionError as exc:
        return _answer(409, call_id, error=str(exc))
    if outcome is Outcome.NOT_FOUND:
        return _not_found(call_id)
    return _answer(202, call_id, outcome=outcome.value, checkpoint=checkpoint)


async def clear_response(control: CallControl, call_id: str) -> web.Response:
    try:
        outcome = await control.clear(call_id)
    except SessionError as exc:
        return _answer(409, call_id, error=str(exc))
    if outcome is Outcome.NOT_FOUND:
        return _not_found(call_id)
    return _answer(200 if outcome is Outcome.CLEARED else 202, call_id, outcome=outcome.value)


def add_call_audio(app: web.Application, control: CallControl) -> None:
    """``POST /api/calls/<call id>/play`` and ``/clear`` on the server's app (behind its admin
    token)."""

    decoding = asyncio.Semaphore(DECODING_AT_ONCE)

    async def play(request: web.Request) -> web.Response:
        return await play_response(control, request, decoding)

    async def clear(request: web.Request) -> web.Response:
        return await clear_response(control, request.match_info["call_id"])

    app.add_routes(
        [
            web.post("/api/calls/{call_id}/play", play),
            web.post("/api/calls/{call_id}/clear", clear),
        ]
    )
