"""Schema versions of the call store, whatever the engine: which steps bring a store up to date.

Each engine lists its steps by version, in its own SQL dialect (SQLite:
:mod:`~vobiz_stream.store.sqlite_schema`, PostgreSQL: :mod:`~vobiz_stream.store.postgres_schema`):
step 1 creates the tables of version 1, step N brings version N-1 to N. At start-up the engine
reads the version its ``schema_version`` table holds (none in a new store) and applies the steps
after it, in one transaction, so a store is never left half upgraded. A store of a newer version
than this vobiz-stream knows is refused, since an older program cannot know what the newer
tables mean.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from vobiz_stream.errors import StoreError

__all__ = ["SCHEMA_VERSION", "steps_after"]

log = logging.getLogger("vobiz_stream.store")

SCHEMA_VERSION = 4
"""The version this vobiz-stream reads and writes. 1: calls, streams, events and status
callbacks. 2: the server processes (``workers``) and the one holding each stream, so several
processes can share one database and each start marks interrupted only the streams of processes
that are gone; events and callbacks indexed by call and time, the order they are read back in.
3: the indexes the call search uses (by status, by a part of a number). 4: on PostgreSQL, what
server processes sharing the database share: the nonces of signed requests accepted lately
(``used_nonces``), audio played into a call another process holds, live calls for the console."""


def steps_after(
    found: int | None, steps: Mapping[int, Sequence[str]], where: str
) -> list[tuple[int, Sequence[str]]]:
    """The steps (version, statements) to apply, oldest first, to a store at version ``found``
    (None: a new store); raises :class:`StoreError` for a store newer than this program."""
    if sorted(steps) != list(range(1, SCHEMA_VERSION + 1)):
        raise AssertionError(f"schema steps {sorted(steps)} do not lead to {SCHEMA_VERSION}")
    current = 0 if found is None else found
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"call store {where} has schema version {current}, this vobiz-stream reads versions"
            f" up to {SCHEMA_VERSION}: open it with a newer vobiz-stream, or choose another store"
        )
    if found is not None and current < SCHEMA_VERSION:
        log.warning(
            "call store %s: upgrading its schema from version %d to %d",
            where,
            current,
            SCHEMA_VERSION,
        )
    return [(version, steps[version]) for version in range(current + 1, SCHEMA_VERSION + 1)]
