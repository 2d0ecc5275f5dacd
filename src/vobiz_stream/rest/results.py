"""What Vobiz's REST API answers, as typed values, without I/O.

Each result is read from the answer's JSON leniently: fields the API adds later are ignored, a
field it leaves out is None (or the documented default), so a new field on Vobiz's side never
breaks a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vobiz_stream.errors import VobizStreamError

__all__ = [
    "CallPlaced",
    "LiveCall",
    "PageMeta",
    "StreamCreated",
    "StreamInfo",
    "StreamPage",
    "VobizApiError",
]


class VobizApiError(VobizStreamError):
    """The API refused a request, or could not be reached, after the retries allowed.

    ``status`` is the last HTTP status (0: no answer, the connection failed); ``message`` the
    API's ``error`` (or what went wrong); ``retry_after`` the seconds the API asked to wait, when
    it asked for longer than the client waits.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        method: str,
        path: str,
        attempts: int = 1,
        api_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        what = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{method} {path}: {what}{tries}: {message}")
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.attempts = attempts
        self.api_id = api_id
        self.retry_after = retry_after


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _int(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bool(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


@dataclass(frozen=True, slots=True)
class CallPlaced:
    """The answer to placing a call: ``request_uuid`` names the call from then on."""

    request_uuid: str
    message: str | None
    api_id: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallPlaced:
        return cls(str(data.get("request_uuid", "")), _str(data, "message"), _str(data, "api_id"))


@dataclass(frozen=True, slots=True)
class LiveCall:
    """One call as the API describes it."""

    call_uuid: str
    call_status: str | None
    direction: str | None
    from_number: str | None
    to_number: str | None
    session_start: str | None
    stream_id: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LiveCall:
        return cls(
            call_uuid=str(data.get("call_uuid", "")),
            call_status=_str(data, "call_status"),
            direction=_str(data, "direction"),
            from_number=_str(data, "from"),
            to_number=_str(data, "to"),
            session_start=_str(data, "session_start"),
            stream_id=_str(data, "stream_id"),
        )


@dataclass(frozen=True, slots=True)
class StreamCreated:
    """The answer to starting a stream on a call."""

    stream_id: str
    message: str | None
    api_id: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamCreated:
        return cls(str(data.get("stream_id", "")), _str(data, "message"), _str(data, "api_id"))


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream of a call."""

    stream_id: str
    call_uuid: str | None
    service_url: str | None
    status: str | None
    bidirectional: bool
    audio_track: str | None
    content_type: str | None
    start_time: str | None
    end_time: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamInfo:
        return cls(
            stream_id=str(data.get("stream_id", "")),
            call_uuid=_str(data, "call_uuid"),
            service_url=_str(data, "service_url"),
            status=_str(data, "status"),
            bidirectional=_bool(data.get("bidirectional")),
            audio_track=_str(data, "audio_track"),
            content_type=_str(data, "content_type"),
            start_time=_str(data, "start_time"),
            end_time=_str(data, "end_time"),
        )


@dataclass(frozen=True, slots=True)
class PageMeta:
    """Where a page sits in its list: ``count`` objects in all, this page from ``offset``."""

    count: int
    limit: int
    offset: int
    next: str | None
    previous: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PageMeta:
        return cls(
            count=_int(data, "count"),
            limit=_int(data, "limit"),
            offset=_int(data, "offset"),
            next=_str(data, "next"),
            previous=_str(data, "previous"),
        )


@dataclass(frozen=True, slots=True)
class StreamPage:
    """One page of a call's streams."""

    meta: PageMeta
    streams: tuple[StreamInfo, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamPage:
        meta = data.get("meta")
        objects = data.get("objects")
        return cls(
            PageMeta.from_json(meta if isinstance(meta, dict) else {}),
            tuple(
                StreamInfo.from_json(item)
                for item in (objects if isinstance(objects, list) else [])
                if isinstance(item, dict)
            ),
        )
