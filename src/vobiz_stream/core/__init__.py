"""I/O-free protocol core: no sockets, no asyncio, time passed in."""
