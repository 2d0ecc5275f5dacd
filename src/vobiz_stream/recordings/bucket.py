"""One S3 bucket through boto3: put a file and confirm it, size and read objects.

Every method blocks (boto3 is synchronous): callers run them on a thread of their own, never on
the event loop. Failures come out as :class:`ObjectStoreError` with a ``kind`` that says whether
waiting can help (``unreachable``, ``failed``) or an operator must act (``refused``: the
credentials, the bucket or its permissions), and a message that says what to check.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from vobiz_stream.errors import VobizStreamError
from vobiz_stream.recordings.location import ObjectFolder, S3Access

__all__ = ["Bucket", "ObjectStoreError"]

_REFUSED = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "NoSuchBucket",
        "InvalidBucketName",
        "AuthorizationHeaderMalformed",
        "InvalidToken",
        "ExpiredToken",
        "403",
    }
)
"""Error codes no retry can cure: the operator must fix a setting."""

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class ObjectStoreError(VobizStreamError):
    """An S3 request failed; ``kind`` is ``refused``, ``unreachable`` or ``failed``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[type[ObjectStoreError], tuple[str, str]]:
        return (ObjectStoreError, (self.kind, str(self)))  # back from an uploader process


def _boto() -> tuple[Any, Any, Any]:
    """boto3, botocore.config and botocore.exceptions, or a one-line error naming the extra."""
    try:
        boto3 = importlib.import_module("boto3")
        config = importlib.import_module("botocore.config")
        exceptions = importlib.import_module("botocore.exceptions")
    except ImportError:
        raise ObjectStoreError(
            "refused", "recordings in S3 need boto3: pip install 'vobiz-stream[s3]'"
        ) from None
    return boto3, config, exceptions


class Bucket:
    """The bucket and prefix of an :class:`ObjectFolder`, reached with :class:`S3Access`.

    boto3's own retries are off (``max_attempts`` 1): the upload queue retries with its own
    backoff and says so in the log. ``timeout`` bounds connecting and each read of a reply.
    """

    def __init__(self, folder: ObjectFolder, access: S3Access, timeout: float = 20.0) -> None:
        boto3, config, exceptions = _boto()
        self.folder = folder
        self.access = access
        self.timeout = timeout
        self.endpoint = access.endpoint_url or "Amazon S3"
        self._exceptions = exceptions
        self._upload_failed: type[Exception] = importlib.import_module(
            "boto3.exceptions"
        ).S3UploadFailedError
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=access.endpoint_url,
            region_name=access.region or "us-east-1",
            aws_access_key_id=access.access_key_id,
            aws_secret_access_key=access.secret_access_key,
            config=config.Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=min(timeout, 5.0),
                read_timeout=timeout,
                signature_version="s3v4",
                # Path-style URLs work with every S3-compatible service; virtual hosts need DNS.
                s3={"addressing_style": "path" if access.endpoint_url else "auto"},
            ),
        )
        transfer = importlib.import_module("boto3.s3.transfer")
        self._transfer = transfer.TransferConfig(use_threads=False)

    def upload(self, path: Path, name: str) -> int:
        """Put the file ``path`` as the object of ``name`` and return the object's size, read
        back from the service (HEAD): the caller compares it with the file's."""
        key = self.folder.key(name)
        self._call(
            "upload",
            self._client.upload_file,
            str(path),
            self.folder.bucket,
            key,
            ExtraArgs={"ContentType": "audio/wav"},
            Config=self._transfer,
        )
        size = self.size(name)
        if size is None:
            raise ObjectStoreError("failed", f"{self.folder.url(name)} is not there after upload")
        return size

    def size(self, name: str) -> int | None:
        """The size in bytes of the object of ``name``; None when there is none."""
        try:
            head = self._call(
                "check",
                self._client.head_object,
                Bucket=self.folder.bucket,
                Key=self.folder.key(name),
            )
        except _MissingError:
            return None
        return int(head["ContentLength"])

    def read(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the object of ``name``."""
        reply = self._call(
            "read",
            self._client.get_object,
            Bucket=self.folder.bucket,
            Key=self.folder.key(name),
            Range=f"bytes={start}-{end - 1}",
        )
        body = reply["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (for tests and first set-ups)."""
        try:
            self._call("check", self._client.head_bucket, Bucket=self.folder.bucket)
        except (_MissingError, ObjectStoreError):
            self._call("create", self._client.create_bucket, Bucket=self.folder.bucket)

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            raise self._translated(what, exc) from None

    def _translated(self, what: str, exc: Exception) -> Exception:
        """The :class:`ObjectStoreError` (or ``_MissingError``) that ``exc`` means."""
        errors = self._exceptions
        if isinstance(exc, self._upload_failed) and isinstance(exc.__context__, Exception):
            exc = exc.__context__  # upload_file wraps the service's answer
        where = f"{self.endpoint} ({self.folder})"
        if isinstance(exc, errors.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING:
                return _MissingError()
            detail = f"{code}: {error.get('Message') or exc}"
            if code in _REFUSED:
                return ObjectStoreError(
                    "refused",
                    f"S3 refused the {what} at {where}: {detail}; check AWS_ACCESS_KEY_ID,"
                    " AWS_SECRET_ACCESS_KEY, the bucket name and its permissions",
                )
            return ObjectStoreError("failed", f"S3 {what} failed at {where}: {detail}")
        if isinstance(exc, errors.NoCredentialsError):
            return ObjectStoreError(
                "refused",
                f"S3 {what} at {where}: no credentials; set AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY",
            )
        if isinstance(exc, errors.BotoCoreError | OSError | self._upload_failed):
            return ObjectStoreError(
                "unreachable",
                f"S3 {what} failed at {where}: {exc}; is the service up and the endpoint"
                " (AWS_ENDPOINT_URL) right?",
            )
        return exc


class _MissingError(Exception):
    """The object or bucket is not there (404)."""
