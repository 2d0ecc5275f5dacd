"""Strings from outside stay one bounded log line."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vobiz_stream.logtext import PREVIEW_CHARS, loggable

BREAKERS = ["\r", "\n", "\x1b", "\x00", "\t", "\x7f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("breaker", BREAKERS)
def test_every_line_breaker_is_escaped(breaker: str) -> None:
    text = loggable(f"abc{breaker}2026-01-01 INFO forged")
    assert breaker not in text
    assert text.startswith("abc\\")


def test_forged_record_stays_one_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("t").info("call %s: hello", loggable("x\n2026-12-06 INFO call y: hangup"))
    assert len(caplog.text.splitlines()) == 1


def test_a_literal_backslash_reads_apart_from_an_escape() -> None:
    assert loggable("\\x0a") != loggable("\n")


def test_long_text_is_cut_and_says_its_length() -> None:
    text = loggable("a" * 500_000)
    assert text == "a" * PREVIEW_CHARS + "…(500000 chars)"
    assert loggable("a" * 500, limit=None) == "a" * 500


@given(st.text())
def test_never_a_line_break_and_bounded(text: str) -> None:
    shown = loggable(text)
    assert len(shown.splitlines()) <= 1
    assert len(shown) <= PREVIEW_CHARS * 6 + 32
    shown.encode("utf-8")  # lone surrogates are escaped too
