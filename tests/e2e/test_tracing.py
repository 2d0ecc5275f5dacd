"""OpenTelemetry: one span per call's stream, read back with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.e2e.conftest import Carrier, StartServer

EXPORTED = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTED))
trace.set_tracer_provider(_provider)  # once per process, as an app that traces would


async def test_each_stream_is_one_span_with_its_events(
    start_server: StartServer, connect: Callable[[str], Awaitable[Carrier]]
) -> None:
    EXPORTED.clear()
    running = await start_server()
    whole = await connect(running.ws_url)
    await whole.start(call_id="traced-call")
    for chunk in range(12):
        await whole.media(b"\x00\x01" * 160, chunk)
    await whole.send({"event": "stop", "sequenceNumber": 13, "stop": {}})
    cut = await connect(running.ws_url)
    await cut.start(call_id="cut-call", stream_id="stream-2")
    await cut.socket.close(code=1011)
    await whole.socket.close()
    await running.wait_idle()

    spans = {span.attributes["vobiz.call_id"]: span for span in EXPORTED.get_finished_spans()}
    assert set(spans) == {"traced-call", "cut-call"}
    span = spans["traced-call"]
    assert span.name == "vobiz.stream"
    assert span.attributes["vobiz.frames_in"] == 12
    assert span.attributes["vobiz.end_reason"] == "stop"
    assert [event.name for event in span.events] == ["stream.opened", "stream.ended"]
    assert span.status.status_code is StatusCode.UNSET
    assert spans["cut-call"].attributes["vobiz.end_reason"] == "socket_closed (1011)"
    assert spans["cut-call"].status.status_code is StatusCode.ERROR
