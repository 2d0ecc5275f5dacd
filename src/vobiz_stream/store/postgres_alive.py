"""How a server process says it is alive to the others sharing its PostgreSQL call store.

Each process holds an advisory lock on its worker id (:data:`~vobiz_stream.store.postgres_schema.
LOCK_CLASS`, id) on a connection of its own for as long as it runs. PostgreSQL lets go of the
lock when that connection ends, however the process ended (killed, crashed, its machine gone
once the connection times out), which is what another process starting up looks at to tell the
streams of a process that is gone from those of one still running.

A database restart ends every connection, and so every lock: a thread checks the connection
every :attr:`AliveLock.CHECK_EVERY` seconds and, once the database answers again, connects and
takes the lock again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from vobiz_stream.errors import StoreError
from vobiz_stream.store.postgres_schema import LOCK_CLASS, connect_postgres

__all__ = ["AliveLock"]

log = logging.getLogger("vobiz_stream.store")


class AliveLock:
    """The lock saying worker ``worker`` is alive, on the database at ``url``, held from
    :meth:`take` until :meth:`close`; ``db`` is a connection already open to take it on."""

    CHECK_EVERY = 2.0
    """Seconds between two checks that the lock's connection is still there."""

    def __init__(self, url: str, where: str, db: psycopg.Connection[Any]) -> None:
        self._url = url
        self._where = where
        self._db = db
        self._worker: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="vobiz-stream-alive", daemon=True)

    def take(self, worker: int) -> None:
        """Hold the lock of ``worker`` and keep it; raises :class:`StoreError` if it cannot."""
        self._worker = worker
        try:
            self._lock()
        except psycopg.Error as exc:
            raise StoreError(
                f"call store {self._where}: cannot mark this process alive: {exc}"
            ) from exc
        self._thread.start()

    def _lock(self) -> None:
        query = f"SELECT pg_try_advisory_lock({LOCK_CLASS}, %s::int)"
        row = self._db.execute(query.encode(), (self._worker,)).fetchone()
        if row is None or row[0] is not True:
            raise StoreError(
                f"call store {self._where}: another connection holds the lock of worker"
                f" {self._worker}; is a second store open on this database in this process?"
            )

    def _watch(self) -> None:
        lost = False
        while not self._stop.wait(self.CHECK_EVERY):
            try:
                if lost:
                    self._db.close()
                    self._db = connect_postgres(self._url, self._where)
                    self._lock()
                    log.warning(
                        "store %s: connected again; this process is alive again", self._where
                    )
                    lost = False
                else:
                    self._db.execute("SELECT 1")
            except (psycopg.Error, StoreError) as exc:
                if not lost:
                    log.error(
                        "store %s: lost the connection that says this process is alive (%s);"
                        " trying again every %.0f s",
                        self._where,
                        str(exc).strip(),
                        self.CHECK_EVERY,
                    )
                lost = True

    def close(self) -> None:
        """Let go of the lock (the connection closes); safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.CHECK_EVERY + 15)
        self._db.close()
