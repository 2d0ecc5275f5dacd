"""Messages for the mistakes of a first hour: each says what went wrong and what to do next.

Wrong answer paths, URLs without a scheme, a port already taken, misspelt ``VOBIZ_STREAM_*``
variables and handlers that fail to import all end up here, so the wording lives in one place and
the shared modules call it with a line or two.
"""

from __future__ import annotations

import difflib
import errno
import sysconfig
import traceback
from collections.abc import Collection, Mapping
from pathlib import Path

from vobiz_stream.logtext import loggable


def missing_scheme(url: str, what: str) -> str | None:
    """Why ``url`` cannot be used as an http(s) URL, or None when it can."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in {"http", "https"} and rest:
        return None
    shown = loggable(url)
    if separator:
        return f"{what} {shown} is not an http(s) URL: it must start with http:// or https://"
    return f"{what} {shown} has no scheme: add http:// or https:// (http://{shown})"


def unknown_environment_variables(
    environ: Mapping[str, str], prefix: str, known: Collection[str]
) -> list[str]:
    """One warning per ``prefix*`` variable that names no setting, with the nearest known name."""
    warnings = []
    names = [name.upper() for name in known]
    for variable in sorted(environ):
        name = variable.removeprefix(prefix)
        if not variable.startswith(prefix) or name in names:
            continue
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = (
            f"did you mean {prefix}{close[0]}?"
            if close
            else f"each setting's variable is its flag's name, e.g. --max-lead: {prefix}MAX_LEAD"
        )
        warnings.append(f"ignoring {loggable(variable)}: not a vobiz-stream setting ({hint})")
    return warnings


def address_in_use(exc: OSError, host: str, port: int, flag: str = "--port") -> str | None:
    """The one line for a port another program holds; None for any other error."""
    if exc.errno != errno.EADDRINUSE:
        return None
    return (
        f"cannot listen on {host}:{port}: the address is already in use (another vobiz-stream "
        f"or another program holds it); stop that one, or pick a free port: {flag} {port + 1}"
    )


def wrong_answer_path(path: str, answer_url: str) -> str:
    """The body of a 404: the answer XML is at ``/``, the other endpoints are listed."""
    return (
        f"no answer XML at {loggable(path, 200)}: point your Vobiz application's answer URL at "
        f"{answer_url} (this server also serves /stream, /webhook, /calls, /healthz)\n"
    )


def handler_import_failure(spec: str, exc: BaseException) -> str:
    """One line for a handler module that raised while importing: where, and the error."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        installed = {sysconfig.get_path(name) for name in ("stdlib", "purelib", "platlib")}
        own = [
            frame
            for frame in frames
            if not frame.filename.startswith("<")
            and not any(frame.filename.startswith(folder) for folder in installed)
            and Path(frame.filename).parent != Path(__file__).parent
        ]
        deepest = own[-1] if own else frames[-1] if frames else None
        where = f"{deepest.filename}:{deepest.lineno}" if deepest else "its module"
    detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return (
        f"handler {spec!r} failed to import: {where}: {type(exc).__name__}: {loggable(detail)}; "
        "fix that line and start the server again"
    )
