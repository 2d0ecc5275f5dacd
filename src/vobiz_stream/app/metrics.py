"""Prometheus metrics of the stream server, for ``/metrics``.

Nothing here runs per media frame. The frame path keeps counting as it always has, in plain
ints (each session's :class:`~vobiz_stream.app.session.SessionStats` and
:class:`~vobiz_stream.core.playback.PlaybackStats`, the server's
:class:`~vobiz_stream.app.keeper.HandlingLatency` bins); :meth:`ServerMetrics.fold` adds what
changed since the last fold into the Prometheus metrics, once every :data:`FOLD_SECONDS` and
right before a scrape. Per call, :meth:`ServerMetrics.stream_ended` counts the end reason.

With ``serve --workers N`` the supervisor gives every worker one ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode): each worker writes its values there, and whichever
worker answers a scrape sums them all, so ``/metrics`` shows the whole server from any worker.
A worker's folds are at most :data:`FOLD_SECONDS` old in that sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from vobiz_stream.app.admission import Admission
from vobiz_stream.app.keeper import HandlingLatency
from vobiz_stream.app.media_socket import MediaStreams
from vobiz_stream.app.session import CallSession
from vobiz_stream.store import QueuedStore

FOLD_SECONDS = 2.0
"""How often a worker adds its counts into the Prometheus metrics."""

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus-client's multiprocess mode keeps every worker's values."""

LATENCY_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0)
"""Upper bounds (ms) of the per-frame handling latency histogram; each is a multiple of the
0.1 ms bins of :class:`~vobiz_stream.app.keeper.HandlingLatency`, so folding them is exact."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of ``/metrics``."""


@dataclass(frozen=True)
class StreamCounts:
    """What one open stream's counters say now: frames in and out."""

    frames_in: int
    frames_out: int


