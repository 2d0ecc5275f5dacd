"""A scenario's verdict: each expectation checked on the measurements, with a message that says
what was measured and where. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vobiz_stream.emulator.report import CallReport
from vobiz_stream.emulator.scenario.measure import Measured, Measurements
from vobiz_stream.emulator.scenario.model import Bound, Expectations, Scenario

__all__ = ["Check", "Verdict", "judge"]


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation: its name, the bound, what was measured, and whether it held."""

    name: str
    expected: str
    measured: str
    passed: bool
    message: str


@dataclass
class Verdict:
    """A scenario's run: every check, the figures, and where the heard audio went."""

    scenario: str
    path: str
    checks: list[Check]
    measurements: Measurements
    call_uuid: str = ""
    heard_path: str | None = None
    run: int = 1
    """Which run of the scenario (``--repeat``), from 1."""
    extra: dict[str, Any] = field(default_factory=dict)
    report: CallReport | None = field(default=None, repr=False)
    """The emulator's report of the call (its timeline, commands, callbacks...)."""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def lines(self) -> list[str]:
        """The readable verdict: a headline, then one line per check."""
        head = "PASS" if self.passed else "FAIL"
        m = self.measurements
        lines = [
            f"{head} {self.scenario} ({self.path}, run {self.run}): call {self.call_uuid}, "
            f"{m.duration:.2f}s, ended by {m.ended_by.value if m.ended_by else 'nobody'}"
            f" ({m.end_reason or 'failed'})"
        ]
        lines.extend(
            f"  {'ok  ' if check.passed else 'FAIL'} {check.message}" for check in self.checks
        )
        lines.append(f"  measured: {_figures(m)}")
        if self.heard_path:
            lines.append(f"  what the caller heard: {self.heard_path}")
        return lines

    def to_json(self) -> dict[str, Any]:
        m = self.measurements
        return {
            "scenario": self.scenario,
            "path": self.path,
            "run": self.run,
            "passed": self.passed,
            "call_uuid": self.call_uuid,
            "heard_path": self.heard_path,
            "checks": [
                {
                    "name": c.name,
                    "expected": c.expected,
                    "measured": c.measured,
                    "passed": c.passed,
                    "message": c.message,
                }
                for c in self.checks
            ],
            "measurements": {
                "first_audio_ms": m.first_audio_ms,
                "responses_ms": [{"value": r.value, "where": r.where} for r in m.responses],
                "overruns_ms": [{"value": r.value, "where": r.where} for r in m.overruns],
                "talk_over_ms": m.talk_over_ms,
                "longest_silence_ms": m.longest_silence_ms,
                "gaps": m.gaps,
                "longest_gap_ms": m.longest_gap_ms,
                "checkpoints_played": m.checkpoints_played,
                "ended_by": m.ended_by.value if m.ended_by else None,
                "end_reason": m.end_reason,
                "duration_s": round(m.duration, 3),
                "agent_speech_s": [[round(a, 3), round(b, 3)] for a, b in m.agent],
            },
            **self.extra,
        }


def _figures(m: Measurements) -> str:
    """Every figure of the call on one line, checked or not."""

    def ms(value: float | None) -> str:
        return "none" if value is None else f"{value:g}"

    def series(items: list[Measured]) -> str:
        return "[" + ", ".join(ms(item.value) for item in items) + "]"

    return (
        f"first audio {ms(m.first_audio_ms)} ms, responses {series(m.responses)} ms, "
        f"overruns {series(m.overruns)} ms, talk-over {m.talk_over_ms:g} ms, "
        f"longest silence {m.longest_silence_ms:g} ms, {m.gaps} gaps "
        f"(longest {m.longest_gap_ms:g} ms), {m.checkpoints_played} checkpoints played, "
        f"{len(m.agent)} agent utterances"
    )


def judge(
    scenario: Scenario,
    measured: Measurements,
    problems: list[str],
    step_starts: dict[int, float],
) -> list[Check]:
    """Every expectation of ``scenario`` checked; the script's own problems fail first."""
    checks = [Check("script", "runs as written", problem, False, problem) for problem in problems]
    expect = scenario.expect
    m = measured
    single: list[tuple[str, Bound | None, float | None, str]] = [
        ("first_audio_ms", expect.first_audio_ms, m.first_audio_ms, "time to first agent audio"),
        ("talk_over_ms", expect.talk_over_ms, m.talk_over_ms, "agent talking over the caller"),
        (
            "longest_silence_ms",
            expect.longest_silence_ms,
            m.longest_silence_ms,
            "longest silence",
        ),
        ("gaps", expect.gaps, m.gaps, "mid-utterance gaps"),
        ("longest_gap_ms", expect.longest_gap_ms, m.longest_gap_ms, "longest mid-utterance gap"),
        (
            "checkpoints_played",
            expect.checkpoints_played,
            m.checkpoints_played,
            "checkpoints played",
        ),
    ]
    for name, bound, value, words in single:
        if bound is not None:
            checks.append(_check(name, bound, value, words))
    for name, bound, series, words in (
        ("response_ms", expect.response_ms, m.responses, "response"),
        ("overrun_ms", expect.overrun_ms, m.overruns, "overrun"),
    ):
        if bound is not None:
            checks.extend(_series(name, bound, series, words))
    if expect.ended_by is not None:
        ended = m.ended_by.value if m.ended_by else "nobody (the call failed)"
        checks.append(
            Check(
                "ended_by",
                expect.ended_by.value,
                ended,
                m.ended_by is expect.ended_by,
                f"call ended by {ended} ({m.end_reason or 'no stream'}); "
                f"expected the {expect.ended_by.value}",
            )
        )
    checks.extend(_windows(expect, m, step_starts))
    return checks


def _check(name: str, bound: Bound, value: float | None, words: str) -> Check:
    unit = f" {bound.unit}" if bound.unit else ""
    if value is None:
        return Check(name, str(bound), "none", False, f"{words}: none heard; expected {bound}")
    passed = bound.holds(value)
    return Check(
        name, str(bound), f"{value:g}{unit}", passed, f"{words} {value:g}{unit} (expected {bound})"
    )


def _series(name: str, bound: Bound, series: list[Measured], words: str) -> list[Check]:
    if not series:
        return [Check(name, str(bound), "none", False, f"{words}: no such caller step ran")]
    checks = []
    for item in series:
        check = _check(name, bound, item.value, f"{words} {item.where}:")
        if item.value is None:
            check = Check(
                name,
                str(bound),
                "none",
                False,
                f"{words} {item.where}: the agent said nothing before the caller's next step "
                f"or the end of the call; expected {bound}",
            )
        checks.append(check)
    return checks


def _windows(expect: Expectations, m: Measurements, step_starts: dict[int, float]) -> list[Check]:
    checks = []
    for window in expect.windows:
        origin = 0.0 if window.step == 0 else step_starts.get(window.step)
        if origin is None:
            checks.append(
                Check(
                    "window",
                    window.describe(),
                    "step never ran",
                    False,
                    f"{window.describe()}: step {window.step} never ran",
                )
            )
            continue
        start, end = origin + window.start, origin + window.end
        spoke = m.agent_spoke(start, end)
        passed = spoke > 0 if window.spoke else spoke == 0
        checks.append(
            Check(
                "window",
                window.describe(),
                f"{spoke * 1000:.0f} ms of speech",
                passed,
                f"{window.describe()} (call {start:.2f}-{end:.2f}s): agent spoke "
                f"{spoke * 1000:.0f} ms",
            )
        )
    return checks
