"""Read a scenario from TOML, with errors that name the file and line. No I/O but the read.

The format (docs/scenarios.md has a complete example)::

    name = "greets, answers, stops when interrupted"
    max_seconds = 30

    [[step]]
    wait = "agent_done"            # or "agent_starts", or seconds
    [[step]]
    say = "What are your opening hours?"     # or audio = "file.wav", or tone = 1.5
    [[step]]
    say = "Sorry, one more thing"
    barge_in = 1.0                 # cut in 1 s after the agent starts speaking
    [[step]]
    dtmf = "2"
    [[step]]
    hangup = true

    [expect]
    first_audio_ms = "<= 1500"
    response_ms = "<= 1500"
    overrun_ms = "<= 300"
    ended_by = "caller"
    [[expect.window]]
    spoke = true
    from = 0
    to = 3
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vobiz_stream.core.protocol import DTMF_DIGITS
from vobiz_stream.emulator.scenario.model import (
    DEFAULT_WAIT_TIMEOUT,
    MAX_CALL_SECONDS,
    Bound,
    CallerTurn,
    Ending,
    Expectations,
    HangUp,
    KeyPress,
    Pause,
    Scenario,
    Step,
    TurnAudio,
    WaitFor,
    Waiting,
    Window,
)
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.logtext import loggable

__all__ = ["MAX_SCENARIO_BYTES", "ScenarioError", "load_scenario", "parse_scenario"]

MAX_SCENARIO_BYTES = 256 * 1024
"""A scenario file larger than this is refused (scenarios are short scripts)."""
MAX_STEPS = 200
MAX_WINDOWS = 50
MAX_TEXT = 2000
"""Characters of one ``say`` turn."""

_TOP_KEYS = {"name", "max_seconds", "voice", "step", "expect", "detector"}
_STEP_ACTIONS = ("say", "audio", "tone", "wait", "dtmf", "hangup")
_STEP_KEYS = {*_STEP_ACTIONS, "barge_in", "timeout"}
_BOUND_KEYS = {
    f.name: ("ms" if f.name.endswith("_ms") else "")
    for f in fields(Expectations)
    if f.name not in ("ended_by", "windows")
}
_EXPECT_KEYS = {*_BOUND_KEYS, "ended_by", "window"}
_WINDOW_KEYS = {"spoke", "from", "to", "step"}
_DETECTOR_KEYS = {"start_ms", "stop_ms"}
_ARRAY_HEADER = re.compile(r"^\[\[\s*([\w.]+)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*([\w.]+)\s*\]")
_BOUND = re.compile(r"^\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


class ScenarioError(VobizStreamError, ValueError):
    """A scenario file that cannot be run: the message names the file and line."""


@dataclass(frozen=True, slots=True)
class _Lines:
    """Where each table and key is in the file, to point errors at their line."""

    path: Path
    where: dict[tuple[str | int, ...], int]

    def of(self, *place: str | int) -> int | None:
        for end in range(len(place), 0, -1):
            line = self.where.get(place[:end])
            if line is not None:
                return line
        return None

    def error(self, message: str, *place: str | int) -> ScenarioError:
        line = self.of(*place)
        return ScenarioError(f"{self.path}{'' if line is None else f':{line}'}: {message}")


def _locate(text: str, path: Path) -> _Lines:
    """The line of each ``[table]``, ``[[array]]`` entry and ``key =`` (1-based)."""
    where: dict[tuple[str | int, ...], int] = {}
    counts: dict[str, int] = {}
    table: tuple[str | int, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = _ARRAY_HEADER.match(line) or _TABLE_HEADER.match(line)
        if header is not None:
            name = header.group(1)
            parts: tuple[str | int, ...] = tuple(name.split("."))
            if line.startswith("[["):
                index = counts.get(name, 0)
                counts[name] = index + 1
                parts = (*parts, index)
            table = parts
            where.setdefault(table, number)
            continue
        key = re.match(r"^([A-Za-z0-9_-]+)\s*=", line)
        if key is not None:
            where.setdefault((*table, key.group(1)), number)
    return _Lines(path, where)


def load_scenario(path: Path) -> Scenario:
    """Read and check the scenario at ``path``; :class:`ScenarioError` says what is wrong."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror or exc}") from None
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: over {MAX_SCENARIO_BYTES // 1024} KiB: not a scenario")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_scenario(text, path)


def parse_scenario(text: str, path: Path) -> Scenario:
    """A scenario from TOML ``text``; ``path`` names it in errors and anchors relative audio."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f":{found.group(1)}" if found else ""
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ScenarioError(f"{path}{where}: not valid TOML: {reason}") from None
    lines = _locate(text, path)
    _only(data, _TOP_KEYS, lines, "the top level")
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise lines.error("a scenario needs at least one [[step]]", "step")
    if len(raw_steps) > MAX_STEPS:
        raise lines.error(f"{len(raw_steps)} steps: at most {MAX_STEPS}", "step", MAX_STEPS)
    steps = tuple(_step(raw, index, lines) for index, raw in enumerate(raw_steps))
    detector = _table(data, "detector", lines)
    _only(detector, _DETECTOR_KEYS, lines, "[detector]", "detector")
    start_ms = _number(detector.get("start_ms", 200), lines, 20, 2000, "detector", "start_ms")
    stop_ms = _number(detector.get("stop_ms", 500), lines, 20, 5000, "detector", "stop_ms")
    max_seconds = _number(data.get("max_seconds", 60), lines, 1, MAX_CALL_SECONDS, "max_seconds")
    name = data.get("name", path.stem)
    voice = data.get("voice")
    for key, value in (("name", name), ("voice", voice)):
        if value is not None and not isinstance(value, str):
            raise lines.error(f"{key} is text, got {_shown(value)}", key)
    return Scenario(
        name=loggable(name, 120),
        path=path,
        steps=steps,
        expect=_expectations(_table(data, "expect", lines), len(steps), lines),
        max_seconds=max_seconds,
        voice=voice,
        start_ms=round(start_ms),
        stop_ms=round(stop_ms),
    )


def _step(raw: Any, index: int, lines: _Lines) -> Step:
    place = ("step", index)
    label = f"step {index + 1}"
    if not isinstance(raw, dict):
        raise lines.error(f"{label} is not a table", *place)
    _only(raw, _STEP_KEYS, lines, label, *place)
    actions = [key for key in _STEP_ACTIONS if key in raw]
    if len(actions) != 1:
        got = ", ".join(actions) if actions else "none"
        raise lines.error(
            f"{label} needs exactly one of {', '.join(_STEP_ACTIONS)} (got {got})", *place
        )
    action = actions[0]
    value = raw[action]
    timeout = _number(
        raw.get("timeout", DEFAULT_WAIT_TIMEOUT), lines, 0.1, MAX_CALL_SECONDS, *place, "timeout"
    )
    if "barge_in" in raw and action not in ("say", "audio", "tone"):
        raise lines.error(f"{label}: barge_in goes with say, audio or tone", *place, "barge_in")
    if action in ("say", "audio", "tone"):
        barge_in = None
        if "barge_in" in raw:
            barge_in = _number(raw["barge_in"], lines, 0, MAX_CALL_SECONDS, *place, "barge_in")
        return CallerTurn(
            TurnAudio(action), _turn_content(action, value, lines, place), barge_in, timeout
        )
    if action == "wait":
        if isinstance(value, str):
            try:
                return Waiting(WaitFor(value), timeout)
            except ValueError:
                pass
            raise lines.error(
                f"{label}: wait is {', '.join(repr(w.value) for w in WaitFor)} or seconds, "
                f"got {_shown(value)}",
                *place,
                "wait",
            )
        return Pause(_number(value, lines, 0, MAX_CALL_SECONDS, *place, "wait"))
    if action == "dtmf":
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise lines.error(f'{label}: dtmf is digits as text ("12#")', *place, "dtmf")
        digits = str(value)
        if not digits or len(digits) > 32 or any(d not in DTMF_DIGITS for d in digits):
            raise lines.error(
                f"{label}: dtmf is 1 to 32 of 0-9 * # A-D, got {_shown(value)}", *place, "dtmf"
            )
        return KeyPress(digits)
    if value is not True:
        raise lines.error(f"{label}: hangup = true is the only form", *place, "hangup")
    return HangUp()


def _turn_content(action: str, value: Any, lines: _Lines, place: tuple[str | int, ...]) -> str:
    label = f"step {int(place[1]) + 1}"
    if action == "tone":
        return f"{_number(value, lines, 0.02, MAX_CALL_SECONDS, *place, 'tone'):g}"
    if not isinstance(value, str) or not value.strip():
        raise lines.error(f"{label}: {action} is non-empty text", *place, action)
    if len(value) > MAX_TEXT:
        raise lines.error(f"{label}: {action} over {MAX_TEXT} characters", *place, action)
    if action == "audio":
        audio = Path(value)
        audio = audio if audio.is_absolute() else lines.path.parent / audio
        return str(audio)
    return value


def _expectations(raw: dict[str, Any], step_count: int, lines: _Lines) -> Expectations:
    _only(raw, _EXPECT_KEYS, lines, "[expect]", "expect")
    bounds: dict[str, Bound] = {}
    for key, unit in _BOUND_KEYS.items():
        if key in raw:
            bounds[key] = _bound(raw[key], unit, lines, "expect", key)
    ended_by = None
    if "ended_by" in raw:
        try:
            ended_by = Ending(raw["ended_by"])
        except ValueError:
            raise lines.error(
                f"ended_by is 'caller' or 'agent', got {_shown(raw['ended_by'])}",
                "expect",
                "ended_by",
            ) from None
    raw_windows = raw.get("window", [])
    if not isinstance(raw_windows, list):
        raise lines.error("window is a list of [[expect.window]] tables", "expect", "window")
    if len(raw_windows) > MAX_WINDOWS:
        raise lines.error(
            f"{len(raw_windows)} windows: at most {MAX_WINDOWS}", "expect", "window", MAX_WINDOWS
        )
    windows = tuple(_window(w, i, step_count, lines) for i, w in enumerate(raw_windows))
    return Expectations(**bounds, ended_by=ended_by, windows=windows)


def _window(raw: Any, index: int, step_count: int, lines: _Lines) -> Window:
    place = ("expect", "window", index)
    label = f"window {index + 1}"
    if not isinstance(raw, dict):
        raise lines.error(f"{label} is not a table", *place)
    _only(raw, _WINDOW_KEYS, lines, label, *place)
    if not isinstance(raw.get("spoke"), bool):
        raise lines.error(f"{label}: spoke = true or false is required", *place, "spoke")
    start = _number(raw.get("from", 0), lines, 0, MAX_CALL_SECONDS, *place, "from")
    end = _number(raw.get("to"), lines, 0, MAX_CALL_SECONDS, *place, "to")
    if not end > start:
        raise lines.error(f"{label}: to ({end:g}) must be after from ({start:g})", *place, "to")
    step = raw.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= step_count:
        raise lines.error(
            f"{label}: step is a step number 1-{step_count} (0: the call's start)",
            *place,
            "step",
        )
    return Window(start, end, raw["spoke"], step)


def _bound(value: Any, unit: str, lines: _Lines, *place: str | int) -> Bound:
    name = str(place[-1])
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"<= {value}"
    found = _BOUND.match(value) if isinstance(value, str) else None
    if found is None:
        example = "<= 1500" if unit else ">= 1"
        raise lines.error(f'{name} is a bound like "{example}", got {_shown(value)}', *place)
    op, number, written_unit = found.groups()
    amount = float(number)
    if written_unit and not unit:
        raise lines.error(f"{name} is a count: no unit, got {_shown(value)}", *place)
    if written_unit == "s":
        amount *= 1000
    return Bound(op, amount, unit)


def _number(value: Any, lines: _Lines, low: float, high: float, *place: str | int) -> float:
    name = str(place[-1])
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise lines.error(f"{name} is a number, got {_shown(value)}", *place)
    if not low <= value <= high:
        raise lines.error(f"{name} is {low:g} to {high:g}, got {value:g}", *place)
    return float(value)


def _table(data: dict[str, Any], key: str, lines: _Lines) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise lines.error(f"{key} is a table ([{key}])", key)
    return value


def _only(
    raw: dict[str, Any], allowed: set[str], lines: _Lines, label: str, *place: str | int
) -> None:
    for key in raw:
        if key not in allowed:
            raise lines.error(
                f"{label}: unknown key {_shown(key)}; the keys are {', '.join(sorted(allowed))}",
                *place,
                key,
            )


def _shown(value: Any) -> str:
    return loggable(repr(value), 60)
