"""The console's search, from a query string: the same filters for the page and the API.

``?number=`` (part of the From or To number, up to :data:`MAX_NUMBER` characters), ``?since=``
and ``?until=`` (dates, ``YYYY-MM-DD``, UTC, both days included), ``?status=`` (one of
:class:`~vobiz_stream.store.CallStatus`), ``?page=`` (1 for the newest) and ``?per_page=`` (at
most :data:`MAX_PER_PAGE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from vobiz_stream.logtext import loggable
from vobiz_stream.store import CallQuery, CallStatus

__all__ = ["MAX_NUMBER", "MAX_PER_PAGE", "PER_PAGE", "Search", "SearchError", "parse_search"]

PER_PAGE = 50
MAX_PER_PAGE = 200
LAST_PAGE = 100_000
MAX_NUMBER = 32
FILTERS = ("number", "since", "until", "status")


class SearchError(ValueError):
    """A filter that cannot be read; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Search:
    """A search as the console shows it: the filters as typed, the page, and the store's query."""

    filters: dict[str, str]
    """The filters given (empty ones left out), to show in the form and keep in links."""
    page: int
    per_page: int
    query: CallQuery

    def link(self, path: str, page: int) -> str:
        """``path`` with these filters at ``page``."""
        parameters = {**self.filters, **({"page": str(page)} if page > 1 else {})}
        if self.per_page != PER_PAGE:
            parameters["per_page"] = str(self.per_page)
        return f"{path}?{urlencode(parameters)}" if parameters else path


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SearchError(
            f"{name} must be a date as YYYY-MM-DD, got {loggable(text, 20)!r}"
        ) from None


def _whole(text: str | None, name: str, default: int, most: int) -> int:
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= most):
        raise SearchError(
            f"{name} must be a whole number from 1 to {most}, got {loggable(text, 20)!r}"
        )
    return int(text)


def parse_search(query: Mapping[str, str]) -> Search:
    """The search a query string asks for; :class:`SearchError` saying what is wrong."""
    filters = {name: query[name].strip() for name in FILTERS if query.get(name, "").strip()}
    number = filters.get("number")
    if number is not None and len(number) > MAX_NUMBER:
        raise SearchError(f"number is a part of a phone number: at most {MAX_NUMBER} characters")
    since = until = None
    if "since" in filters:
        since = datetime.combine(_day(filters["since"], "since"), datetime.min.time(), UTC)
    if "until" in filters:
        day = _day(filters["until"], "until") + timedelta(days=1)  # the whole day
        until = datetime.combine(day, datetime.min.time(), UTC)
    status = None
    if "status" in filters:
        try:
            status = CallStatus(filters["status"])
        except ValueError:
            known = ", ".join(item.value for item in CallStatus)
            raise SearchError(
                f"status must be one of {known}, got {loggable(filters['status'], 20)!r}"
            ) from None
    page = _whole(query.get("page"), "page", 1, LAST_PAGE)
    per_page = _whole(query.get("per_page"), "per_page", PER_PAGE, MAX_PER_PAGE)
    call_query = CallQuery(
        number=number,
        since=since,
        until=until,
        status=status,
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return Search(filters, page, per_page, call_query)