class ServerMetrics:
    """One worker's metrics: Prometheus metrics fed from the server's own counters."""

    def __init__(
        self,
        latency: HandlingLatency,
        open_streams: Callable[[], Iterable[StreamCounts]],
        admission_refusals: Callable[[], dict[str, int]],
        store_queue_depth: Callable[[], int],
    ) -> None:
        self._latency = latency
        self._open_streams = open_streams
        self._admission_refusals = admission_refusals
        self._store_queue_depth = store_queue_depth
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        """Whether the values go to the shared folder of ``serve --workers`` (else memory)."""
        self._registry = CollectorRegistry(auto_describe=True)
        self._own: list[Counter | Gauge | Histogram] = []
        self.active_calls = self._gauge("vobiz_active_calls", "Media streams open now")
        self.calls_ended = self._counter(
            "vobiz_calls_ended", "Media streams ended, by end reason", ("reason",)
        )
        self.frames_in = self._counter("vobiz_frames_in", "Media frames received from the carrier")
        self.frames_out = self._counter("vobiz_frames_out", "Media frames sent to the carrier")
        self.frame_latency = Histogram(
            "vobiz_frame_handling_seconds",
            "Per media frame: from its due time (the carrier's timestamp) to when it was recorded",
            buckets=[bound / 1000.0 for bound in LATENCY_BUCKETS_MS],
            registry=None,
        )
        self._own.append(self.frame_latency)
        self.admission_refusals = self._counter(
            "vobiz_admission_refusals", "Media sockets refused, by reason", ("reason",)
        )
        self.store_queue_depth = self._gauge(
            "vobiz_store_queue_depth", "Store writes queued and not yet committed"
        )
        self.upload_backlog = self._gauge(
            "vobiz_upload_backlog", "Recordings waiting to be uploaded to object storage"
        )
        self.upload_failures = self._counter(
            "vobiz_upload_failures", "Recording uploads that failed (each retry counts)"
        )
        if not self.multiprocess:
            for metric in self._own:
                self._registry.register(metric)
        else:
            MultiProcessCollector(self._registry)  # type: ignore[no-untyped-call]
        self._ended_in = 0
        self._ended_out = 0
        self._folded_in = 0
        self._folded_out = 0
        self._folded_buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self._folded_bin_sum = 0
        self._folded_refusals: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def _counter(self, name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
        metric = Counter(name, text, labels, registry=None)
        self._own.append(metric)
        return metric

    def _gauge(self, name: str, text: str) -> Gauge:
        metric = Gauge(name, text, registry=None, multiprocess_mode="livesum")
        self._own.append(metric)
        return metric

    # -- hooks --------------------------------------------------------------------------------

    def stream_ended(self, reason: str | None, counts: StreamCounts) -> None:
        """A stream ended (once per call): its end reason, and its frames into the totals."""
        self.calls_ended.labels(reason=_reason_label(reason)).inc()
        self._ended_in += counts.frames_in
        self._ended_out += counts.frames_out

    def upload_pending(self, backlog: int) -> None:
        """The recording uploader's hook: ``backlog`` recordings wait to be uploaded now."""
        self.upload_backlog.set(backlog)

    def upload_failed(self) -> None:
        """The recording uploader's hook: an upload attempt failed."""
        self.upload_failures.inc()

    # -- folding ------------------------------------------------------------------------------

    def fold(self) -> None:
        """Add what the server's counters gained since the last fold into the metrics."""
        frames_in, frames_out, active = self._ended_in, self._ended_out, 0
        for counts in self._open_streams():
            frames_in += counts.frames_in
            frames_out += counts.frames_out
            active += 1
        self.active_calls.set(active)
        # A stream counted open at one fold and ended at the next adds only what it gained.
        self.frames_in.inc(max(0, frames_in - self._folded_in))
        self.frames_out.inc(max(0, frames_out - self._folded_out))
        self._folded_in = max(self._folded_in, frames_in)
        self._folded_out = max(self._folded_out, frames_out)
        self._fold_latency()
        for reason, count in self._admission_refusals().items():
            gained = count - self._folded_refusals.get(reason, 0)
            refusals = self.admission_refusals.labels(reason=reason)  # shown from 0 on
            if gained > 0:
                refusals.inc(gained)
                self._folded_refusals[reason] = count
        self.store_queue_depth.set(self._store_queue_depth())

    def _fold_latency(self) -> None:
        """Fold the latency bins into the histogram: only the bins up to the largest latency
        seen are read (a few hundred, not 100 000), and each Prometheus bucket is a run of
        whole bins."""
        latency = self._latency
        top = min(latency.BINS, int(latency.max_ms * 10.0) + 1)
        bins = latency.bins_up_to(top)
        edges = [int(bound * 10.0) for bound in LATENCY_BUCKETS_MS]
        counts, start = [], 0
        for edge in edges:
            counts.append(sum(bins[start:edge]))
            start = edge
        counts.append(sum(bins[start:]))
        bin_sum = sum(index * count for index, count in enumerate(bins) if count)
        gained_frames = sum(counts) - sum(self._folded_buckets)
        for index, count in enumerate(counts):
            gained = count - self._folded_buckets[index]
            if gained > 0:
                _add_to_bucket(self.frame_latency, index, gained)
        if gained_frames > 0:
            # Each bin counts as its middle: exact to 0.05 ms a frame.
            seconds = (bin_sum - self._folded_bin_sum + 0.5 * gained_frames) / 10_000.0
            _add_to_sum(self.frame_latency, seconds)
        self._folded_buckets = counts
        self._folded_bin_sum = bin_sum

    # -- exposition ---------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text of every worker (multiprocess) or this one, folded now."""
        self.fold()
        return generate_latest(self._registry)

    def start(self) -> None:
        """Fold every :data:`FOLD_SECONDS` until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._fold_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.fold()  # the last counts of a worker that stops are not lost

    async def _fold_forever(self) -> None:
        while True:
            await asyncio.sleep(FOLD_SECONDS)
            self.fold()


def _reason_label(reason: str | None) -> str:
    """An end reason as a label with few values: ``socket_closed (1006)`` is ``socket_closed``."""
    if not reason:
        return "unknown"
    return reason.split(" ", 1)[0][:40]


def _add_to_bucket(histogram: Histogram, index: int, count: int) -> None:
    """Count ``count`` observations into bucket ``index`` at once (prometheus-client has no
    public call for it; its buckets are kept per bucket, not cumulative)."""
    histogram._buckets[index].inc(count)


def _add_to_sum(histogram: Histogram, seconds: float) -> None:
    histogram._sum.inc(seconds)


# -- the server's wiring ----------------------------------------------------------------------


def server_metrics(
    streams: MediaStreams, latency: HandlingLatency, admission: Admission, store: QueuedStore
) -> ServerMetrics:
    """The metrics of a server's streams, admission and store; counts each ended stream."""

    def open_streams() -> Iterable[StreamCounts]:
        return (_counts(stream.session) for stream in streams.open)

    def refusals() -> dict[str, int]:
        refused = admission.counters()["refused"]
        return refused if isinstance(refused, dict) else {}

    metrics = ServerMetrics(latency, open_streams, refusals, lambda: store.pending_writes)
    streams.watchers.append(_EndCounter(metrics))
    return metrics


class _EndCounter:
    """Counts each ended stream into the metrics."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def stream_opened(self, session: CallSession) -> None:
        pass  # counted open at each fold

    def stream_ended(self, session: CallSession) -> None:
        self._metrics.stream_ended(session.end_reason, _counts(session))


def _counts(session: CallSession) -> StreamCounts:
    return StreamCounts(session.stats.frames_received, session.playback_stats.frames_sent)


def metrics_response(metrics: ServerMetrics) -> web.Response:
    """``/metrics``: the Prometheus text format."""
    response = web.Response(body=metrics.exposition())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def add_metrics(app: web.Application, metrics: ServerMetrics) -> None:
    """``GET /metrics`` on the server's app (behind its admin token), folding while it runs."""

    async def page(_request: web.Request) -> web.Response:
        return metrics_response(metrics)

    async def start(_app: web.Application) -> None:
        metrics.start()

    async def stop(_app: web.Application) -> None:
        await metrics.stop()

    app.add_routes([web.get("/metrics", page)])
    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def metrics_app(metrics: ServerMetrics) -> web.Application:
    """The app of ``--metrics-port``: ``/metrics`` alone, without the admin token (keep that
    port on loopback or a private network)."""

    async def page(_request: web.Request) -> web.Response:
        return metrics_response(metrics)

    app = web.Application()
    app.add_routes([web.get("/metrics", page)])
    return app
