"""The recorder: every call to WAV, its status callbacks kept (the default handler).

    .venv/bin/python examples/recorder.py --data-dir data

One emulated call says the male speech fixture; the server writes the call to
data/recordings/<time>-<call id>.wav (mono, the caller: ``record`` is marked ``listens_only``),
keeps its status callbacks in data/webhook-events.log and data/vobiz-stream.db, and logs one line
per call event. To record real Vobiz calls instead: ``.venv/bin/vobiz-stream serve`` (the same
handler). With a ``--data-dir`` used before, only this call's recording is listed.
"""

from __future__ import annotations

import demo

from vobiz_stream import record

if __name__ == "__main__":
    demo.main(demo.serving_handler(record), demo.FIXTURES / "speech_male_8k.wav", name="recorder")
