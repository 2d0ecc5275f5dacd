"""The one exception family of vobiz-stream.

Every error the package raises on purpose is a :class:`VobizStreamError`, so callers can catch the
family; each child names the layer that found the problem. Messages say what was wrong and, where it
helps, what to do about it.
"""


class VobizStreamError(Exception):
    """Base of every error vobiz-stream raises on purpose."""


class ConfigError(VobizStreamError, ValueError):
    """A setting with a value the server cannot use, or a feature whose optional package is
    missing."""


class ProtocolError(VobizStreamError, ValueError):
    """A WebSocket frame that cannot be understood (not JSON, no ``event``, bad base64, ...).

    The parser raises only this for bad input; a server logs it and skips the frame.
    """


class XmlError(VobizStreamError, ValueError):
    """Answer XML that is malformed or breaks a ``<Stream>`` rule of docs/protocol.md section 1."""


class AudioError(VobizStreamError, ValueError):
    """Audio that does not fit its declared format (odd byte count for L16, unsupported rate...)."""


class StoreError(VobizStreamError):
    """The call store cannot be opened or used (missing directory, read-only, not a database...)."""
