"""What the emulator commands (``call``, ``load``) share: argument types, the wire and fault
options, and the faults epilog."""

from __future__ import annotations

import argparse
from typing import Any

from vobiz_stream.app.advice import missing_scheme
from vobiz_stream.audio import ByteOrder
from vobiz_stream.emulator import CallOptions, CarrierProfile, Faults, parse_key_press
from vobiz_stream.errors import VobizStreamError

FAULTS_EPILOG = """faults (to test how an app copes with a bad network; all off by default):
  --jitter 40         each frame leaves up to 40 ms after its 20 ms deadline (uniformly
                      random); TCP keeps order, so a frame behind a late one waits for it
                      and the two arrive back to back
  --bunch 5           frames leave five at a time, every 100 ms, at the deadline of the
                      group's last frame
  --drop-frames 0.05  each frame is never sent with probability 5 %%; --drop-frames 10
                      skips every 10th frame. Its chunk and timestamp are simply missing
                      from the stream: a gap the app should fill with silence
  --reorder 0.02      2 %% of frames are sent right after the frame that follows them
                      (adjacent frames swapped, both at the later deadline)
  --drop-at 12.5      at 12.5 s of call time the TCP connection is cut: no close frame,
                      no stop, no reconnect; the stream is over (a DroppedStream callback)
  --seed 7            the random seed of every choice, to repeat a run exactly; without
                      it a random seed is drawn%s and shown in the report
A frame's chunk and timestamp always give its true place in the call, which is how an
app can put reordered frames back and find dropped ones; sequenceNumber counts the
messages in the order they are sent. Pacing is measured against each frame's own
scheduled time, so injected delays do not count as late frames.
"""


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def answer_url(text: str) -> str:
    problem = missing_scheme(text, "answer URL")
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def key_press(text: str) -> tuple[float, str]:
    try:
        return parse_key_press(text)
    except VobizStreamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text}")
    return value


def drop_rate(text: str) -> float:
    """A probability below 1, or a whole number N of 2 or more (every Nth frame)."""
    value = float(text)
    if 0 <= value < 1 or (value >= 2 and value.is_integer()):
        return value
    raise argparse.ArgumentTypeError(
        f"must be a probability below 1 (0.05) or a whole number of 2 or more "
        f"(10: every 10th frame), got {text}"
    )


def add_wire_arguments(parser: argparse.ArgumentParser) -> None:
    """How the emulated carrier speaks: its profile, and the L16 byte order."""
    add = parser.add_argument
    add(
        "--carrier",
        choices=[profile.value for profile in CarrierProfile],
        default=CallOptions.carrier.value,
        help="which Vobiz to play: live (default: what Vobiz sends today: nested start, no "
        "stop, little-endian L16), documented (its published documents: flat start, a stop "
        "at the end, big-endian L16) or strict (documented, and it refuses commands the "
        "documents call invalid, failing the call); an app that passes all three works "
        "whichever way Vobiz goes",
    )
    add(
        "--l16-byte-order",
        choices=[order.value for order in ByteOrder],
        help="byte order of the L16 sent to the app, whatever the profile says (live: little; "
        "documented and strict: big)",
    )


def wire_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`CallOptions` fields that :func:`add_wire_arguments` sets."""
    order = args.l16_byte_order
    return {
        "carrier": CarrierProfile(args.carrier),
        "l16_byte_order": None if order is None else ByteOrder(order),
    }


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults (see below)")
    add = faults.add_argument
    add(
        "--jitter",
        type=non_negative_float,
        default=0.0,
        metavar="MS",
        help="delay each frame by up to MS milliseconds, at random",
    )
    add("--bunch", type=positive_int, default=1, metavar="K", help="send frames K at a time")
    add(
        "--drop-frames",
        type=drop_rate,
        default=0.0,
        metavar="P",
        help="never send a frame: with probability P (below 1), or every Pth frame (2 or more)",
    )
    add(
        "--reorder",
        type=probability,
        default=0.0,
        metavar="P",
        help="swap a frame with the next one with probability P",
    )
    add(
        "--drop-at",
        type=positive_float,
        metavar="SECONDS",
        help="cut the TCP connection at this call time, with no close frame",
    )
    add("--seed", type=int, metavar="N", help="random seed of the faults (repeatable runs)")


def add_playout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jitter-buffer",
        type=non_negative_float,
        default=CallOptions.jitter_buffer * 1000,
        metavar="MS",
        help="how many milliseconds of the app's audio the carrier holds before playing it "
        f"(default {CallOptions.jitter_buffer * 1000:g}): an app frame up to this late still "
        "plays on time, a later one is an underrun; 0 plays each frame from the next 20 ms tick",
    )


def faults(args: argparse.Namespace) -> Faults:
    drop = args.drop_frames
    return Faults(
        jitter_ms=args.jitter,
        bunch=args.bunch,
        drop_probability=drop if drop < 1 else 0.0,
        drop_every=int(drop) if drop >= 1 else None,
        reorder=args.reorder,
        drop_at=args.drop_at,
        seed=args.seed,
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value
