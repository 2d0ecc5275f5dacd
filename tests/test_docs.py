"""What users read points nowhere outside the repository, uses no internal words, and does not
say what stopped being true: README.md, docs/, the examples, the package's text (docstrings, log
lines, errors) and every ``--help``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vobiz_stream.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared|PROTOCOL\.md")
"""The developers' research notes live outside the repository; docs/protocol.md is the reference."""
INTERNAL = re.compile(r"\bseeds\b|\bseed[- ](?:shape|\d{3})\b|\bseed's\b|\bseeds'", re.IGNORECASE)
""""Seed" meaning the protocol's first sample documents; a random seed (``--seed 7``) is fine."""


def user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "examples").glob("*.py"))
    files += sorted((ROOT / "src" / "vobiz_stream").rglob("*.py"))
    return files


def help_texts(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """What ``vobiz-stream [COMMAND] --help`` prints, for the command and each subcommand."""
    texts = {}
    for command in ([], ["serve"], ["call"], ["load"], ["test"], ["carrier"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        texts[" ".join(["vobiz-stream", *command, "--help"])] = capsys.readouterr().out
    return texts


def offending_lines(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [line.strip() for line in text.splitlines() if pattern.search(line)]


@pytest.mark.parametrize("path", user_facing_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_nothing_points_outside_the_repository(path: Path) -> None:
    assert offending_lines(path.read_text(), OUTSIDE) == []


@pytest.mark.parametrize("path", user_facing_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_internal_words(path: Path) -> None:
    assert offending_lines(path.read_text(), INTERNAL) == []


def test_help_has_no_internal_words_or_outside_references(
    capsys: pytest.CaptureFixture[str],
) -> None:
    texts = help_texts(capsys)
    for name, text in texts.items():
        assert "usage: vobiz-stream" in text, name
        assert offending_lines(text, INTERNAL) == [], name
        assert offending_lines(text, OUTSIDE) == [], name
        assert "--seed" in text or name in {
            "vobiz-stream --help",
            "vobiz-stream serve --help",
            "vobiz-stream test --help",
            "vobiz-stream carrier --help",
        }


def test_the_patterns_catch_what_they_are_for() -> None:
    for internal in ("as the seeds say", "seed 002's sink", "the seed shape", "a seed-shape frame"):
        assert INTERNAL.search(internal), internal
    for fine in ("--seed 7", "a seed is drawn per call", "seed=args.seed", "Seed of the faults"):
        assert not INTERNAL.search(fine), fine
    assert OUTSIDE.search("see ../shared/PROTOCOL.md") and not OUTSIDE.search("docs/protocol.md")


def test_no_bare_commands_in_the_docs() -> None:
    """``vobiz-stream call ...`` is "command not found" on a fresh checkout: the docs write
    ``.venv/bin/vobiz-stream``, which works as printed."""
    bare = re.compile(r"(?<![/\w.-])vobiz-stream (?:serve|call|load|test) +\S")
    inline = re.compile(r"`([^`\n]+)`")
    for path in [path for path in user_facing_files() if path.suffix == ".md"]:
        text = path.read_text()
        spans = inline.findall(text) + re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
        assert [span for span in spans if bare.search(span)] == [], path.name


STALE = {
    "the emulator cannot press keys": "the emulated caller presses keys with --dtmf",
    "the emulator does not serve it": "the local carrier serves the REST API",
    "--legacy-shape": "the documents' shapes are --carrier documented",
    "--send-stop": "the documented stop comes with --carrier documented",
    "[pipecat,vad]": "there is no vad extra: the detector is a core dependency",
    "pip install pytest pytest-asyncio\n": "the tests also need pytest-timeout",
    "waits for\nthe emulator to learn to press keys": "the emulated caller presses keys",
}


@pytest.mark.parametrize("claim", sorted(STALE))
def test_stale_claims_stay_gone(claim: str) -> None:
    for path in user_facing_files():
        assert claim.lower() not in path.read_text().lower(), (path.name, STALE[claim])
