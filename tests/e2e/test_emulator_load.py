"""The load generator and the ``vobiz_call`` pytest fixture against the real server over loopback.

Loads are small (20 calls of 2 s) and in real time: pacing is what the load generator measures.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.e2e.conftest import DATA, StartServer, run_cli, speech, write_wav
from tests.e2e.test_emulator_call import padded
from vobiz_stream.app.handlers import echo
from vobiz_stream.emulator.load import (
    LoadOptions,
    LoadProgress,
    LoadSummary,
    load_audio,
    load_calls,
    run_load,
    start_offset,
    summarize,
)
from vobiz_stream.emulator.pytest_plugin import HeardCall, VobizCall
from vobiz_stream.emulator.source import EmulatorError

pytest_plugins = ["pytester"]

FIXTURE = DATA / "speech_male_8k.wav"
CALLS = 20
SECONDS = 2.0
FRAMES_PER_CALL = round(SECONDS * 50)


def short_utterance() -> np.ndarray:
    """1.2 s of speech, then quiet long enough for an echo to play out and be confirmed."""
    return np.concatenate(
        [speech()[0][: round(1.2 * 8000)], np.full(round(2.3 * 8000), 3, dtype=np.int16)]
    )


def check_summary(summary: LoadSummary, calls: int = CALLS) -> None:
    """Every call completed in full, and the figures agree with one another."""
    assert summary.calls == calls
    assert (summary.completed, summary.failed, summary.failures) == (calls, 0, {})
    assert summary.end_reasons == {"hangup": calls}
    assert summary.frames_sent == calls * FRAMES_PER_CALL
    pacing = summary.pacing
    assert pacing is not None and pacing.count == summary.frames_sent
    assert 0 <= pacing.p50 <= pacing.p99 <= pacing.max
    assert summary.late_frames <= summary.frames_sent // 20, summary.lines()
    assert pacing.p50 < 5, summary.lines()
    assert summary.cpu_seconds > 0 and summary.cpu_percent > 0


async def test_twenty_calls_are_all_recorded(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server()
    options = LoadOptions(calls=CALLS, rate=100, duration=SECONDS, audio=FIXTURE)
    ticks: list[object] = []
    began = time.monotonic()
    part = await load_calls(running.base + "/", options, on_tick=ticks.append)
    summary = summarize(running.base + "/", options, [part], time.monotonic() - began)
    await running.wait_idle()
    check_summary(summary)
    assert summary.first_audio is None and summary.checkpoint_round_trip is None  # record only
    assert ticks  # at least the final one
    recordings = running.recordings()
    assert len(recordings) == CALLS
    assert len(running.server.store.list_calls()) == CALLS
    report = tmp_path / "load.json"
    report.write_bytes(orjson.dumps(summary.to_json()))
    data = orjson.loads(report.read_bytes())
    assert data["frames_sent"] == CALLS * FRAMES_PER_CALL
    assert data["pacing"]["p50"] <= data["pacing"]["p99"]


async def test_an_echoing_app_gets_round_trips(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server(echo, max_lead=0.2)
    caller = short_utterance()
    options = LoadOptions(
        calls=4, rate=100, duration=len(caller) / 8000, audio=write_wav(tmp_path / "c.wav", caller)
    )
    began = time.monotonic()
    part = await load_calls(running.base + "/", options)
    summary = summarize(running.base + "/", options, [part], time.monotonic() - began)
    await running.wait_idle()
    assert summary.completed == 4, summary.lines()
    first, trip = summary.first_audio, summary.checkpoint_round_trip
    assert first is not None and first.count == 4
    assert 1200 < first.p50 <= first.p99 < 2500  # ms: the echo starts when the utterance ends
    assert trip is not None and trip.count >= 4 and trip.p50 <= trip.p99
    assert any(line.startswith("first audio (4): p50") for line in summary.lines())


async def test_two_processes_merge(start_server: StartServer) -> None:
    running = await start_server()
    options = LoadOptions(calls=CALLS, rate=100, duration=SECONDS, processes=2)
    progress: list[LoadProgress] = []
    summary = await asyncio.to_thread(run_load, running.base + "/", options, progress.append)
    await running.wait_idle()
    check_summary(summary)
    assert summary.processes == 2 and len(summary.process_cpu_percent) == 2
    assert len(running.recordings()) == CALLS
    assert progress and progress[-1].counters.finished == CALLS
    assert progress[-1].counters.frames_sent == summary.frames_sent
    assert progress[-1].calls_up == 0


@pytest.mark.parametrize("rate", [1, 20, 50, 100, 1000])
def test_calls_start_in_their_slots_with_frame_deadlines_spread_over_the_20_ms(rate: int) -> None:
    """Placed on the rate's grid, every call's frames would fall due in the same millisecond or
    two (at 50 calls/s, all of them); the load spreads them as real calls are spread."""
    offsets = np.array([start_offset(index, rate) for index in range(1000)])
    slots = np.arange(1000) / rate
    assert np.all(offsets >= slots) and np.all(offsets < slots + 1 / rate)
    phase_ms = np.floor(offsets % 0.02 * 1000).astype(int) % 20
    per_millisecond = np.bincount(phase_ms, minlength=20)
    assert per_millisecond.max() <= 1.2 * 1000 / 20, per_millisecond


def test_load_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="processes must be between 1 and"):
        LoadOptions(calls=2, processes=3).check()
    with pytest.raises(EmulatorError, match="rate must be"):
        LoadOptions(calls=2, rate=0).check()
    tone = load_audio(None, 0.5)
    assert (tone.rate, len(tone.pcm)) == (8000, 4000) and np.abs(tone.pcm).max() > 7000
    assert not load_audio(None, 0.5, silence=True).pcm.any()
    looped = load_audio(FIXTURE, 6.0)
    source = speech()[0]
    assert len(looped.pcm) == 6 * 8000
    np.testing.assert_array_equal(looped.pcm[len(source) : 2 * len(source)], source)


async def test_cli_prints_progress_and_summary(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server()
    returncode, stdout, stderr = await run_cli(
        "load",
        running.base + "/",
        "--calls",
        "5",
        "--duration",
        "1.5",
        "--rate",
        "50",
        "--report",
        str(tmp_path / "load.json"),
        timeout=30,
    )
    assert returncode == 0, stderr.decode()
    assert "calls up" in stderr.decode() and "frames/s" in stderr.decode()
    out = stdout.decode()
    assert "5 completed, 0 failed" in out and "pacing (375): p50" in out and "CPU:" in out
    data = orjson.loads((tmp_path / "load.json").read_bytes())
    assert (data["completed"], data["frames_sent"]) == (5, 375)
    await running.wait_idle()
    assert len(running.recordings()) == 5


async def test_cli_rejects_bad_arguments() -> None:
    returncode, _, stderr = await run_cli(
        "load",
        "http://127.0.0.1:1/",
        "--calls",
        "2",
        "--processes",
        "3",
        timeout=20,
    )
    assert returncode == 2
    assert stderr.decode().startswith("vobiz-stream load: processes must be between 1 and")


# -- the pytest fixture ----------------------------------------------------------------------------


async def test_vobiz_call_fixture_directly(
    start_server: StartServer, vobiz_call: VobizCall
) -> None:
    running = await start_server()
    call = await vobiz_call(running.base + "/", FIXTURE, speed=4)
    await running.wait_idle()
    assert isinstance(call, HeardCall)
    assert call.completed and call.end_reason == "hangup", call.failure
    assert call.rate == 8000 and call.heard_path is not None and call.heard_path.exists()
    np.testing.assert_array_equal(call.caller, padded(speech()[0]))
    assert len(call.heard) == len(call.caller) and not call.heard.any()  # a record-only app
    assert call.heard_seconds == pytest.approx(len(call.caller) / 8000)
    with pytest.raises(EmulatorError, match="not found"):
        await vobiz_call(running.base + "/", "no-such.wav")


USER_TEST = """
import numpy as np
import pytest


@pytest.mark.asyncio
async def test_my_app_echoes_the_caller(vobiz_call):
    call = await vobiz_call("{url}", "caller.wav")
    assert call.completed, call.failure
    assert call.rate == 8000 and len(call.heard) == len(call.caller)
    assert np.abs(call.heard_between(0, 1.2)).max() == 0  # quiet while the caller speaks
    assert np.abs(call.heard).max() > 1000  # then the echo
    assert call.checkpoints[-1].answered_at is not None


@pytest.mark.asyncio
async def test_a_wrong_expectation_fails(vobiz_call):
    call = await vobiz_call("{url}", "caller.wav", speed=4, hangup_after=0.5)
    assert call.heard.any(), "nothing heard"
"""


async def test_vobiz_call_fixture_in_a_users_test_run(
    start_server: StartServer, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    running = await start_server(echo, max_lead=0.2)
    caller = short_utterance()
    write_wav(pytester.path / "caller.wav", caller)
    pytester.makepyfile(test_user=USER_TEST.replace("{url}", running.base + "/"))
    result = await asyncio.to_thread(pytester.runpytest_subprocess, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: nothing heard*"])
