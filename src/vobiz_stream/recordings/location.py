"""Where recordings go: ``--recordings`` as a local folder or an ``s3://bucket/prefix`` URL, and
the S3 endpoint and credentials, from flags or the standard AWS variables.

Parsing only: nothing here opens a connection, so a wrong setting fails at start with a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from vobiz_stream.errors import VobizStreamError

__all__ = ["ObjectFolder", "RecordingsError", "S3Access", "recordings_target"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
"""S3's bucket naming rule: 3 to 63 lower-case letters, digits, dots and hyphens."""


class RecordingsError(VobizStreamError, ValueError):
    """A ``--recordings`` URL or S3 setting that cannot be used."""


@dataclass(frozen=True)
class ObjectFolder:
    """``s3://bucket/prefix``: recordings are objects ``prefix/<file name>`` in ``bucket``."""

    bucket: str
    prefix: str = ""

    def key(self, name: str) -> str:
        """The object key of the recording file ``name``."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, name: str) -> str:
        """``s3://bucket/prefix/name``: where the recording ``name`` lives, as events say it."""
        return f"s3://{self.bucket}/{self.key(name)}"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def recordings_target(text: str | None, default: Path) -> Path | ObjectFolder:
    """``text`` as a local folder (``default`` when None or empty) or an :class:`ObjectFolder`.

    >>> recordings_target("s3://calls/rec/2026/", Path("data/recordings"))
    ObjectFolder(bucket='calls', prefix='rec/2026')
    """
    if not text:
        return default
    if "://" not in text:
        return Path(text).expanduser()
    parts = urlsplit(text)
    if parts.scheme.lower() == "file":
        return Path(parts.path)
    if parts.scheme.lower() != "s3":
        raise RecordingsError(
            f"--recordings {text!r}: use a folder (data/recordings) or s3://bucket/prefix"
        )
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise RecordingsError(
            f"--recordings {text!r}: {bucket!r} is not a bucket name (3 to 63 lower-case"
            " letters, digits, dots and hyphens); write s3://bucket/prefix"
        )
    if parts.query or parts.fragment:
        raise RecordingsError(f"--recordings {text!r}: an s3:// URL takes no ?query or #part")
    prefix = parts.path.strip("/")
    if prefix and any(piece in {"", ".", ".."} for piece in prefix.split("/")):
        raise RecordingsError(f"--recordings {text!r}: the prefix has an empty, . or .. part")
    return ObjectFolder(bucket, prefix)


@dataclass(frozen=True)
class S3Access:
    """How to reach the S3-compatible service: each field from its flag, else the standard
    AWS variable, else boto3's own defaults (its config files, an instance role)."""

    endpoint_url: str | None = None
    """``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; None: Amazon S3 itself."""
    region: str | None = None
    """``AWS_REGION`` or ``AWS_DEFAULT_REGION``."""
    access_key_id: str | None = field(default=None, repr=False)
    """``AWS_ACCESS_KEY_ID``."""
    secret_access_key: str | None = field(default=None, repr=False)
    """``AWS_SECRET_ACCESS_KEY``."""

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **flags: str | None
    ) -> S3Access:
        """The access the flags give (``endpoint_url=...``), each missing one taken from the
        AWS variables in ``environ`` (the process's environment by default)."""
        env = os.environ if environ is None else environ

        def pick(flag: str, *variables: str) -> str | None:
            given = flags.get(flag)
            if given:
                return given
            return next((env[name] for name in variables if env.get(name)), None)

        unknown = set(flags) - {"endpoint_url", "region", "access_key_id", "secret_access_key"}
        if unknown:
            raise TypeError(f"unknown S3 setting(s): {', '.join(sorted(unknown))}")
        access = cls(
            endpoint_url=pick("endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region=pick("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
            access_key_id=pick("access_key_id", "AWS_ACCESS_KEY_ID"),
            secret_access_key=pick("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        )
        if access.endpoint_url and urlsplit(access.endpoint_url).scheme not in {"http", "https"}:
            raise RecordingsError(
                f"S3 endpoint {access.endpoint_url!r} must be an http:// or https:// URL"
            )
        if bool(access.access_key_id) != bool(access.secret_access_key):
            raise RecordingsError(
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or both flags), not one"
            )
        return access
