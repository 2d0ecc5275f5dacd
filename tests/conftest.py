"""Fixtures every test folder shares: a throwaway PostgreSQL (tests/services/postgres.py), and
the call store on each of its databases (tests/store/engines.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.postgres import PostgresServer, postgres_missing
from tests.store.engines import Backend, PostgresBackend, SqliteBackend


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for this test session (installed with apt-get when missing), in
    the system's temp folder: pytest's own is closed to the unprivileged user it runs as."""
    reason = postgres_missing()
    if reason is not None:
        pytest.skip(f"NO POSTGRESQL, tests against it skipped: {reason}")
    with PostgresServer.start() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new empty database on the session's PostgreSQL."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The call store's database for a test, once on each engine: a SQLite file, and a new
    database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return SqliteBackend(tmp_path / "calls.sqlite3")
    return PostgresBackend(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_database(request: pytest.FixtureRequest) -> str | None:
    """The ``database`` setting for a server test, once on each engine: None (the data
    folder's SQLite file), and a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url
