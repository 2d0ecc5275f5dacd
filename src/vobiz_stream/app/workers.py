"""``serve --workers N``: a supervisor and N worker processes sharing one port.

Every worker is a whole server (:func:`vobiz_stream.app.server.serve`) listening with
``SO_REUSEPORT``, so the kernel spreads new connections over the workers; none of them needs to
know the others, because everything a call leaves behind goes to the shared database. The
supervisor:

* holds the data folder's lock for all of them (a second server on the folder still stops);
* turns ``--stream-secret auto`` into one random secret all its workers share (several
  machines need one secret given to all);
* gives the workers one folder for prometheus-client's multiprocess mode, so ``/metrics`` from
  any worker shows them all;
* starts a new worker when one dies, and says so; one that keeps dying right after its start
  (a port taken, a broken handler) stops the whole server instead of looping;
* on SIGTERM or SIGINT passes SIGTERM on, so every worker drains its calls, and waits for them.

SQLite is one file on one machine, written by one process: more than one worker needs
PostgreSQL (``--database postgresql://...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from types import FrameType

from vobiz_stream.app.admission import AUTO_SECRET
from vobiz_stream.app.config import Settings
from vobiz_stream.app.datadir_lock import DataDirLock
from vobiz_stream.errors import ConfigError
from vobiz_stream.store.database import POSTGRES_SCHEMES

log = logging.getLogger("vobiz_stream.app.workers")

QUICK_DEATH_SECONDS = 5.0
"""A worker that dies sooner than this after its start died of its start."""

QUICK_DEATHS_ALLOWED = 3
"""Quick deaths in a row after which the supervisor gives up rather than loop."""

STOP_MARGIN = 20.0
"""Seconds past ``shutdown_grace`` the workers get to finish before they are killed."""

PARENT_CHECK_SECONDS = 1.0
"""How often a worker looks whether its supervisor still runs (it stops if not)."""

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse a worker count the settings cannot serve, saying what to change."""
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}")
    if workers == 1:
        return
    if not _shared_database(settings):
        raise ConfigError(
            f"--workers {workers} needs a database every worker can write: SQLite is one file"
            " written by one process. Give --database postgresql://user:password@host/db,"
            " or run one worker"
        )
    if settings.port == 0:
        raise ConfigError(f"--workers {workers} needs a fixed --port (they all listen on it)")
    if settings.media_transport == "picows" and not settings.media_port:
        raise ConfigError(
            f"--workers {workers} with --media-transport picows needs a fixed --media-port"
            " (every worker listens on it)"
        )


def _shared_database(settings: Settings) -> bool:
    return settings.database_url.startswith(POSTGRES_SCHEMES)


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs ``workers`` worker processes until SIGTERM or SIGINT (see the module's text)."""

    def __init__(self, settings: Settings, workers: int) -> None:
        check_workers(settings, workers)
        if settings.stream_secret == AUTO_SECRET:
            # One random secret for all: a token one worker gave must pass at any other.
            settings = replace(settings, stream_secret=secrets.token_urlsafe(32))
        self.settings = settings
        self.count = workers
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._quick_deaths = 0

    def run(self) -> int:
        """Start the workers, keep them running, stop them on a signal; the exit status."""
        data_lock = DataDirLock(self.settings.data_dir)
        data_lock.acquire()  # for every worker: a second server on the folder stops here
        metrics_dir = tempfile.mkdtemp(prefix="vobiz-stream-metrics-")
        os.environ[METRICS_ENV] = metrics_dir  # the workers inherit it
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            data_lock.note(port=self.settings.port)
            for index in range(1, self.count + 1):
                self._start(index)
            log.info(
                "supervisor (pid %d): %d workers on port %d",
                os.getpid(),
                self.count,
                self.settings.port,
            )
            status = self._watch()
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.environ.pop(METRICS_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            data_lock.release()
        log.info("supervisor stopped")
        return status

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("%s: stopping the workers", signal.Signals(signum).name)
        self._stopping = True

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=run_worker,
            args=(self.settings, index, os.getpid()),
            name=f"vobiz-stream worker {index}",
        )
        process.start()
        self._workers[index] = _Worker(index, process)

    def _watch(self) -> int:
        """Restart dead workers until a signal; 1 if they keep dying at start, else 0."""
        while not self._stopping:
            sentinels = [worker.process.sentinel for worker in self._workers.values()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            for worker in list(self._workers.values()):
                if self._stopping or worker.process.is_alive():
                    continue
                if not self._replace(worker):
                    return 1
        return 0

    def _replace(self, worker: _Worker) -> bool:
        """Start a new worker in a dead one's place; False when they keep dying at start."""
        pid, code = worker.process.pid, worker.process.exitcode
        _forget_metrics_of(pid)
        lived = time.monotonic() - worker.started
        self._quick_deaths = self._quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        if self._quick_deaths >= QUICK_DEATHS_ALLOWED:
            log.error(
                "worker %d (pid %s) exited with %s %.1f s after its start, %d times in a row;"
                " stopping: see the worker's error above",
                worker.index,
                pid,
                _exit_text(code),
                lived,
                self._quick_deaths,
            )
            return False
        log.warning(
            "worker %d (pid %s) exited with %s after %.0f s; its open calls are cut off;"
            " starting a new worker %d",
            worker.index,
            pid,
            _exit_text(code),
            lived,
            worker.index,
        )
        self._start(worker.index)
        return True

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains its calls), then wait; kill what is left."""
        workers = [worker for worker in self._workers.values() if worker.process.is_alive()]
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        deadline = time.monotonic() + self.settings.shutdown_grace + STOP_MARGIN
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error(
                    "worker %d (pid %s) did not stop; killing it", worker.index, worker.process.pid
                )
                worker.process.kill()
                worker.process.join(5.0)
        for worker in self._workers.values():
            _forget_metrics_of(worker.process.pid)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


def _forget_metrics_of(pid: int | None) -> None:
    """A dead worker's gauges leave the sums (its counters stay: they only grow)."""
    if pid is None or METRICS_ENV not in os.environ:
        return
    from prometheus_client import multiprocess  # noqa: PLC0415 (the workers' business)

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def run_worker(settings: Settings, index: int, supervisor_pid: int) -> None:
    """A worker process: one whole server on the shared port, until SIGTERM or its supervisor
    is gone."""
    from vobiz_stream.app.server import serve  # noqa: PLC0415
    from vobiz_stream.loop import run  # noqa: PLC0415

    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)-7s [worker {index}] %(message)s",
        stream=sys.stderr,
    )
    try:
        run(serve(settings, supervisor_pid=supervisor_pid))
    except Exception as exc:  # its message is what the supervisor's log points at
        log.error("worker %d could not run: %s", index, exc)
        sys.exit(2)


async def watch_supervisor(supervisor_pid: int, stop: asyncio.Event) -> None:
    """Set ``stop`` when the supervisor is gone (killed with -9: nobody sends SIGTERM)."""
    while os.getppid() == supervisor_pid:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
    log.warning("the supervisor (pid %d) is gone; stopping", supervisor_pid)
    stop.set()
