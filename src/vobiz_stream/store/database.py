"""Choosing the call store's database from a URL: ``sqlite:///path`` or ``postgresql://...``.

SQLite needs nothing more and suits one server process; PostgreSQL (the ``postgres`` extra:
psycopg 3 and psycopg_pool) lets several processes or machines share one call history, and the
nonces of the signed requests they accepted (:func:`open_shared_nonces`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

from vobiz_stream.errors import StoreError
from vobiz_stream.store.queue import QueuedStore

__all__ = [
    "POSTGRES_SCHEMES",
    "SharedNonces",
    "database_path",
    "open_call_store",
    "open_shared_nonces",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"


def database_path(url: str) -> Path | None:
    """The SQLite file of a ``sqlite:///path`` URL; None for a PostgreSQL URL. Raises
    :class:`StoreError` saying which URLs are accepted for anything else."""
    if url.startswith(POSTGRES_SCHEMES):
        return None
    if url.startswith(_SQLITE) and len(url) > len(_SQLITE):
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy reads them
        return Path(url[len(_SQLITE) :])
    shown = url.rsplit("@", maxsplit=1)[-1]
    raise StoreError(
        f"--database {shown!r} is not a database URL: give sqlite:///path/to/file.db (a file,"
        " relative; sqlite:////absolute/path) or postgresql://user@host:5432/database (the password"
        " in PGPASSWORD or ~/.pgpass)"
    )


def open_call_store(url: str) -> QueuedStore:
    """The server's call store (the write queue over its engine) at ``url``; raises
    :class:`StoreError` with what to do when it cannot be opened."""
    path = database_path(url)
    if path is not None:
        from vobiz_stream.store.sqlite import QueuedCallStore  # noqa: PLC0415

        return QueuedCallStore(path)
    if (
        importlib.util.find_spec("psycopg") is None
        or importlib.util.find_spec("psycopg_pool") is None
    ):
        raise StoreError(
            "a PostgreSQL call store needs psycopg and psycopg_pool:"
            " pip install 'vobiz-stream[postgres]'"
        )
    from vobiz_stream.store.postgres import QueuedPostgresStore  # noqa: PLC0415 (optional)

    return QueuedPostgresStore(url)


class SharedNonces(Protocol):
    """The nonces of signed requests, claimed by every server process sharing a call store."""

    async def claim(self, nonce: str) -> bool:
        """True once ``nonce`` is claimed for this process, False if a process sharing the
        store claimed it within the window (a replay); :class:`StoreError` if it cannot say
        (then it leaves no claim behind)."""
        ...

    async def forget(self, nonce: str) -> None:
        """Let ``nonce`` be claimed again, if this process claimed it: its request was refused
        after all."""
        ...

    async def close(self) -> None: ...


def open_shared_nonces(url: str) -> SharedNonces | None:
    """The nonces shared by the server processes on the call store at ``url``: the store's own
    table on PostgreSQL; None on SQLite, whose one process keeps them in memory."""
    if database_path(url) is not None:
        return None
    from vobiz_stream.store.postgres import postgres_where  # noqa: PLC0415 (optional)
    from vobiz_stream.store.postgres_nonces import PostgresNonceClaims  # noqa: PLC0415

    return PostgresNonceClaims(url, postgres_where(url))
