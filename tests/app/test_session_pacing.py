"""Paced playback on a transport that can send without waiting (as picows's): the due frames go
out from the shared frame clock's tick through ``send_now``, on time and in order, and a socket
that cannot take them now gets them through the awaited send instead, none lost."""

from __future__ import annotations

import asyncio

from tests.app.test_session import FakeTransport, finish, nested_start, sine, until
from vobiz_stream.app.session import CallSession, SessionOptions
from vobiz_stream.audio import ByteOrder
from vobiz_stream.core.protocol import Checkpoint, PlayAudio, parse_command
from vobiz_stream.transports.gateway import SendsAtOnce


class AtOnceTransport(FakeTransport):
    """A :class:`FakeTransport` that can also send without waiting while not ``paused``."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.sent_at_once = 0

    def can_send_now(self) -> bool:
        return not self.paused and not self.closed

    def send_now(self, data: bytes) -> None:
        self.sent.append((asyncio.get_running_loop().time(), data))
        self.sent_at_once += 1


def at_once_session(max_lead: float) -> tuple[CallSession, AtOnceTransport]:
    transport = AtOnceTransport()
    assert isinstance(transport, SendsAtOnce)
    options = SessionOptions(byte_order=ByteOrder.LITTLE, max_lead=max_lead)
    session = CallSession(transport, options, query={"call": "42"})
    session.feed(nested_start())
    return session, transport


async def test_paced_frames_go_out_from_the_clock_tick_on_time() -> None:
    max_lead = 0.1
    session, transport = at_once_session(max_lead)
    await session.play(sine(440, 0.5, 8000), 8000)
    await until(lambda: any(isinstance(c, Checkpoint) for c in transport.commands()))

    times = [at for at, text in transport.sent if isinstance(parse_command(text), PlayAudio)]
    assert len(times) == 25
    # The first max_lead goes with the play (the sender task); every later frame from the tick.
    assert transport.sent_at_once >= 20
    start = times[0]
    for index in range(5, 25):
        due = start + (index - 4) * 0.02
        assert due - 0.001 <= times[index] <= due + 0.03, index
    assert session.playback_stats.max_lead <= max_lead + 1e-9
    await finish(session)


async def test_a_socket_that_cannot_send_now_gets_the_frames_awaited_none_lost() -> None:
    session, transport = at_once_session(0.1)
    pcm = sine(440, 0.6, 8000)
    transport.paused = True
    await session.play(pcm, 8000)
    await asyncio.sleep(0.2)  # several deadlines while it cannot send at once
    awaited = len(transport.sent)
    transport.paused = False
    await until(lambda: any(isinstance(c, Checkpoint) for c in transport.commands()))

    assert awaited > 5 and transport.sent_at_once > 5  # both ways were used
    plays = [c for c in transport.commands() if isinstance(c, PlayAudio)]
    assert len(plays) == 30
    sent = b"".join(play.payload for play in plays)
    assert sent == pcm.astype("<i2").tobytes()  # every frame, in order
    await finish(session)


async def test_a_closed_session_sends_nothing_more_from_the_tick() -> None:
    session, transport = at_once_session(0.05)
    await session.play(sine(440, 1.0, 8000), 8000)
    await until(lambda: transport.sent_at_once >= 2)
    session.close("test over")
    count = len(transport.sent)
    await asyncio.sleep(0.1)
    assert len(transport.sent) == count
    await session.aclose()
