"""The upload queue against a real S3-compatible server (SeaweedFS started by the test)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.e2e.conftest import write_wav
from tests.s3_server import ACCESS_KEY, REGION, SeaweedS3, s3_bucket
from vobiz_stream.recordings import (
    PENDING_SUFFIX,
    Bucket,
    ObjectFolder,
    RecordedStream,
    S3Access,
    SavedRecording,
    Uploads,
)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.kill()


def a_recording(folder: Path, name: str, seconds: float = 2.0) -> Path:
    rng = np.random.default_rng(len(name))
    samples = rng.integers(-8000, 8000, int(8000 * seconds), dtype=np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    return write_wav(folder / name, samples)


async def wait_until(condition: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_upload_lands_byte_identical_and_the_local_file_goes(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    bucket = await asyncio.to_thread(s3_bucket, seaweed, "calls", "rec/2026")
    path = a_recording(tmp_path, "20261206-120000-000-call-a.wav")
    original = path.read_bytes()
    saved: list[SavedRecording] = []
    uploads = Uploads(bucket, tmp_path, saved.append, first_retry=0.05)
    uploads.start()
    stream = RecordedStream(path, "call-a", "stream-a", 7)
    uploads.opened(stream)
    marker = orjson.loads((tmp_path / (path.name + PENDING_SUFFIX)).read_bytes())
    assert marker == {"call_id": "call-a", "stream_id": "stream-a", "stream_row": 7,
                      "pid": os.getpid()}  # fmt: skip
    uploads.finished(stream)
    await wait_until(lambda: saved)
    await uploads.close()
    assert saved[0].location == f"s3://calls/rec/2026/{path.name}"
    assert saved[0].size == len(original)
    assert saved[0].stream == stream
    assert await asyncio.to_thread(bucket.read, path.name, 0, len(original)) == original
    assert not path.exists()
    assert not (tmp_path / (path.name + PENDING_SUFFIX)).exists()
    assert uploads.counters() == {
        "backlog": 0, "uploaded": 1, "bytes_uploaded": len(original), "failures": 0
    }  # fmt: skip


async def test_markers_of_a_previous_run_are_uploaded_at_start(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    bucket = await asyncio.to_thread(s3_bucket, seaweed, "calls", "resumed")
    first = a_recording(tmp_path, "one.wav")
    second = a_recording(tmp_path, "two.wav")
    stranded = Uploads(bucket, tmp_path, lambda _saved: None)  # a run that never uploaded
    stranded.opened(RecordedStream(first, "call-1", "s-1", 1))
    stranded.opened(RecordedStream(second, "call-2", None, None))
    (tmp_path / ("gone.wav" + PENDING_SUFFIX)).write_bytes(b"{}")  # its file already uploaded
    expected = {first.name: first.read_bytes(), second.name: second.read_bytes()}
    saved: list[SavedRecording] = []
    uploads = Uploads(bucket, tmp_path, saved.append, first_retry=0.05)
    assert uploads.start() == 2
    await wait_until(lambda: len(saved) == 2)
    await uploads.close()
    assert sorted(s.stream.call_id for s in saved) == ["call-1", "call-2"]
    for name, data in expected.items():
        assert await asyncio.to_thread(bucket.read, name, 0, len(data)) == data
    assert list(tmp_path.glob("*.wav*")) == []


async def test_wrong_credentials_keep_the_file_and_log_once(
    seaweed: SeaweedS3, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(s3_bucket, seaweed, "calls")
    wrong = S3Access(seaweed.endpoint, REGION, ACCESS_KEY, "not-the-secret")
    bucket = Bucket(ObjectFolder("calls", "wrong"), wrong, timeout=5.0)
    path = a_recording(tmp_path, "refused.wav")
    original = path.read_bytes()
    saved: list[SavedRecording] = []
    uploads = Uploads(bucket, tmp_path, saved.append, first_retry=0.02, longest_retry=0.05)
    uploads.start()
    stream = RecordedStream(path, "call-refused")
    uploads.opened(stream)
    with caplog.at_level(logging.INFO, "vobiz_stream.recordings"):
        uploads.finished(stream)
        await wait_until(lambda: uploads.failures >= 5)
        await uploads.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "SignatureDoesNotMatch" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert "call-refused" in message
    assert saved == []
    assert path.read_bytes() == original
    assert (tmp_path / ("refused.wav" + PENDING_SUFFIX)).exists()


async def test_s3_killed_mid_upload_retries_and_uploads_once_back(tmp_path: Path) -> None:
    server = SeaweedS3(tmp_path / "weed")
    server.start()
    try:
        bucket = await asyncio.to_thread(s3_bucket, server, "calls", "fault")
        folder = tmp_path / "recordings"
        big = a_recording(folder, "big.wav", seconds=600.0)  # 9.6 MB: still going when killed
        original = big.read_bytes()
        saved: list[SavedRecording] = []
        uploads = Uploads(bucket, folder, saved.append, first_retry=0.1, longest_retry=0.5)
        uploads.start()
        stream = RecordedStream(big, "call-fault")
        uploads.opened(stream)
        uploads.finished(stream)
        await asyncio.sleep(0.05)  # under way
        server.kill()
        await wait_until(lambda: uploads.failures >= 2)
        assert saved == [] and big.read_bytes() == original  # kept while S3 is away
        await asyncio.to_thread(server.start)
        await wait_until(lambda: saved, timeout=60.0)
        await uploads.close()
        assert await asyncio.to_thread(bucket.read, big.name, 0, len(original)) == original
        assert not big.exists()
    finally:
        server.kill()


async def test_a_recording_another_live_process_writes_is_left_to_it(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    bucket = await asyncio.to_thread(s3_bucket, seaweed, "calls", "shared")
    path = a_recording(tmp_path, "live.wav")
    other = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        marker = tmp_path / ("live.wav" + PENDING_SUFFIX)
        marker.write_bytes(orjson.dumps({"call_id": "call-live", "pid": other.pid}))
        uploads = Uploads(bucket, tmp_path, lambda _saved: None)
        assert uploads.start() == 0  # still being written by a running server
        await uploads.close()
        assert path.exists() and marker.exists()
    finally:
        other.kill()
        await other.wait()
    saved: list[SavedRecording] = []
    uploads = Uploads(bucket, tmp_path, saved.append)
    assert uploads.start() == 1  # its writer is gone: a crash left it
    await wait_until(lambda: saved)
    await uploads.close()
    assert saved[0].stream.call_id == "call-live" and not path.exists()
