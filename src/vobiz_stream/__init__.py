"""vobiz-stream: a toolkit for Vobiz audio streams.

Stream server, carrier emulator and the building blocks both are made of.
"""

__version__ = "0.1.0"
