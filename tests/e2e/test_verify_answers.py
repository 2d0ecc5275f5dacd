"""Answer requests checked against the carrier's signature, with ``verify_answers``."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.e2e.conftest import StartServer
from tests.e2e.test_reliability_crash import RATE, caller_audio
from vobiz_stream.app.config import load_settings
from vobiz_stream.core.answer import CallbackMethod
from vobiz_stream.core.signatures import SignatureForm
from vobiz_stream.emulator import CallOptions, SignatureVersion, run_call
from vobiz_stream.emulator.callbacks import callback_request
from vobiz_stream.emulator.source import CallerSource
from vobiz_stream.errors import ConfigError

AUTH_TOKEN = "MAUTHTOKEN-for-tests-9876543210"
SECRET = "stream-secret-for-tests-0123456789"


async def call(base: str, **options: object) -> bool:
    report = await run_call(
        base + "/", CallerSource(caller_audio(0, 1.0), RATE), CallOptions(speed=4.0, **options)
    )
    return report.completed


@pytest.mark.parametrize(
    ("version", "form"),
    [
        (SignatureVersion.V3, SignatureForm.SDK),
        (SignatureVersion.V3, SignatureForm.DOCS),
        (SignatureVersion.V2, SignatureForm.SDK),
    ],
)
async def test_a_signed_answer_is_answered_and_its_call_recorded(
    start_server: StartServer, version: SignatureVersion, form: SignatureForm
) -> None:
    running = await start_server(stream_secret=SECRET, auth_token=AUTH_TOKEN, verify_answers=True)
    assert await call(running.base, auth_token=AUTH_TOKEN, signature=version, signature_form=form)
    await running.wait_idle()
    assert len(running.recordings()) == 1


async def test_an_unsigned_wrongly_signed_or_replayed_answer_gets_403(
    start_server: StartServer,
) -> None:
    running = await start_server(stream_secret=SECRET, auth_token=AUTH_TOKEN, verify_answers=True)
    assert not await call(running.base)  # the emulator without the token does not sign
    assert not await call(running.base, auth_token="another-token-entirely-123")
    signed = callback_request(
        running.base + "/", CallbackMethod.POST, {"CallUUID": "c-1"}, auth_token=AUTH_TOKEN
    )
    async with aiohttp.ClientSession() as client:
        statuses = []
        for _ in range(2):  # the same signed request twice: the second is a replay
            async with client.post(signed.url, data=signed.body, headers=signed.headers) as reply:
                statuses.append(reply.status)
    assert statuses == [200, 403]
    assert running.recordings() == []


async def test_without_verify_answers_the_log_says_once_whether_answers_come_signed(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vobiz_stream.app.server")
    running = await start_server(auth_token=AUTH_TOKEN)
    for _ in range(2):
        assert await call(running.base, auth_token=AUTH_TOKEN)
    said = [r.getMessage() for r in caplog.records if "first answer request" in r.getMessage()]
    assert said == [
        "the first answer request carries a signature: set --verify-answers true to refuse "
        "answer requests without one"
    ]


def test_verify_answers_needs_the_auth_token() -> None:
    with pytest.raises(ConfigError, match="set --auth-token"):
        load_settings({"verify_answers": True}, environ={})
