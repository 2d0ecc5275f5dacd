"""The ``vobiz-stream`` command line: one module per command, each with ``add_parser`` (its
arguments and help) and ``run`` (what it does, returning the exit status)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from vobiz_stream import __version__
from vobiz_stream.cli import call, load, serve
from vobiz_stream.errors import VobizStreamError

DESCRIPTION = """\
vobiz-stream: serve, emulate and test Vobiz audio streams.

Vobiz streams a live call's audio to your app over a WebSocket and plays back the
audio your app sends. This tool is both sides of that conversation.
"""



class Command(Protocol):
    """A command's module."""

    def add_parser(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the command, its arguments and its help to ``commands``."""

    def run(self, args: argparse.Namespace) -> int:
        """Do what the command says; the exit status."""


COMMANDS: dict[str, Command] = {"serve": serve, "call": call, "load": load}
"""Each command's module, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vobiz-stream",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vobiz-stream {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command].run(args)
    except (VobizStreamError, OSError) as exc:
        print(f"vobiz-stream {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
