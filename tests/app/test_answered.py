"""What answer requests said of calls: bounded in entries, time and value size."""

from __future__ import annotations

from vobiz_stream.app.answered import MAX_VALUE_CHARS, AnsweredCalls, CallDetails


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(call_id: str, direction: str = "inbound") -> dict[str, str]:
    return {"CallUUID": call_id, "From": "+1555", "To": "+9180", "Direction": direction}


def test_details_are_kept_for_the_ttl_then_forgotten() -> None:
    clock = Clock()
    calls = AnsweredCalls(ttl=60, clock=clock)
    calls.note(answer("a"))
    assert calls.details("a") == CallDetails("+1555", "+9180", "inbound")
    clock.now = 59.9
    assert calls.details("a") is not None
    clock.now = 60.0
    assert calls.details("a") is None


def test_the_oldest_go_first_past_the_capacity() -> None:
    calls = AnsweredCalls(ttl=60, capacity=3, clock=Clock())
    for name in "abcd":
        calls.note(answer(name))
    assert [calls.details(name) is not None for name in "abcd"] == [False, True, True, True]


def test_a_second_answer_of_a_call_replaces_the_first() -> None:
    calls = AnsweredCalls(ttl=60, clock=Clock())
    calls.note(answer("a", "inbound"))
    calls.note(answer("a", "outbound"))
    details = calls.details("a")
    assert details is not None and details.direction == "outbound"


def test_values_too_long_are_not_believed_and_ids_too_long_not_kept() -> None:
    calls = AnsweredCalls(ttl=60, clock=Clock())
    calls.note({"CallUUID": "a", "From": "9" * (MAX_VALUE_CHARS + 1), "Direction": "inbound"})
    calls.note(answer("x" * (MAX_VALUE_CHARS + 1)))
    calls.note({"From": "+1555"})  # no call id: nothing to key it by
    assert calls.details("a") == CallDetails(None, None, "inbound")
    assert calls.details("x" * (MAX_VALUE_CHARS + 1)) is None
