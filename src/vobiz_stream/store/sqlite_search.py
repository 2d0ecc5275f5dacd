"""Searching the SQLite call store: calls by part of a number, a date range and a status.

The query is built from the filters given, so SQLite's planner sees each one and picks an index:
``calls_by_first_seen`` for the order and a date range (walked newest first, stopping once a page
is full), ``calls_by_status`` for a status. A part of a number cannot use a B-tree index (it may
sit anywhere in the number): those searches walk the date index newest first and stop as soon as
a page of matches is found, reading the numbers from an index that holds them
(``calls_by_numbers``) rather than from the rows. The indexes come with the store's schema
(version 3, :mod:`~vobiz_stream.store.sqlite_schema`).
"""

from __future__ import annotations

from vobiz_stream.core.callbacks import format_utc
from vobiz_stream.store.interface import CallQuery

__all__ = ["search_sql"]


def search_sql(query: CallQuery) -> tuple[str, dict[str, object]]:
    """The ``SELECT rowid FROM calls ...`` of ``query``, newest first, one more than a page
    (whether more follow), and its parameters."""
    where: list[str] = []
    parameters: dict[str, object] = {"limit": query.limit + 1, "offset": query.offset}
    table = "calls"
    if query.number:
        # instr: the part taken literally, and twice as fast as LIKE; the numbers are read from
        # the covering index, not from the table's rows.
        where.append("(instr(from_number, :number) > 0 OR instr(to_number, :number) > 0)")
        parameters["number"] = query.number
        if query.status is None:
            table = "calls INDEXED BY calls_by_numbers"
    if query.since is not None:
        where.append("first_seen >= :since")
        parameters["since"] = format_utc(query.since)
    if query.until is not None:
        where.append("first_seen < :until")
        parameters["until"] = format_utc(query.until)
    if query.status is not None:
        where.append("status = :status")
        parameters["status"] = query.status.value
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    order = "ORDER BY first_seen DESC, rowid DESC LIMIT :limit OFFSET :offset"
    return f"SELECT rowid FROM {table}{condition} {order}", parameters
