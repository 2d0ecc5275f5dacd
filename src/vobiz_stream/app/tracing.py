"""OpenTelemetry traces: one span per call's stream, with its events (the ``otel`` extra).

When ``opentelemetry-api`` is installed, every media stream is a span named ``vobiz.stream``,
from the socket's acceptance to the stream's end, with the events ``stream.opened`` and
``stream.ended`` (its end reason) and the call's figures as attributes (call and stream ids,
format, frames in, malformed and out). The spans go wherever the process's tracer provider
sends them: nowhere by default (the API's no-op provider, which costs next to nothing), or to a
collector when the SDK is set up, e.g. ``opentelemetry-instrument vobiz-stream serve`` with the
``OTEL_*`` variables, or by the app that embeds the server. Nothing runs per media frame.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from vobiz_stream.app.media_socket import MediaStreams
from vobiz_stream.app.session import CallSession

if TYPE_CHECKING:
    from opentelemetry.trace import Span

CLEAN_ENDS = frozenset({"stop", "hangup", "socket_closed", "shutdown"})
"""End reasons of a stream that ended as streams do; any other marks its span as an error."""


class CallTracer:
    """A span per stream: started when its socket is accepted, ended with the stream."""

    def __init__(self) -> None:
        from opentelemetry import trace  # noqa: PLC0415 (the otel extra)

        self._tracer = trace.get_tracer("vobiz_stream")
        self._spans: dict[int, Span] = {}

    def stream_opened(self, session: CallSession) -> None:
        span = self._tracer.start_span("vobiz.stream")
        span.add_event("stream.opened")
        self._spans[id(session)] = span

    def stream_ended(self, session: CallSession) -> None:
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

        span = self._spans.pop(id(session), None)
        if span is None:
            return
        reason = session.end_reason or "unknown"
        span.set_attributes(
            {
                "vobiz.call_id": session.call_id or "",
                "vobiz.stream_id": session.stream_id or "",
                "vobiz.encoding": session.inbound_format.encoding.value,
                "vobiz.sample_rate": session.inbound_format.sample_rate,
                "vobiz.frames_in": session.stats.frames_received,
                "vobiz.frames_malformed": session.stats.frames_malformed,
                "vobiz.frames_out": session.playback_stats.frames_sent,
                "vobiz.end_reason": reason,
            }
        )
        span.add_event("stream.ended", {"reason": reason})
        if reason not in CLEAN_ENDS:
            span.set_status(Status(StatusCode.ERROR, reason))
        span.end()


def trace_calls(streams: MediaStreams) -> None:
    """Give every stream of ``streams`` a span, if the ``otel`` extra is installed."""
    if importlib.util.find_spec("opentelemetry") is not None:
        streams.watchers.append(CallTracer())
