"""``vobiz-stream test``: run conversation scenarios against an app and give a verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from vobiz_stream.cli.arguments import add_wire_arguments, answer_url, positive_int, wire_options
from vobiz_stream.emulator import CallOptions
from vobiz_stream.emulator.scenario import ScenarioError, load_scenario
from vobiz_stream.emulator.scenario.pytest_items import is_scenario_file
from vobiz_stream.emulator.scenario.results import junit_xml, suite_json
from vobiz_stream.emulator.scenario.suite import SuiteOptions, run_suite
from vobiz_stream.emulator.scenario.verdict import Verdict
from vobiz_stream.loop import run as run_on_best_loop

TEST_EPILOG = """\
examples:
  vobiz-stream test examples/scenarios/greeting.toml --answer-url http://127.0.0.1:3000/
                                             one scenario, one call, its verdict
  vobiz-stream test examples/scenarios/ --answer-url http://127.0.0.1:3000/ \\
      --repeat 5 --concurrency 4 --junit results.xml --json results.json
                                             every scenario in the folder five times, four
                                             calls at a time; results for CI

A scenario (docs/scenarios.md) is a TOML file: the caller's steps (say something, wait
for the agent to start or finish speaking, barge in, press keys, hang up) and bounds the
call must meet (time to first agent audio, response after each caller turn, overrun
after a barge-in, talk-over, longest silence, mid-utterance gaps, checkpoints played,
windows where the agent speaks or stays silent, who ended the call). Each run is one
emulated Vobiz call (see vobiz-stream call --help) with the scenario as the caller.

Each run's verdict is printed as it finishes: PASS or FAIL, then one line per
expectation with what was measured. Times are measured on what the caller heard, to the
20 ms frame. Exit status: 0 when every run passed, 1 when one failed, 2 for bad
arguments or a scenario file with a mistake (the message names its line).
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = commands.add_parser(
        "test",
        help="run conversation scenarios against an app and check their bounds",
        description="Call an app with scripted callers (scenario files) and check what the "
        "caller heard against each scenario's bounds.",
        epilog=TEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = test.add_argument
    add(
        "scenarios",
        metavar="SCENARIO",
        type=Path,
        nargs="+",
        help="a scenario file (.toml), or a folder: every scenario file in it",
    )
    add(
        "--answer-url",
        type=answer_url,
        required=True,
        help="the app's answer URL (http or https)",
    )
    add(
        "--repeat",
        type=positive_int,
        default=1,
        help="run each scenario N times (default 1)",
    )
    add(
        "--concurrency",
        type=positive_int,
        default=1,
        help="at most N calls at once (default 1)",
    )
    add("--json", type=Path, help="write every verdict, check and measurement as JSON here")
    add("--junit", type=Path, help="write JUnit XML here (a test case per run) for CI")
    add("--heard-dir", type=Path, help="keep what the caller heard in each run, as WAVs here")
    add("--quiet", action="store_true", help="only failed runs and the totals")
    add_wire_arguments(test)


def scenario_files(paths: list[Path]) -> list[Path]:
    """The files named, and the scenario files in the folders named, in order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if is_scenario_file(p))
            if not found:
                raise ScenarioError(f"{path}: no scenario files (.toml with [[step]]) in it")
            files.extend(found)
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    scenarios = [load_scenario(path) for path in scenario_files(args.scenarios)]
    options = SuiteOptions(
        repeat=args.repeat,
        concurrency=args.concurrency,
        heard_dir=args.heard_dir,
        call_options=CallOptions(**wire_options(args)),
    )
    problem = options.check(len(scenarios))
    if problem is not None:
        raise ScenarioError(problem)
    if args.heard_dir is not None:
        args.heard_dir.mkdir(parents=True, exist_ok=True)

    def show(verdict: Verdict) -> None:
        if verdict.passed and args.quiet:
            return
        print("\n".join(verdict.lines()), flush=True)

    verdicts = run_on_best_loop(run_suite(scenarios, args.answer_url, options, show))
    failed = sum(1 for verdict in verdicts if not verdict.passed)
    print(f"{len(verdicts)} runs: {len(verdicts) - failed} passed, {failed} failed")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(suite_json(verdicts), option=orjson.OPT_INDENT_2))
    if args.junit is not None:
        args.junit.write_text(junit_xml(verdicts), encoding="utf-8")
    return 0 if failed == 0 else 1
