"""A batch of writes done one by one, each failure kept to its own write: the careful path.

Every engine's ``apply_batch`` returns one entry per write (None: done; a :class:`StoreError`:
undone alone and logged); :func:`each_alone` is that loop, over an engine's ``apply`` that puts
each write of the transaction under way in a savepoint of its own, or over the answers of
writes already committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from vobiz_stream.errors import StoreError
from vobiz_stream.logtext import loggable
from vobiz_stream.store.interface import StoreFullError
from vobiz_stream.store.writes import Write

__all__ = ["each_alone"]

log = logging.getLogger("vobiz_stream.store")


def each_alone(
    apply: Callable[[Write], object], writes: Sequence[Write]
) -> list[StoreError | None]:
    """Each of ``writes`` done by ``apply``: a failure is logged and listed at its write's place,
    never raised; but :class:`StoreFullError` is raised, failing the batch whole (it is held
    and tried again)."""
    failures: list[StoreError | None] = []
    for write in writes:
        try:
            apply(write)
        except StoreFullError:
            raise
        except StoreError as exc:  # logged: there is no caller left to raise it to
            log.error("call %s: cannot %s: %s", loggable(write.call_id or "-"), write.what, exc)
            failures.append(exc)
        except Exception as exc:  # a bug in one write must not stop the writer (nor later ones)
            log.exception("call %s: cannot %s", loggable(write.call_id or "-"), write.what)
            failures.append(StoreError(f"cannot {write.what}: {exc!r}"))
        else:
            failures.append(None)
    return failures
