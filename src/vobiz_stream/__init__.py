"""vobiz-stream: a toolkit for Vobiz audio streams (stream server, carrier emulator, building blocks)."""

__version__ = "0.1.0"
