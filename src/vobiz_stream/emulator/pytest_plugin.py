"""A pytest plugin: call your app with a WAV and assert on what the caller heard, and run
scenario files as tests (``pytest SCENARIOS/ --vobiz-answer-url URL``: docs/scenarios.md).

Installed with vobiz-stream (a ``pytest11`` entry point), it gives every test the ``vobiz_call``
fixture::

    async def test_greets_the_caller(vobiz_call):
        call = await vobiz_call("http://127.0.0.1:3000/", "caller.wav", speed=4)
        assert call.completed, call.failure
        assert call.first_audio_latency is not None and call.first_audio_latency < 1.0
        assert call.heard.any()                    # the caller heard something
        assert call.heard_path.exists()            # ... kept as a WAV under tmp_path

The fixture places one emulated Vobiz call (:func:`~vobiz_stream.emulator.run_call`) and returns
a :class:`HeardCall`: the call's :class:`~vobiz_stream.emulator.report.CallReport` with what the
caller heard (int16 samples at the stream's rate, on the caller audio's clock) and the caller audio
as sent. A relative audio path is looked up in the current directory, then beside the test file.
Any :class:`~vobiz_stream.emulator.CallOptions` field is a keyword argument; ``carrier`` takes
the profile's name, and ``pytest --vobiz-carrier documented`` (or ``strict``) sets the profile
of every call that does not name one, so one suite can run under each. The fixture is a
plain function returning a coroutine function, so it works with any asyncio test runner
(pytest-asyncio, anyio).
"""

from __future__ import annotations

import dataclasses
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest

from vobiz_stream.audio import Pcm
from vobiz_stream.emulator.profiles import CarrierProfile
from vobiz_stream.emulator.report import CallReport
from vobiz_stream.emulator.source import CallerSource, EmulatorError

__all__ = ["HeardCall", "VobizCall", "pytest_addoption", "read_heard", "vobiz_call"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vobiz-stream")
    group.addoption(
        "--vobiz-answer-url",
        dest="vobiz_answer_url",
        metavar="URL",
        help="run every scenario file (.toml with [[step]]) among the test paths against the "
        "app at URL, one test per file",
    )
    parser.addini("vobiz_answer_url", "the answer URL scenario files are run against", default="")
    group.addoption(
        "--vobiz-carrier",
        choices=[profile.value for profile in CarrierProfile],
        default=CarrierProfile.LIVE.value,
        help="the carrier profile of vobiz_call calls that do not name one: live (what Vobiz "
        "sends today), documented (its published documents) or strict (documented, refusing "
        "what they call invalid)",
    )


@dataclass
class HeardCall(CallReport):
    """A :class:`CallReport` plus the audio on both sides of the call."""

    heard: Pcm = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    """What the caller heard: the app's audio as played, silence where nothing played."""
    caller: Pcm = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    """The caller audio exactly as sent (resampled to the stream's rate, padded to 20 ms)."""
    rate: int = 0
    """Sample rate of ``heard`` and ``caller`` (the stream's); 0 if the call never streamed."""
    heard_path: Path | None = None
    caller_path: Path | None = None

    @property
    def heard_seconds(self) -> float:
        return len(self.heard) / self.rate if self.rate else 0.0

    def heard_between(self, start: float, end: float) -> Pcm:
        """The heard samples from ``start`` to ``end`` seconds on the call clock."""
        return self.heard[round(start * self.rate) : round(end * self.rate)]


def read_heard(path: Path) -> tuple[Pcm, int]:
    """Samples and rate of a mono WAV the emulator wrote."""
    with wave.open(str(path), "rb") as reader:
        data = reader.readframes(reader.getnframes())
        return np.frombuffer(data, dtype="<i2").astype(np.int16), reader.getframerate()


class VobizCall(Protocol):
    """The ``vobiz_call`` fixture's signature."""

    async def __call__(
        self, answer_url: str, audio: str | Path | CallerSource, **options: Any
    ) -> HeardCall: ...


def _find_audio(audio: str | Path, test_dir: Path) -> Path:
    path = Path(audio)
    if path.is_absolute() or path.exists():
        return path
    beside = test_dir / path
    if beside.exists():
        return beside
    raise EmulatorError(f"caller audio {audio} not found in {Path.cwd()} nor in {test_dir}")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Scenario files are tests once an answer URL is given (docs/scenarios.md)."""
    config = parent.config
    if file_path.suffix != ".toml" or not (
        config.getoption("vobiz_answer_url") or config.getini("vobiz_answer_url")
    ):
        return None
    from vobiz_stream.emulator.scenario.pytest_items import (  # noqa: PLC0415  (kept light)
        ScenarioFile,
        is_scenario_file,
    )

    if not is_scenario_file(file_path):
        return None
    collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
    return collector


@pytest.fixture
def vobiz_call(request: pytest.FixtureRequest, tmp_path: Path) -> VobizCall:
    """Place an emulated Vobiz call and get back the report and what the caller heard.

    ``await vobiz_call(answer_url, "caller.wav", speed=4, carrier="documented", ...)``; the WAVs of
    each call are kept in the test's ``tmp_path`` as ``vobiz-call-<n>-heard.wav`` and
    ``vobiz-call-<n>-caller.wav``.
    """
    test_dir = Path(str(request.path)).parent
    placed = 0

    async def place(answer_url: str, audio: str | Path | CallerSource, **options: Any) -> HeardCall:
        # Imported here so that pytest's start-up (this plugin loads in every pytest run of a
        # project with vobiz-stream installed) stays light.
        from vobiz_stream.emulator.call import CallOptions, run_call  # noqa: PLC0415

        nonlocal placed
        placed += 1
        options.setdefault("heard_path", tmp_path / f"vobiz-call-{placed}-heard.wav")
        options.setdefault("caller_path", tmp_path / f"vobiz-call-{placed}-caller.wav")
        for key in ("heard_path", "caller_path"):
            options[key] = None if options[key] is None else Path(options[key])
        heard_path, caller_path = options["heard_path"], options["caller_path"]
        options.setdefault("carrier", request.config.getoption("vobiz_carrier"))
        try:
            call_options = CallOptions(**options)
        except TypeError as exc:
            fields = ", ".join(f.name for f in dataclasses.fields(CallOptions))
            raise EmulatorError(f"{exc}; the options are {fields}") from None
        source = audio if isinstance(audio, CallerSource) else _find_audio(audio, test_dir)
        report = await run_call(answer_url, source, call_options)
        call = HeardCall(
            **{f.name: getattr(report, f.name) for f in dataclasses.fields(CallReport) if f.init}
        )
        for f in dataclasses.fields(CallReport):
            if not f.init:
                setattr(call, f.name, getattr(report, f.name))
        if heard_path is not None and heard_path.exists():
            call.heard, call.rate = read_heard(heard_path)
            call.heard_path = heard_path
        if caller_path is not None and caller_path.exists():
            call.caller, call.rate = read_heard(caller_path)
            call.caller_path = caller_path
        return call

    return place
