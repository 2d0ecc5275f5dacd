"""Status callbacks under attack, over loopback against the real server: oversized bodies and
queries, long fields and line-breaking characters, replayed and forwarded-host signatures,
signatures as Vobiz's Python SDK computes them, and a data disk that fills up.

The SDK signatures are computed with the SDK's own functions (``vobiz.utils``), not ours.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import itertools
import logging
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import pytest
from aiohttp import web
from vobiz.utils import validate_signature, validate_v3_signature
from vobiz.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3
from yarl import URL

from tests.e2e.conftest import (
    DATA,
    RunningServer,
    StartServer,
    free_port,
    run_cli,
    serve_app,
    serve_process,
    url_of,
)
from vobiz_stream.core.callbacks import (
    MAX_BODY_BYTES,
    MAX_FIELD_CHARS,
    MAX_QUERY_BYTES,
    SignatureCheck,
    parse_status_callback,
    sign_v3,
)
from vobiz_stream.emulator import CallOptions, SignatureForm, SignatureVersion, run_call
from vobiz_stream.errors import StoreError
from vobiz_stream.store import QueuedCallStore

TOKEN = "MAUTHTOKEN0123456789"
FIXTURE = DATA / "speech_male_8k.wav"
_NONCES = (f"{number:020d}" for number in itertools.count(10**15))


def fields(event: str = "StartStream", call: str = "call-1", **extra: str) -> dict[str, str]:
    return {
        "Event": event,
        "CallUUID": call,
        "StreamID": "stream-1",
        "From": "+14155551111",
        "To": "+14155552222",
        "Timestamp": "2026-05-12 09:30:15",
        "ParentAuthID": "MA_PARENT",
        "Error": "",
        **extra,
    }


def sdk_post_headers(url: str, form: dict[str, str], nonce: str | None = None) -> dict[str, str]:
    """V3 headers for a POST to ``url``, signed by the SDK's own functions."""
    nonce = nonce or next(_NONCES)
    signed = construct_post_url(url, dict(form)).decode()
    signature = get_signature_v3(TOKEN, signed, nonce).decode()
    assert validate_v3_signature("POST", url, nonce, TOKEN, signature, dict(form))
    return {"X-Vobiz-Signature-V3": signature, "X-Vobiz-Signature-V3-Nonce": nonce}


def docs_headers(url: str) -> dict[str, str]:
    """V3 headers over ``url`` alone, as the docs describe the signature."""
    nonce = next(_NONCES)
    return {"X-Vobiz-Signature-V3": sign_v3(TOKEN, url, nonce), "X-Vobiz-Signature-V3-Nonce": nonce}


