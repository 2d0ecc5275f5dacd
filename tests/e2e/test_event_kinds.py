"""What a real call stores is named by the package's two lists: every kept event's kind is an
:class:`EventKind`, and the stream's end reason reads back as an :class:`EndReason`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from tests.e2e.conftest import Carrier, StartServer, frames_of, speech
from vobiz_stream import EndReason, EventKind
from vobiz_stream.app.session import CallSession, SpeechDetection
from vobiz_stream.audio import ByteOrder, encode_l16
from vobiz_stream.audio.speech import tone
from vobiz_stream.core.stream_events import DtmfReceived
from vobiz_stream.store.event_budget import NOT_STORED

Connect = Callable[[str], Awaitable[Carrier]]


async def busy_agent(session: CallSession) -> None:
    """Listens for speech, plays, asks for a checkpoint, clears at a key press."""
    session.detect_speech(SpeechDetection())
    await session.play(tone(1.0, 8000), 8000)
    await session.checkpoint("after-tone")
    async for event in session.events():
        if isinstance(event, DtmfReceived):
            await session.clear()


async def test_every_kind_a_call_stores_is_on_the_list(
    start_server: StartServer, connect: Connect
) -> None:
    running = await start_server(busy_agent)
    carrier = await connect(running.ws_url)
    await carrier.start()
    await carrier.wait_for("checkpoint")
    samples, rate = speech("speech_male_8k")
    samples = np.concatenate([samples, np.zeros(rate, np.int16)])  # a second of quiet: it ends
    for chunk, frame in enumerate(frames_of(samples, rate)):  # big-endian: detected
        await carrier.media(encode_l16(frame, ByteOrder.BIG), chunk)
    await carrier.send({"event": "playedStream", "name": "after-tone", "streamId": "stream-1"})
    await carrier.send({"event": "dtmf", "dtmf": {"digit": "5"}, "streamId": "stream-1"})
    await carrier.wait_for("clearAudio")
    await carrier.send({"event": "clearedAudio", "streamId": "stream-1"})
    await carrier.send({"event": "somethingNew", "streamId": "stream-1"})
    await carrier.send("not json")
    await carrier.send({"event": "stop", "reason": "hangup", "streamId": "stream-1"})
    await carrier.socket.close()
    await running.wait_idle()
    await running.server.store.settled()

    [call] = running.server.store.list_calls()
    kinds = {event["kind"] for event in call["events"]}
    assert kinds <= set(EventKind), kinds - set(EventKind)
    assert kinds >= {
        EventKind.BYTE_ORDER,
        EventKind.SPEECH_STARTED,
        EventKind.SPEECH_ENDED,
        EventKind.CHECKPOINT_PLAYED,
        EventKind.DTMF,
        EventKind.CLEAR,
        EventKind.CLEARED,
        EventKind.UNKNOWN_EVENT,
        EventKind.MALFORMED_FRAME,
        EventKind.STOP,
    }
    [stream] = call["streams"]
    assert EndReason.of(stream["end_reason"]) is EndReason.STOP


def test_the_stores_summary_kind_is_on_the_list() -> None:
    assert NOT_STORED == EventKind.EVENTS_NOT_STORED


def test_an_end_reason_with_its_detail_reads_back_as_its_kind() -> None:
    assert EndReason.of("socket_closed (1009)") is EndReason.SOCKET_CLOSED
    assert EndReason.of("socket_dropped: CancelledError") is EndReason.SOCKET_DROPPED
    assert EndReason.of("something else") is None
