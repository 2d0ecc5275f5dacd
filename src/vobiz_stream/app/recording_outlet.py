"""Where the server's recordings go once their stream ends, and the ``recording.saved`` event.

A local folder keeps them where they were written: the event is stored as the stream ends. With
an ``s3://`` target the files are written to the local staging folder as always and handed to
the upload queue (:class:`~vobiz_stream.recordings.Uploads`), and the event is stored once the
bucket holds them. The event (kind ``recording.saved``, a call event: ``GET /calls/<id>`` shows
it) says where the recording is; with a recording webhook it is also posted there as JSON.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from vobiz_stream.app.config import Settings
from vobiz_stream.app.recording_route import serve_recording
from vobiz_stream.core.kinds import EventKind
from vobiz_stream.errors import ConfigError
from vobiz_stream.recordings import (
    Bucket,
    BucketRecordings,
    LocalRecordings,
    ObjectFolder,
    ObjectStoreError,
    RecordedStream,
    RecordingsError,
    RecordingStore,
    S3Access,
    SavedRecording,
    Uploads,
    recordings_target,
)
from vobiz_stream.recordings.notify import SavedNotices
from vobiz_stream.store import CallHistory

__all__ = ["RecordingOutlet"]

log = logging.getLogger("vobiz_stream.recordings")

"""The call event (and webhook ``event``) saying where a finished recording is."""


class RecordingOutlet:
    """The server's recordings: the folder they are written to, where they end up, how to read
    them back (:attr:`recordings`), and the event that says where each one is."""

    def __init__(
        self,
        target: Path | ObjectFolder,
        staging: Path,
        store: CallHistory,
        *,
        access: S3Access | None = None,
        webhook_url: str | None = None,
        auth_token: str | None = None,
        concurrency: int = 2,
    ) -> None:
        self._store = store
        self.uploads: Uploads | None = None
        self.recordings: RecordingStore
        if isinstance(target, ObjectFolder):
            self.folder = staging
            bucket = Bucket(target, access or S3Access())
            self.uploads = Uploads(bucket, staging, self._saved, concurrency=concurrency)
            self.recordings = BucketRecordings(staging, bucket)
        else:
            self.folder = target
            self.recordings = LocalRecordings(target)
        self.notices = SavedNotices(webhook_url, auth_token) if webhook_url else None

    @classmethod
    def from_settings(cls, settings: Settings, store: CallHistory) -> RecordingOutlet:
        """The outlet ``settings`` ask for: S3 access from their ``s3_*`` values, else from
        the AWS variables; :class:`ConfigError` when the target cannot be used."""
        target = recordings_target(settings.recordings, settings.data_dir / "recordings")
        try:
            access = S3Access.from_environment(
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
                access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key,
            )
            return cls(
                target,
                settings.recordings_dir,
                store,
                access=access,
                webhook_url=settings.recording_webhook,
                auth_token=settings.auth_token,
                concurrency=settings.upload_concurrency,
            )
        except (RecordingsError, ObjectStoreError) as exc:
            raise ConfigError(str(exc)) from None

    def start(self) -> None:
        """On the event loop: start uploading, first what a previous run left pending. The
        server calls it as it starts; the first finished recording does otherwise."""
        if self.uploads is not None and not self.uploads.started:
            self.uploads.start()

    async def on_startup(self, _app: web.Application) -> None:
        self.start()  # uploads a previous run left pending go first

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """``GET /recordings/<name>``: the recording, from wherever it is."""
        return await serve_recording(self.recordings, request)

    async def close(self) -> None:
        """Stop uploading (what is pending resumes at the next start) and posting."""
        if self.uploads is not None:
            await self.uploads.close()
        if self.notices is not None:
            await self.notices.close()

    def opened(self, stream: RecordedStream) -> None:
        if self.uploads is not None:
            self.uploads.opened(stream)

    def finished(self, stream: RecordedStream) -> None:
        """The recording is final: queue its upload, or (local) announce it where it is."""
        if self.uploads is not None:
            self.start()
            self.uploads.finished(stream)
            return
        try:
            size = stream.path.stat().st_size
        except OSError:
            return  # no file was made (the recording could not be created): nothing to announce
        self._saved(SavedRecording(stream, str(stream.path), size))

    def _saved(self, saved: SavedRecording) -> None:
        stream = saved.stream
        detail: dict[str, object] = {
            "location": saved.location,
            "bytes": saved.size,
            "file": stream.path.name,
            "stream_id": stream.stream_id,
            "stream_row": stream.stream_row,
        }
        at = datetime.now(UTC)
        # A call event (no stream row): it may come after the stream's row closed, or in a
        # later run, when the stream's event budget is gone.
        self._store.add_event(stream.call_id, None, EventKind.RECORDING_SAVED, detail, at=at)
        if self.notices is not None:
            self.notices.post(
                {
                    "event": EventKind.RECORDING_SAVED,
                    "call_id": stream.call_id,
                    "at": at.isoformat().replace("+00:00", "Z"),
                    **detail,
                }
            )
