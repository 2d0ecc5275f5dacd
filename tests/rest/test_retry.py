"""The REST client's retry rules and its results, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vobiz_stream.rest import RetryPolicy, StreamPage
from vobiz_stream.rest.retry import retry_after_seconds

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("method", "status", "sent", "retried"),
    [
        ("POST", 429, True, True),  # the API did not act
        ("POST", 503, True, True),
        ("POST", 500, True, False),  # it may have: never place a second call
        ("POST", 502, True, False),
        ("POST", 0, True, False),  # the connection went after the request went out
        ("POST", 0, False, True),  # it never opened
        ("GET", 500, True, True),
        ("DELETE", 504, True, True),
        ("GET", 0, True, True),
        ("GET", 400, True, False),
        ("GET", 401, True, False),
        ("DELETE", 404, True, False),
    ],
)
def test_what_is_tried_again(method: str, status: int, sent: bool, retried: bool) -> None:
    assert RetryPolicy().retryable(method, status, sent=sent) is retried


def test_backoff_doubles_with_jitter_and_stops_after_the_attempts() -> None:
    low = RetryPolicy(attempts=5, base_delay=0.5, max_delay=3.0, jitter=lambda: 0.0)
    high = RetryPolicy(attempts=5, base_delay=0.5, max_delay=3.0, jitter=lambda: 0.999999)
    assert [low.delay(n) for n in range(1, 5)] == [0.25, 0.5, 1.0, 1.5]
    assert [round(high.delay(n) or 0, 3) for n in range(1, 5)] == [0.5, 1.0, 2.0, 3.0]
    assert low.delay(5) is None
    assert RetryPolicy(attempts=1).delay(1) is None


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_delay=8.0)
    assert policy.delay(1, retry_after=2.0) == 2.0
    assert policy.delay(1, retry_after=0.0) == 0.0
    assert policy.delay(1, retry_after=30.0) is None  # longer than the client waits


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("Sun, 06 Dec 2026 12:00:10 GMT", 10.0),
        ("Sun, 06 Dec 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts must be 1 or more"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="0 <= base_delay <= max_delay"):
        RetryPolicy(base_delay=5, max_delay=1)


def test_results_read_leniently() -> None:
    page = StreamPage.from_json(
        {
            "meta": {"count": 3, "limit": 2, "offset": 0, "next": "/x?offset=2", "new": 1},
            "objects": [
                {"stream_id": "s1", "bidirectional": "true", "status": "in-progress", "z": 1},
                {"stream_id": "s2", "bidirectional": False},
                "not an object",
            ],
        }
    )
    assert page.meta.count == 3 and page.meta.next == "/x?offset=2" and page.meta.previous is None
    assert [(s.stream_id, s.bidirectional) for s in page.streams] == [("s1", True), ("s2", False)]
    assert StreamPage.from_json({}).streams == ()
