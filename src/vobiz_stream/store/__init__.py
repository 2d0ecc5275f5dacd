"""The call store: calls, their streams, their events and their status callbacks.

:mod:`~vobiz_stream.store.interface` is what the app writes and reads through, with the record
types; :mod:`~vobiz_stream.store.writes` the writes as values; :mod:`~vobiz_stream.store.queue`
the write queue over any engine; :mod:`~vobiz_stream.store.sqlite` the SQLite engine, and
:class:`QueuedCallStore`, the queue over it that the server uses.
"""

from vobiz_stream.store.interface import (
    CallbackRecord,
    CallHistory,
    CallQuery,
    CallRecord,
    CallStatus,
    CallSummary,
    EventKind,
    EventRecord,
    StoreBusyError,
    StoreEngine,
    StoreFullError,
    StreamRecord,
)
from vobiz_stream.store.migrations import SCHEMA_VERSION
from vobiz_stream.store.queue import QueuedStore
from vobiz_stream.store.sqlite import CallStore, QueuedCallStore

__all__ = [
    "SCHEMA_VERSION",
    "CallHistory",
    "CallQuery",
    "CallRecord",
    "CallStatus",
    "CallStore",
    "CallSummary",
    "CallbackRecord",
    "EventKind",
    "EventRecord",
    "QueuedCallStore",
    "QueuedStore",
    "StoreBusyError",
    "StoreEngine",
    "StoreFullError",
    "StreamRecord",
]
