"""Pass/fail gates on a load's figures: setup success, p95 first audio, p95 response, gap rate.
No I/O.

A gate left None is not checked. Each result says what was measured against its limit, so a
failed CI run says why without opening the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vobiz_stream.emulator.load_figures import CallOutcome

__all__ = ["GateResult", "LoadGates", "check_gates"]


@dataclass(frozen=True, slots=True)
class LoadGates:
    """The limits a load must stay within."""

    setup_success: float | None = None
    """Percent of calls that must complete (answer, socket, stream): at least this."""
    first_audio_p95_ms: float | None = None
    """95th percentile of the time to the app's first audio: at most this."""
    response_p95_ms: float | None = None
    """95th percentile of the agent's response after a caller turn (with a scenario)."""
    gap_rate: float | None = None
    """Percent of completed calls in which the app's audio ran dry mid-utterance: at most."""

    @property
    def any(self) -> bool:
        return any(
            limit is not None
            for limit in (
                self.setup_success,
                self.first_audio_p95_ms,
                self.response_p95_ms,
                self.gap_rate,
            )
        )


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate: its name, limit, what was measured, and whether it held."""

    name: str
    limit: str
    measured: str
    passed: bool

    def __str__(self) -> str:
        return (
            f"{'ok  ' if self.passed else 'FAIL'} {self.name}: {self.measured} (limit {self.limit})"
        )


def _p95_ms(values: list[float]) -> float | None:
    return None if not values else round(float(np.percentile(values, 95)) * 1000, 1)


def check_gates(gates: LoadGates, outcomes: list[CallOutcome]) -> list[GateResult]:
    """Every gate set in ``gates``, checked on the calls' ``outcomes``."""
    results: list[GateResult] = []
    calls = len(outcomes)
    completed = [outcome for outcome in outcomes if outcome.completed]
    if gates.setup_success is not None:
        rate = 100 * len(completed) / calls if calls else 0.0
        results.append(
            GateResult(
                "setup success",
                f">= {gates.setup_success:g} %",
                f"{rate:.1f} % ({len(completed)} of {calls} calls)",
                rate >= gates.setup_success,
            )
        )
    for name, limit, values, none in (
        (
            "p95 first audio",
            gates.first_audio_p95_ms,
            [o.first_audio for o in completed if o.first_audio is not None],
            "the app played nothing",
        ),
        (
            "p95 response",
            gates.response_p95_ms,
            [value for o in completed for value in o.responses],
            "no response measured (it needs --scenario with caller turns)",
        ),
    ):
        if limit is None:
            continue
        p95 = _p95_ms(values)
        results.append(
            GateResult(
                name,
                f"<= {limit:g} ms",
                none if p95 is None else f"{p95:g} ms over {len(values)}",
                p95 is not None and p95 <= limit,
            )
        )
    if gates.gap_rate is not None:
        gapped = sum(1 for outcome in completed if outcome.underruns)
        rate = 100 * gapped / len(completed) if completed else 100.0
        results.append(
            GateResult(
                "gap rate",
                f"<= {gates.gap_rate:g} %",
                f"{rate:.1f} % ({gapped} of {len(completed)} calls had a mid-utterance gap)",
                rate <= gates.gap_rate,
            )
        )
    return results
