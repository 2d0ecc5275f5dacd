"""Merging the workers' live snapshots keeps the feed bounded: the oldest calls of all, at most
MAX_SHOWN, the rest counted."""

from __future__ import annotations

from vobiz_stream.app.console.live import MAX_SHOWN, LiveCallView, LiveSnapshot, merged_snapshot


def a_snapshot(worker: str, count: int, more: int = 0) -> LiveSnapshot:
    calls: list[LiveCallView] = [
        {
            "call_id": f"{worker}-{index}",
            "from_number": None,
            "to_number": None,
            "elapsed": float(index),
            "level_caller": None,
            "level_heard": None,
            "events": [],
        }
        for index in range(count)
    ]
    return {"calls": calls, "more": more, "at": "2026-12-06T23:00:00+00:00"}


def test_the_merge_shows_the_oldest_calls_of_every_worker_and_counts_the_rest() -> None:
    own = a_snapshot("a", MAX_SHOWN, more=7)
    merged = merged_snapshot(own, [a_snapshot("b", 30), a_snapshot("c", 2)])
    assert len(merged["calls"]) == MAX_SHOWN
    assert merged["more"] == 7 + (MAX_SHOWN + 32 - MAX_SHOWN)
    elapsed = [call["elapsed"] for call in merged["calls"]]
    assert elapsed == sorted(elapsed, reverse=True)  # the oldest first
    assert {call["call_id"] for call in merged["calls"]} >= {"b-29", "a-49"}


def test_a_merge_of_few_calls_shows_them_all() -> None:
    merged = merged_snapshot(a_snapshot("a", 1), [a_snapshot("b", 2)])
    assert sorted(call["call_id"] for call in merged["calls"]) == ["a-0", "b-0", "b-1"]
    assert merged["more"] == 0
