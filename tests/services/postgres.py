"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql``, a cluster in a temp folder.

Usage (pytest): ask for the ``postgres_server`` fixture (session-scoped, from tests/conftest.py)
for the running :class:`PostgresServer`, or ``postgres_url`` for the URL of a new empty database
of it (one per test). Outside pytest (a bench, a script)::

    from tests.services.postgres import PostgresServer, postgres_missing
    reason = postgres_missing()          # None, or why PostgreSQL cannot be had here
    with PostgresServer.start(Path("/tmp/pg")) as server:
        url = server.new_database()      # postgresql://vobiz@127.0.0.1:PORT/db1
        server.restart()                 # same port, same data (a database restart)

When the binaries are missing and this is a Debian machine run as root, they are installed with
apt-get (``apt-get update`` first). The cluster runs as an unprivileged user (``postgres`` if
the package made it, else ``nobody``) since PostgreSQL refuses to run as root; it listens on
127.0.0.1 and a socket folder of its own, trusts local connections, and skips fsync (the data
is thrown away). Stopped and deleted when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

__all__ = ["PostgresServer", "postgres_binaries", "postgres_missing"]

USER = "vobiz"
"""The cluster's superuser, trusted without a password on 127.0.0.1."""


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, newest version first; None if absent."""
    found = shutil.which("pg_ctl")
    if found is not None and shutil.which("initdb") is not None:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _install() -> str | None:
    """Install Debian's ``postgresql`` with apt-get; None on success, else why not."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return "PostgreSQL is not installed and this is not a Debian machine run as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-q"], ["install", "-y", "-q", "postgresql"]):
        done = subprocess.run(
            [apt, *args], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            return f"apt-get {' '.join(args)} failed: {done.stderr.strip()[-300:]}"
    return None


def postgres_missing() -> str | None:
    """None once PostgreSQL's binaries are here (installed now if need be), else why not."""
    if postgres_binaries() is not None:
        return None
    reason = _install()
    if reason is None and postgres_binaries() is None:
        reason = "apt-get installed postgresql but no initdb/pg_ctl was found"
    return reason


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _runner() -> pwd.struct_passwd | None:
    """The unprivileged user to run the cluster as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is no postgres or nobody user to run as")


@dataclass
class PostgresServer:
    """A running throwaway cluster; :meth:`start` makes one."""

    root: Path
    port: int
    bin_dir: Path
    runner: pwd.struct_passwd | None
    _databases: int = field(default=0)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    @contextlib.contextmanager
    def start(cls, parent: Path | None = None) -> Iterator[PostgresServer]:
        """A new cluster in a folder under ``parent`` (the system's temp folder by default),
        running until the block ends; then stopped and deleted."""
        bin_dir = postgres_binaries()
        if bin_dir is None:
            raise RuntimeError(postgres_missing() or "PostgreSQL binaries not found")
        root = Path(tempfile.mkdtemp(prefix="vobiz-pg-", dir=parent))
        server = cls(root, _free_port(), bin_dir, _runner())
        try:
            server._initdb()
            server._pg_ctl("start")
            yield server
        finally:
            with contextlib.suppress(Exception):
                server._pg_ctl("stop", "-m", "immediate")
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, *args: str) -> None:
        user = None if self.runner is None else self.runner.pw_uid
        group = None if self.runner is None else self.runner.pw_gid
        done = subprocess.run(
            [str(arg) for arg in args],
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.root,
        )
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}\n{tail}")

    def _initdb(self) -> None:
        if self.runner is not None:
            os.chown(self.root, self.runner.pw_uid, self.runner.pw_gid)
            os.chmod(self.root, 0o700)
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _pg_ctl(self, *action: str) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o", options, *action,
        )  # fmt: skip

    def restart(self) -> None:
        """Stop the server (connections are cut) and start it again on the same port."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server until :meth:`resume` (connections are cut, new ones refused)."""
        self._pg_ctl("stop", "-m", "fast")

    def resume(self) -> None:
        self._pg_ctl("start")

    def new_database(self) -> str:
        """A new empty database of this cluster; its ``postgresql://`` URL."""
        self._databases += 1
        name = f"db{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)
