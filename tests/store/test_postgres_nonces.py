"""Nonces shared by the server processes of one PostgreSQL call store, on a real server: a nonce
one process claimed is refused to another within the window, forgotten only by its taker,
claimable again once expired, and expired rows leave the table; a database that cannot be
reached says so, and what was forgotten meanwhile is forgotten once it is back."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from tests.services.postgres import PostgresServer
from vobiz_stream.core.nonces import nonce_digest
from vobiz_stream.errors import StoreError
from vobiz_stream.store.database import open_call_store, open_shared_nonces
from vobiz_stream.store.postgres_nonces import PostgresNonceClaims

Claims = Callable[..., PostgresNonceClaims]


@pytest.fixture
async def claims(postgres_url: str) -> AsyncIterator[Claims]:
    """Claims on a call store's database (made by opening the store), one per server process;
    closed after the test."""
    open_call_store(postgres_url).close()
    made: list[PostgresNonceClaims] = []

    def make(
        window: float = 300.0, url: str = postgres_url, clock: Callable[[], float] = time.monotonic
    ) -> PostgresNonceClaims:
        made.append(PostgresNonceClaims(url, "the test's store", window=window, clock=clock))
        return made[-1]

    yield make
    for one in made:
        await one.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rows(url: str) -> list[tuple[bytes, ...]]:
    with psycopg.connect(url) as db:
        return [(bytes(row[0]),) for row in db.execute("SELECT digest FROM used_nonces ORDER BY 1")]


async def test_a_nonce_claimed_by_one_process_is_refused_to_another(claims: Claims) -> None:
    first, second = claims(), claims()
    assert await first.claim("n-1")
    assert not await second.claim("n-1"), "a replay on another process"
    assert not await first.claim("n-1"), "and on the same one"
    assert await second.claim("n-2")


async def test_only_the_process_that_claimed_a_nonce_forgets_it(claims: Claims) -> None:
    taker, other = claims(), claims()
    assert await taker.claim("n-1")
    await other.forget("n-1")  # not its claim: a replay refused there forgets nothing
    assert not await other.claim("n-1")
    await taker.forget("n-1")  # its callback could not be stored: the carrier retries
    assert await other.claim("n-1"), "the retry is accepted on any process"


async def test_expired_nonces_are_claimable_again_and_leave_the_table(
    claims: Claims, postgres_url: str
) -> None:
    clock = FakeClock()  # when this process deletes expired rows (the database says what expired)
    first, second = claims(window=0.5), claims(window=0.5, clock=clock)
    assert await first.claim("old-1") and await first.claim("old-2")
    assert not await second.claim("old-1")  # its first claim: expired rows deleted (none yet)
    await asyncio.sleep(0.6)  # the window has passed
    assert await second.claim("old-1"), "an expired row is claimed afresh"
    assert len(rows(postgres_url)) == 2, "old-2 expired, but no deletion is due on this process"
    clock.now += second.purge_every
    assert await second.claim("new")  # due now: the expired row goes in the same statement
    assert rows(postgres_url) == sorted([(nonce_digest("old-1"),), (nonce_digest("new"),)])


async def test_a_database_that_cannot_be_reached_fails_the_claim(claims: Claims) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = claims(url=f"postgresql://vobiz@127.0.0.1:{port}/nothing")
    with pytest.raises(StoreError, match="cannot claim a nonce"):
        await nowhere.claim("n-1")


async def test_what_is_forgotten_while_the_database_is_away_is_forgotten_once_it_is_back(
    postgres_server: PostgresServer, claims: Claims, postgres_url: str
) -> None:
    taker, other = claims(), claims()
    assert await taker.claim("kept") and await taker.claim("not-stored")
    postgres_server.stop()
    try:
        await taker.forget("not-stored")  # its callback failed: the database went away
        with pytest.raises(StoreError):
            await taker.claim("claimed-meanwhile")
    finally:
        postgres_server.resume()
    deadline = time.monotonic() + 20
    while nonce_digest("not-stored") in {row[0] for row in rows(postgres_url)}:
        assert time.monotonic() < deadline, "the forgotten nonce was never deleted"
        await asyncio.sleep(0.2)
    assert rows(postgres_url) == [(nonce_digest("kept"),)]
    for nonce in ("not-stored", "claimed-meanwhile"):  # the carrier's retries, anywhere
        assert await _claim_once_reachable(other, nonce)
    assert not await _claim_once_reachable(other, "kept")


async def test_a_retry_reaching_the_process_whose_forget_is_held_is_accepted(
    postgres_server: PostgresServer, claims: Claims, postgres_url: str
) -> None:
    taker, other = claims(), claims()
    taker.FORGET_RETRY = 3600.0  # the held forget is not done before the retry arrives
    assert await taker.claim("not-stored")
    postgres_server.stop()
    try:
        await taker.forget("not-stored")  # held: the database is away
    finally:
        postgres_server.resume()
    assert rows(postgres_url) == [(nonce_digest("not-stored"),)], "its row is still there"
    assert await _claim_once_reachable(taker, "not-stored"), "the carrier's retry, here"
    assert not await _claim_once_reachable(other, "not-stored"), "now a replay anywhere else"
    assert rows(postgres_url) == [(nonce_digest("not-stored"),)]


async def _claim_once_reachable(claims: PostgresNonceClaims, nonce: str) -> bool:
    """``claims.claim(nonce)``, tried again while the pool still hands out a connection the
    database's restart ended (each such try fails, and ends that connection)."""
    for _ in range(10):
        try:
            return await claims.claim(nonce)
        except StoreError:
            await asyncio.sleep(0.2)
    raise AssertionError("the database never answered again")


def test_sqlite_has_no_shared_nonces(tmp_path: object) -> None:
    assert open_shared_nonces(f"sqlite:///{tmp_path}/calls.db") is None
