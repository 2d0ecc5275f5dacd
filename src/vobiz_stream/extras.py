"""Optional packages: a feature whose extra is not installed stops with one line saying what to
install, before it starts anything."""

from __future__ import annotations

import importlib

from vobiz_stream.errors import ConfigError


def require(package: str, feature: str) -> None:
    """Raise :class:`ConfigError` naming the extra to install if ``package`` cannot be imported."""
    try:
        importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f"{feature} needs the {package} package: pip install 'vobiz-stream[{package}]'"
        ) from None
