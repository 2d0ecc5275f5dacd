"""The ``vobiz-stream`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vobiz_stream import __version__

DESCRIPTION = """\
vobiz-stream: serve, emulate and test Vobiz audio streams.

Vobiz streams a live call's audio to your app over a WebSocket and plays back the
audio your app sends. This tool is both sides of that conversation.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vobiz-stream",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vobiz-stream {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
