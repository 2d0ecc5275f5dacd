"""Text from outside (ids, digits, names, query values, callback fields) made safe for a log line.

A carrier, a caller or a stranger chooses these strings. Written as they are, a line feed in a
call id starts a forged log record, an escape sequence repaints a terminal, and a 500 KB name
fills the disk. :func:`loggable` escapes every character that could break a record out of its
line and cuts the text short, so one record always stays one line of bounded size.
"""

from __future__ import annotations

PREVIEW_CHARS = 80
"""How much of a string from outside a log line shows."""

_LINE_BREAKERS = (
    *range(0x20),  # C0 controls: CR, LF, ESC, TAB, ...
    0x7F,  # DEL
    *range(0x80, 0xA0),  # C1 controls, NEL among them
    0x2028,  # LINE SEPARATOR
    0x2029,  # PARAGRAPH SEPARATOR
)
_ESCAPES: dict[int, str] = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _LINE_BREAKERS
}
_ESCAPES[ord("\\")] = "\\\\"  # so an escaped line feed and a literal "\x0a" read differently
_ESCAPES.update({code: f"\\u{code:04x}" for code in range(0xD800, 0xE000)})  # lone surrogates


def loggable(text: str, limit: int | None = PREVIEW_CHARS) -> str:
    """``text`` with line-breaking characters escaped, at most ``limit`` characters of it.

    A cut text ends in ``…(N chars)`` with its full length, so a reader knows it was cut.
    ``limit=None`` keeps the whole text (for logs whose records are bounded elsewhere).
    """
    if limit is not None and len(text) > limit:
        return f"{text[:limit].translate(_ESCAPES)}…({len(text)} chars)"
    return text.translate(_ESCAPES)
