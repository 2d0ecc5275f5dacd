"""Folding the server's plain counters into Prometheus metrics (:mod:`vobiz_stream.app.metrics`)."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from vobiz_stream.app.keeper import HandlingLatency
from vobiz_stream.app.metrics import ServerMetrics, StreamCounts


def page(metrics: ServerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def note_late(latency: HandlingLatency, late_ms: float, count: int) -> None:
    for _ in range(count):
        latency.note(round(time.time() * 1000.0 - late_ms))


def test_latency_bins_fold_into_the_histogram_once() -> None:
    latency = HandlingLatency()
    open_streams = [StreamCounts(frames_in=7, frames_out=3)]
    refusals = {"at_capacity": 0}
    metrics = ServerMetrics(latency, lambda: open_streams, lambda: refusals, lambda: 4)
    note_late(latency, 0.3, 10)  # well inside the buckets, whatever the clock does meanwhile
    note_late(latency, 30.0, 5)
    first = page(metrics)
    assert first[("vobiz_frame_handling_seconds_bucket", (("le", "0.001"),))] == 10
    assert first[("vobiz_frame_handling_seconds_bucket", (("le", "0.02"),))] == 10
    assert first[("vobiz_frame_handling_seconds_bucket", (("le", "0.05"),))] == 15
    assert first[("vobiz_frame_handling_seconds_count", ())] == 15
    assert 0.14 < first[("vobiz_frame_handling_seconds_sum", ())] < 0.17  # 10 x 0.3 + 5 x 30 ms
    assert first[("vobiz_active_calls", ())] == 1
    assert first[("vobiz_frames_in_total", ())] == 7
    assert first[("vobiz_store_queue_depth", ())] == 4

    note_late(latency, 3.0, 2)
    open_streams.clear()  # the stream ended with 9 frames in: counted once, not twice
    metrics.stream_ended("socket_closed (1006)", StreamCounts(frames_in=9, frames_out=3))
    refusals["at_capacity"] = 2
    second = page(metrics)
    assert second[("vobiz_frame_handling_seconds_count", ())] == 17
    assert second[("vobiz_frame_handling_seconds_bucket", (("le", "0.005"),))] == 12
    assert second[("vobiz_frames_in_total", ())] == 9
    assert second[("vobiz_frames_out_total", ())] == 3
    assert second[("vobiz_active_calls", ())] == 0
    assert second[("vobiz_calls_ended_total", (("reason", "socket_closed"),))] == 1
    assert second[("vobiz_admission_refusals_total", (("reason", "at_capacity"),))] == 2
    assert page(metrics)[("vobiz_frame_handling_seconds_count", ())] == 17  # nothing new
