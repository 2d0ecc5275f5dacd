"""Recordings after their stream: where they go (a local folder or an S3 bucket), the upload
queue that takes them there, reading them back, and the ``recording.saved`` notice."""

from vobiz_stream.recordings.bucket import Bucket, ObjectStoreError
from vobiz_stream.recordings.location import (
    ObjectFolder,
    RecordingsError,
    S3Access,
    recordings_target,
)
from vobiz_stream.recordings.stores import (
    BucketRecordings,
    LocalRecordings,
    RecordingStore,
    recording_file_name,
)
from vobiz_stream.recordings.uploads import (
    PENDING_SUFFIX,
    RecordedStream,
    RecordingSink,
    SavedRecording,
    Uploads,
)

__all__ = [
    "PENDING_SUFFIX",
    "Bucket",
    "BucketRecordings",
    "LocalRecordings",
    "ObjectFolder",
    "ObjectStoreError",
    "RecordedStream",
    "RecordingSink",
    "RecordingStore",
    "RecordingsError",
    "S3Access",
    "SavedRecording",
    "Uploads",
    "recording_file_name",
    "recordings_target",
]
