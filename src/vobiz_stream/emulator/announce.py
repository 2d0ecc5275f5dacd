"""The verbs after the ``<Stream>`` on the timeline and in the report, each as it starts."""

from __future__ import annotations

import asyncio
import time

from vobiz_stream.emulator.report import VerbTiming
from vobiz_stream.emulator.state import CallState
from vobiz_stream.emulator.verbs import VerbPlan

__all__ = ["announce_verbs", "announce_verbs_on_time"]


async def announce_verbs_on_time(call: CallState, plan: VerbPlan) -> None:
    """Put each verb on the timeline as it starts."""
    for step in plan.steps:
        at = step.start / plan.rate
        delay = call.began + at / call.options.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        announce_verbs(call, at)


def announce_verbs(call: CallState, upto: float) -> None:
    """Put the verbs that started by ``upto`` (call seconds) on the timeline and report."""
    plan = call.plan
    if plan is None:
        return
    for step in plan.steps[call.announced :]:
        at = step.start / plan.rate
        if at > upto:
            break
        call.announced += 1
        ended = None if step.end is None else step.end / plan.rate
        call.report.verbs.append(VerbTiming(step.name, round(at, 4), ended, step.detail))
        call.timeline.add(at, f"<{step.name}>", step.detail)
