"""The guide's example of driving StreamState runs as it is printed."""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"


def test_the_guides_stream_state_example_runs() -> None:
    section = GUIDE.read_text(encoding="utf-8").split("## 8. Driving the stream yourself", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(GUIDE), "exec"), namespace)  # its asserts check the result
    assert len(namespace["outbox"]) == 27  # type: ignore[arg-type]
