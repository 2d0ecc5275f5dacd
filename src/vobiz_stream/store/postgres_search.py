"""Searching the PostgreSQL call store: calls by part of a number, a date range and a status.

The same search as SQLite's (:mod:`~vobiz_stream.store.sqlite_search`), with the same answers.
The query is built from the filters given, so PostgreSQL's planner sees each one and picks an
index: ``calls_by_first_seen`` (first seen, then the order added) for the order and a date
range, walked newest first and stopping once a page is full; ``calls_by_status`` for a status.
A part of a number is matched with ``LIKE`` (its ``%``, ``_`` and ``\\`` escaped, so taken
literally), which the trigram index ``calls_by_numbers`` serves when the store has it (schema
version 3, :mod:`~vobiz_stream.store.postgres_schema`): a rare part is found there at once, a
common one (or one shorter than three characters, which has no trigram) walks the date index
newest first until a page of matches is found; the planner chooses from its statistics.

The page's calls are found first (keys only, one more than a page: whether more follow), then
only those are built as JSON, by PostgreSQL, in one statement.
"""

from __future__ import annotations

from vobiz_stream.core.callbacks import format_utc
from vobiz_stream.store.interface import CallQuery
from vobiz_stream.store.postgres_reads import POSTGRES_SUMMARY

__all__ = ["postgres_search_page", "postgres_search_sql"]


def _like_pattern(part: str) -> str:
    """A ``LIKE`` pattern matching ``part`` anywhere in a text, its wildcards and the escape
    character (``%``, ``_``, ``\\``) taken literally."""
    escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def postgres_search_sql(query: CallQuery) -> tuple[str, dict[str, object]]:
    """The ``SELECT added, first_seen FROM calls ...`` of ``query``, newest first, one more than
    a page (whether more follow), and its parameters."""
    where: list[str] = []
    parameters: dict[str, object] = {"limit": query.limit + 1, "offset": query.offset}
    if query.number:
        where.append("(from_number LIKE %(number)s OR to_number LIKE %(number)s)")
        parameters["number"] = _like_pattern(query.number)
    # The bounds as the SQLite store compares them: cut to the millisecond.
    if query.since is not None:
        where.append("first_seen >= %(since)s::timestamptz")
        parameters["since"] = format_utc(query.since)
    if query.until is not None:
        where.append("first_seen < %(until)s::timestamptz")
        parameters["until"] = format_utc(query.until)
    if query.status is not None:
        where.append("status = %(status)s")
        parameters["status"] = query.status.value
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    order = "ORDER BY first_seen DESC, added DESC LIMIT %(limit)s OFFSET %(offset)s"
    return f"SELECT added, first_seen FROM calls{condition} {order}", parameters


def postgres_search_page(query: CallQuery) -> tuple[str, dict[str, object]]:
    """The statement answering ``query`` and its parameters: one row, the page as a JSON array
    of :class:`~vobiz_stream.store.CallSummary` (text) and whether more calls follow."""
    found, parameters = postgres_search_sql(query)
    statement = f"""
        WITH found AS MATERIALIZED ({found})
        SELECT coalesce(json_agg(page.summary ORDER BY page.first_seen DESC, page.added DESC),
                        '[]')::text,
               (SELECT count(*) FROM found) > %(page)s
        FROM (
            SELECT {POSTGRES_SUMMARY} AS summary, c.first_seen, c.added
            FROM (SELECT added FROM found ORDER BY first_seen DESC, added DESC LIMIT %(page)s)
                AS f
            JOIN calls AS c USING (added)
        ) AS page
    """
    return statement, {**parameters, "page": query.limit}
