"""Echo: each caller utterance played back when it ends; talking over it clears it (barge-in).

    .venv/bin/python examples/echo.py

The caller says two sentences with a pause between them; the second starts while the first is
being echoed, so the echo is cut (``clearAudio``, the carrier's ``clearedAudio`` round trip in
the summary) and the second sentence is echoed in turn. The last line says where what the
caller heard went. The handler is the built-in one (``vobiz_stream.app.handlers.echo``;
``.venv/bin/vobiz-stream serve --handler echo`` for real calls); it shows the session's speech
events: ``session.detect_speech()``, then ``SpeechStarted`` / ``SpeechEnded`` events,
``BargeIn`` when the session cleared by itself.
"""

from __future__ import annotations

import demo
import numpy as np

from vobiz_stream import CallerSource, echo, read_caller_audio

RATE = 8000


def caller_audio() -> CallerSource:
    """Silence, a sentence, a pause in which the echo starts, then a sentence over the echo."""
    male = read_caller_audio(demo.FIXTURES / "speech_male_8k.wav").at_rate(RATE)
    female = read_caller_audio(demo.FIXTURES / "speech_female_8k.wav").at_rate(RATE)

    def pause(seconds: float) -> np.ndarray:
        return np.zeros(round(seconds * RATE), dtype=np.int16)

    return CallerSource(np.concatenate([pause(0.5), male, pause(1.5), female, pause(4.0)]), RATE)


if __name__ == "__main__":
    demo.main(demo.serving_handler(echo), caller_audio(), name="echo")