def hand_hmac(message: str) -> str:
    digest = hmac.new(TOKEN.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def log_lines(running: RunningServer) -> list[str]:
    """``webhook-events.log`` split the way most line readers split (``str.splitlines``)."""
    return (running.data_dir / "webhook-events.log").read_text().splitlines()


def stored_fields(running: RunningServer) -> list[dict[str, str]]:
    with sqlite3.connect(running.data_dir / "vobiz-stream.db") as db:
        rows = db.execute("SELECT fields FROM status_callbacks ORDER BY id").fetchall()
    return [orjson.loads(row[0]) for row in rows]


async def stats(client: aiohttp.ClientSession, running: RunningServer) -> dict[str, Any]:
    async with client.get(running.base + "/stats") as reply:
        body: dict[str, Any] = (await reply.json())["status_callbacks"]
    return body


# --- 1: bounded callbacks --------------------------------------------------------------------


async def raw_request(base: str, head: str, body: bytes = b"") -> bytes:
    """Send ``head`` (request line and headers) and ``body`` over a bare socket; the reply's
    status line (within 5 s: a server that waits for a body never sent fails here)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.readline()
    finally:
        writer.close()


async def test_a_body_past_64_kib_gets_413_without_being_read(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server()
    big = fields(Error="x" * MAX_BODY_BYTES)
    async with aiohttp.ClientSession() as client:
        async with client.post(running.base + "/webhook", data=big) as reply:
            assert reply.status == 413
            assert str(MAX_BODY_BYTES) in await reply.text()

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until the cap
            for _ in range(40):
                yield b"Error=" + b"y" * 4096 + b"&"

        async with client.post(
            running.base + "/webhook",
            data=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as reply:
            assert reply.status == 413
    # Announced as 100 MB but only 10 bytes sent: refused at once, nothing waited for.
    status = await raw_request(
        running.base,
        "POST /webhook HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\n"
        "Content-Length: 100000000\n",
        b"Event=Stop",
    )
    assert status.startswith(b"HTTP/1.1 413"), status
    async with aiohttp.ClientSession() as client:
        async with client.post(running.base + "/webhook", data=fields(call="small")) as reply:
            assert reply.status == 200  # the server goes on
        counters = await stats(client, running)
    assert counters["refused"] == {"too_large": 3}
    assert [row["CallUUID"] for row in stored_fields(running)] == ["small"]
    warnings = [r for r in caplog.records if "rejected a status callback" in r.getMessage()]
    assert len(warnings) == 1  # logged once, counted thrice


async def test_a_query_past_4_kib_gets_414(start_server: StartServer) -> None:
    running = await start_server()
    async with aiohttp.ClientSession() as client:
        query = fields(Error="q" * MAX_QUERY_BYTES)
        async with client.get(running.base + "/webhook", params=query) as reply:
            assert reply.status == 414
            assert "POST" in await reply.text()
        async with client.get(running.base + "/webhook", params=fields(call="ok")) as reply:
            assert reply.status == 200
    assert [row["CallUUID"] for row in stored_fields(running)] == ["ok"]


async def test_fields_past_1_kib_are_cut_and_flagged_in_the_row_and_the_log(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server()
    long_name = "N" * 3000
    sent = fields(call="c" * 5000, Error="e" * 20_000, **{long_name: "v"})
    caplog.set_level(logging.INFO, "vobiz_stream.app.server")
    async with aiohttp.ClientSession() as client:
        async with client.post(running.base + "/webhook", data=sent) as reply:
            assert reply.status == 200
        assert (await stats(client, running))["truncated"] == 1
    [row] = stored_fields(running)
    assert row["Error"] == "e" * MAX_FIELD_CHARS + "…(20000 chars)"
    assert row["CallUUID"] == "c" * MAX_FIELD_CHARS + "…(5000 chars)"
    cut_name = "N" * MAX_FIELD_CHARS + "…(3000 chars)"
    assert row[cut_name] == "v"
    assert max(len(value) for value in row.values()) < MAX_FIELD_CHARS + 20
    [line] = log_lines(running)
    record = orjson.loads(line)
    assert record["truncated"] == ["CallUUID", "Error", cut_name]
    assert len(line) < 5 * MAX_FIELD_CHARS  # four cut strings (one name twice), the rest short
    [info] = [m for r in caplog.records if "status callback Start" in (m := r.getMessage())]
    assert len(info) < 400  # the server's own log line is cut short too


async def test_line_breaking_characters_keep_one_record_per_line(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server()
    hostile = "a\nforged record\r\u2028b\u2029c\x85d\x1b[31mred\x9b2J\x7f"
    caplog.set_level(logging.INFO, "vobiz_stream.app.server")
    async with aiohttp.ClientSession() as client:
        for number in range(3):
            sent = fields(call=f"{hostile}-{number}", Error=hostile)
            async with client.post(running.base + "/webhook", data=sent) as reply:
                assert reply.status == 200
    lines = log_lines(running)
    assert len(lines) == 3  # str.splitlines breaks on U+2028, U+2029 and U+0085 too
    for number, line in enumerate(lines):
        assert not any(ch in line for ch in "\r\x1b\x85\x9b\x7f\u2028\u2029")
        record = orjson.loads(line)
        assert record["CallUUID"] == f"{hostile}-{number}"  # lossless: JSON reads them back
        assert record["Error"] == hostile
    messages = [m for r in caplog.records if ": status callback" in (m := r.getMessage())]
    assert len(messages) == 3
    for message in messages:
        assert not any(ch in message for ch in "\n\r\x1b\x85\x9b\u2028\u2029")
        assert "a\\x0aforged record" in message


# --- 2: replays and forwarded hosts ----------------------------------------------------------


async def test_a_replayed_callback_is_refused_counted_and_logged_once(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server(auth_token=TOKEN)
    url = running.base + "/webhook"
    sent = fields(call="replayed")
    headers = docs_headers(url)
    async with aiohttp.ClientSession() as client:
        async with client.post(url, data=sent, headers=headers) as reply:
            assert reply.status == 200
        for _ in range(3):  # the same request captured and sent again
            async with client.post(url, data=sent, headers=headers) as reply:
                assert reply.status == 403
                assert "replayed" in await reply.text()
        fresh = docs_headers(url)  # the carrier's next callback: a new nonce
        async with client.post(url, data=sent, headers=fresh) as reply:
            assert reply.status == 200
        counters = await stats(client, running)
    assert counters["refused"] == {"replayed": 3}
    assert counters["accepted"] == 2
    assert len(stored_fields(running)) == 2
    warnings = [r.getMessage() for r in caplog.records if "rejected a status" in r.getMessage()]
    assert len(warnings) == 1 and "replayed" in warnings[0]


@pytest.mark.parametrize("trust_proxy", [False, True])
async def test_a_forwarded_host_is_believed_only_with_trust_proxy(
    start_server: StartServer, trust_proxy: bool
) -> None:
    running = await start_server(auth_token=TOKEN, trust_proxy=trust_proxy)
    sent = fields(call="forwarded")
    headers = {
        **docs_headers("https://evil.example/webhook"),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    async with (
        aiohttp.ClientSession() as client,
        client.post(running.base + "/webhook", data=sent, headers=headers) as reply,
    ):
        assert reply.status == (200 if trust_proxy else 403)
    assert len(stored_fields(running)) == (1 if trust_proxy else 0)


async def test_with_a_public_url_the_host_header_cannot_choose_the_url(
    start_server: StartServer,
) -> None:
    running = await start_server(auth_token=TOKEN, public_url="https://app.example")
    sent = fields(call="host")
    async with aiohttp.ClientSession() as client:
        elsewhere = {
            **docs_headers("http://evil.example/webhook"),
            "Host": "evil.example",
        }
        async with client.post(running.base + "/webhook", data=sent, headers=elsewhere) as reply:
            assert reply.status == 403
        ours = docs_headers("https://app.example/webhook")
        async with client.post(running.base + "/webhook", data=sent, headers=ours) as reply:
            assert reply.status == 200


async def test_a_signature_over_the_configured_callback_url_is_accepted(
    start_server: StartServer,
) -> None:
    """Behind a proxy, with ``status_callback_url`` set and no public URL: the carrier signs
    the URL the operator configured, and the server checks against it without believing any
    forwarded header."""
    running = await start_server(
        auth_token=TOKEN, status_callback_url="https://hooks.example/webhook"
    )
    sent = fields(call="configured")
    async with aiohttp.ClientSession() as client:
        for signed_for, expected in (
            ("https://hooks.example/webhook", 200),
            ("https://other.example/webhook", 403),
        ):
            headers = docs_headers(signed_for)
            async with client.post(running.base + "/webhook", data=sent, headers=headers) as reply:
                assert reply.status == expected, signed_for
    assert [row["CallUUID"] for row in stored_fields(running)] == ["configured"]


# --- 3: signatures as Vobiz's SDK computes them ----------------------------------------------


async def test_callbacks_signed_by_the_sdk_or_by_the_docs_are_accepted(
    start_server: StartServer,
) -> None:
    running = await start_server(auth_token=TOKEN)
    url = running.base + "/webhook?tenant=7"
    sent = fields(call="sdk-post", Name="turn 3/4 & more", **{"X-VH-a": "é ü"})
    # POST, V3 as the SDK computes it: the URL's query, then every form field sorted.
    sdk = sdk_post_headers(url, sent)
    nonce = sdk["X-Vobiz-Signature-V3-Nonce"]
    by_hand = "".join(f"{name}{sent[name]}" for name in sorted(sent))
    assert sdk["X-Vobiz-Signature-V3"] == hand_hmac(f"{url}.{by_hand}.{nonce}")
    # GET, V3 as the SDK computes it: every query field sorted.
    query = fields(call="sdk-get")
    get_url = f"{url}&{urlencode(query, quote_via=quote)}"
    get_nonce = next(_NONCES)
    get_signature = get_signature_v3(
        TOKEN, construct_get_url(get_url, dict(query)).decode(), get_nonce
    ).decode()
    assert validate_v3_signature("GET", get_url, get_nonce, TOKEN, get_signature, dict(query))
    # V2 as the SDK checks it: the URL without its query, then the nonce.
    v2_nonce = next(_NONCES)
    v2 = hand_hmac(f"{running.base}/webhook{v2_nonce}")
    assert validate_signature(url, v2_nonce, v2, TOKEN)
    # The docs' reading (the full URL alone), among several signatures in one header.
    docs_nonce = next(_NONCES)
    docs = sign_v3(TOKEN, url, docs_nonce)
    assert docs == hand_hmac(f"{url}.{docs_nonce}")
    async with aiohttp.ClientSession() as client:
        tampered = sent | {"CallUUID": "tampered"}
        async with client.post(url, data=tampered, headers=sdk) as reply:
            assert reply.status == 403  # the SDK's reading signs the body: a changed field fails
        async with client.post(url, data=sent, headers=sdk) as reply:
            assert reply.status == 200
        get_headers = {
            "X-Vobiz-Signature-V3": get_signature,
            "X-Vobiz-Signature-V3-Nonce": get_nonce,
        }
        async with client.get(URL(get_url, encoded=True), headers=get_headers) as reply:
            assert reply.status == 200
        v2_headers = {"X-Vobiz-Signature-V2": v2, "X-Vobiz-Signature-V2-Nonce": v2_nonce}
        async with client.post(url, data=fields(call="sdk-v2"), headers=v2_headers) as reply:
            assert reply.status == 200
        rotated = {
            "X-Vobiz-Signature-V3": f"bm90LXRoaXMtb25l, {docs}",
            "X-Vobiz-Signature-V3-Nonce": docs_nonce,
        }
        async with client.post(url, data=fields(call="docs"), headers=rotated) as reply:
            assert reply.status == 200
    calls = [row["CallUUID"] for row in stored_fields(running)]
    assert calls == ["sdk-post", "sdk-get", "sdk-v2", "docs"]


def sdk_checking_sink(token: str, verdicts: list[tuple[str, str, bool]]) -> web.RouteDef:
    """A callback endpoint that checks each callback as an app using Vobiz's SDK would."""

    async def check(request: web.Request) -> web.Response:
        params = dict(await request.post()) if request.method == "POST" else dict(request.query)
        url = str(request.url)
        if "X-Vobiz-Signature-V3" in request.headers:
            valid = validate_v3_signature(
                request.method,
                url,
                request.headers["X-Vobiz-Signature-V3-Nonce"],
                token,
                request.headers["X-Vobiz-Signature-V3"],
                params,
            )
        else:
            valid = validate_signature(
                url,
                request.headers["X-Vobiz-Signature-V2-Nonce"],
                request.headers["X-Vobiz-Signature-V2"],
                token,
            )
        verdicts.append((request.method, str(params.get("Event")), valid))
        return web.Response(text="OK")

    return web.route("*", "/callbacks", check)


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("version", list(SignatureVersion))
async def test_emulator_callbacks_verify_with_the_sdk(
    start_server: StartServer, method: str, version: SignatureVersion
) -> None:
    verdicts: list[tuple[str, str, bool]] = []
    sink = await serve_app([sdk_checking_sink(TOKEN, verdicts)])
    try:
        callback_url = url_of(sink) + "callbacks?tenant=7"
        running = await start_server(
            status_callback_url=callback_url, status_callback_method=method
        )
        for form in SignatureForm:
            options = CallOptions(
                speed=4.0, auth_token=TOKEN, signature=version, signature_form=form
            )
            report = await run_call(running.base + "/", FIXTURE, options)
            assert report.completed, report.summary()
    finally:
        await sink.cleanup()
    sdk_verdicts, docs_verdicts = verdicts[: len(verdicts) // 2], verdicts[len(verdicts) // 2 :]
    assert sdk_verdicts and all(valid for _, _, valid in sdk_verdicts), sdk_verdicts
    assert {m for m, _, _ in verdicts} == {method}
    # The docs' form covers the full URL: the SDK's check, which drops the query and (for V3)
    # adds the fields, does not accept it here.
    assert docs_verdicts and not any(valid for _, _, valid in docs_verdicts), docs_verdicts


# --- 4: a full disk --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB filesystem (tmpfs), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write zeros to ``disk`` until it is full; the file to delete to free it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            for _ in range(10_000):  # 640 MB at most: far past the 2 MB disk
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        else:
            raise AssertionError("the disk never filled")
    return filler


def bulky(call: str) -> dict[str, str]:
    """A callback whose row and log line are far larger than the slack of a page (4 KiB)."""
    return fields(call=call, **{f"X-VH-k{number}": "v" * 1000 for number in range(40)})


@pytest.mark.parametrize("full", ["log and store", "store only"])
async def test_a_full_disk_answers_503_then_keeps_what_the_carrier_retries(
    small_disk: Path, tmp_path: Path, full: str
) -> None:
    data = small_disk / "data"
    data.mkdir()
    elsewhere = tmp_path / "webhook-events.log"
    if full == "store only":  # the log on another disk: only the store's write fails
        (data / "webhook-events.log").symlink_to(elsewhere)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await serve_process(port, data, "--auth-token", TOKEN)
    signed = {f"full-{number}": docs_headers(base + "/webhook") for number in range(5)}
    try:
        async with aiohttp.ClientSession() as client:
            for number in range(3):
                headers = docs_headers(base + "/webhook")
                async with client.post(
                    base + "/webhook", data=bulky(f"before-{number}"), headers=headers
                ) as reply:
                    assert reply.status == 200
            filler = fill(small_disk)
            refused = []
            for call, headers in signed.items():
                async with client.post(
                    base + "/webhook", data=bulky(call), headers=headers
                ) as reply:
                    refused.append(reply.status)
                    assert "retry" in await reply.text()
            async with client.get(base + "/healthz") as reply:
                assert reply.status == 200
            async with client.get(base + "/stats") as reply:
                counters = (await reply.json())["status_callbacks"]
            filler.unlink()
            for call, headers in signed.items():  # the carrier retries them as they were
                async with client.post(
                    base + "/webhook", data=bulky(call), headers=headers
                ) as reply:
                    assert reply.status == 200  # kept now; the same nonce is no replay
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert refused == [503] * 5
    assert counters["refused"] == {"not_stored": 5}
    log = stderr.decode()
    assert log.count("cannot keep a status callback") == 1, log  # logged once
    assert "answered 503, the carrier retries" in log

    with sqlite3.connect(data / "vobiz-stream.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = [row[0] for row in db.execute("SELECT call_uuid FROM status_callbacks")]
    expected = [f"before-{n}" for n in range(3)] + [f"full-{n}" for n in range(5)]
    assert stored == expected  # each once: nothing answered 200 was lost
    lines = (elsewhere if full == "store only" else data / "webhook-events.log").read_bytes()
    records = [orjson.loads(line) for line in lines.splitlines()]  # no partial line anywhere
    logged = [record["CallUUID"] for record in records]
    if full == "log and store":
        assert logged == expected
    else:  # the log was written before the store failed: the retries are logged again
        assert logged == expected[:3] + expected[3:] + expected[3:]


async def test_a_status_callback_the_store_cannot_commit_fails_its_future(
    small_disk: Path,
) -> None:
    store = QueuedCallStore(small_disk / "calls.db")
    try:
        kept = store.add_status_callback(
            parse_status_callback(bulky("kept")), datetime.now(UTC), SignatureCheck.VALID
        )
        await store.settled()
        assert kept.result() is None
        filler = fill(small_disk)
        lost = store.add_status_callback(
            parse_status_callback(bulky("lost")), datetime.now(UTC), SignatureCheck.VALID
        )
        await store.settled()
        with pytest.raises(StoreError, match="full"):
            lost.result(timeout=0)
        filler.unlink()
    finally:
        store.close()


@pytest.mark.parametrize("form", ["sdk", "docs"])
async def test_the_call_command_signs_in_the_form_asked(
    start_server: StartServer, form: str
) -> None:
    verdicts: list[tuple[str, str, bool]] = []
    sink = await serve_app([sdk_checking_sink(TOKEN, verdicts)])
    try:
        running = await start_server(status_callback_url=url_of(sink) + "callbacks?tenant=7")
        returncode, _, stderr = await run_cli(
            *("call", running.base + "/", "--audio", str(FIXTURE), "--speed", "8"),
            *("--auth-token", TOKEN, "--signature-form", form),
        )
    finally:
        await sink.cleanup()
    assert returncode == 0, stderr.decode()
    assert verdicts == [("POST", "StartStream", form == "sdk")]


async def test_an_answer_request_past_64_kib_gets_413_without_being_read(
    start_server: StartServer,
) -> None:
    """The answer URL reads the carrier's form with the same cap as the callbacks: a stranger
    announcing a huge body is refused at once instead of being waited for."""
    running = await start_server()
    status = await raw_request(
        running.base,
        "POST / HTTP/1.1\nHost: x\nContent-Type: application/x-www-form-urlencoded\n"
        "Content-Length: 100000000\n",
        b"CallUUID=c",
    )
    assert status.startswith(b"HTTP/1.1 413"), status
    async with (
        aiohttp.ClientSession() as client,
        client.post(running.base + "/", data=fields(CallUUID="c-2")) as reply,
    ):
        assert reply.status == 200 and "<Stream" in await reply.text()  # the server goes on
