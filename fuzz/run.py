"""Run the atheris harnesses for a given number of inputs each, bounded in time, and sum them up.

    python fuzz/run.py --runs 1000000                  # each harness, one million inputs
    python fuzz/run.py --runs 10000000 --max-time 3600 --report fuzz-report.json
    python fuzz/run.py --runs 20000 fuzz_webhook       # one harness, a short check (as in CI)

Each harness starts from a copy of its seeds (``fuzz/corpus/<name>``) in a work folder (default: a
fresh one under the system temporary folder) so the repository's seeds never change; a crash is
saved there as ``crash-*`` and shown with the harness's traceback. Exit status: 0 when no harness
crashed, 1 otherwise. Needs the ``fuzz`` extra (``pip install -e '.[fuzz]'``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = ("fuzz_protocol", "fuzz_xml", "fuzz_webhook")
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)
_EXECUTED = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.MULTILINE)
_COVERAGE = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")


@dataclass
class Outcome:
    harness: str
    inputs: int
    seconds: float
    crashed: bool
    coverage: int
    corpus: int
    artifacts: list[str]


def run_harness(name: str, runs: int, max_time: int, work: Path) -> Outcome:
    corpus = work / name / "corpus"
    artifacts = work / name / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    seeds = HERE / "corpus" / name.removeprefix("fuzz_")
    if seeds.is_dir() and not corpus.exists():
        shutil.copytree(seeds, corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(HERE / f"{name}.py"),
        f"-runs={runs}",
        f"-max_total_time={max_time}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    began = time.monotonic()
    # libFuzzer reports on stderr; the run ends by itself (-runs, -max_total_time).
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - began
    log = result.stderr
    (work / name / "fuzz.log").write_text(log)
    executed = _EXECUTED.search(log) or _DONE.search(log)
    coverage = _COVERAGE.findall(log)
    crashed = result.returncode != 0
    if crashed:
        print(
            f"{name}: CRASHED (exit {result.returncode}); last lines of its log:", file=sys.stderr
        )
        print("\n".join(log.splitlines()[-40:]), file=sys.stderr)
    return Outcome(
        harness=name,
        inputs=int(executed.group(1)) if executed else _last_count(log),
        seconds=round(seconds, 1),
        crashed=crashed,
        coverage=int(coverage[-1][0]) if coverage else 0,
        corpus=int(coverage[-1][2]) if coverage else 0,
        artifacts=sorted(path.name for path in artifacts.iterdir()),
    )


def _last_count(log: str) -> int:
    """Inputs run before a crash: libFuzzer's last ``#N`` progress line."""
    counts = re.findall(r"^#(\d+)", log, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, required=True, help="inputs per harness")
    parser.add_argument(
        "--max-time", type=int, default=3600, help="seconds per harness at most (default 3600)"
    )
    parser.add_argument("--work", type=Path, help="work folder for corpora and crashes")
    parser.add_argument("--report", type=Path, help="write the outcomes as JSON here")
    parser.add_argument("harnesses", nargs="*", help=f"some of {', '.join(HARNESSES)} (all)")
    args = parser.parse_args(argv)
    unknown = set(args.harnesses) - set(HARNESSES)
    if unknown:
        parser.error(f"unknown harness(es) {', '.join(sorted(unknown))}; known: {HARNESSES}")
    work = args.work or Path(tempfile.mkdtemp(prefix="vobiz-stream-fuzz-"))
    outcomes = []
    for name in args.harnesses or HARNESSES:
        outcome = run_harness(name, args.runs, args.max_time, work)
        outcomes.append(outcome)
        state = "CRASHED" if outcome.crashed else "no crash"
        print(
            f"{name}: {outcome.inputs:,} inputs in {outcome.seconds:.0f} s, {state}; "
            f"coverage {outcome.coverage} edges, corpus {outcome.corpus}",
            flush=True,
        )
    total = sum(outcome.inputs for outcome in outcomes)
    print(f"total: {total:,} inputs; work folder {work}")
    if args.report is not None:
        report = {"total_inputs": total, "harnesses": [asdict(each) for each in outcomes]}
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(outcome.crashed for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
