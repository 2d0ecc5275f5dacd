"""The console in a real browser (Debian's chromium), with real calls from the emulator.

Checks what a user sees: the login form in front of the pages, a live call on top of the list
while it runs and in the list once it ends, a search by number, a call's waveforms drawn for both
channels, the player's time advancing, and the timeline's checkpoint and DTMF digit.

``VOBIZ_STREAM_SCREENSHOTS=<folder>`` also saves the list and a call's page there as PNG files
(``docs/`` holds the ones the README shows).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e.browser import chromium
from tests.e2e.conftest import StartServer
from tests.e2e.test_console_api import FIXTURE, TOKEN, a_call, greeter
from vobiz_stream.emulator import CallOptions, run_call

DRAWN_PIXELS = """
const canvas = document.querySelector(`canvas.waveform[data-channel="${arguments[0]}"]`);
if (!canvas || !canvas.dataset.drawn) return 0;
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
return painted;
"""


async def _in_browser(action: Callable[[], object]) -> object:
    """A blocking browser step on a thread, so the server (on this loop) goes on serving."""
    return await asyncio.to_thread(action)


def _wait(driver: WebDriver, script: str, timeout: float = 20.0) -> object:
    """Until ``script`` (a JavaScript expression) is truthy; its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {script};"),
        message=f"still false after {timeout} s: {script}",
    )


def _rows(driver: WebDriver, table: str) -> list[str]:
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, f"{table} tbody tr")]


def _screenshot(driver: WebDriver, name: str) -> None:
    """The page, as tall as it is, into ``$VOBIZ_STREAM_SCREENSHOTS/name`` when that is set."""
    folder = os.environ.get("VOBIZ_STREAM_SCREENSHOTS")
    if folder:
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1280, min(2400, int(height) + 140))
        driver.save_screenshot(str(Path(folder) / name))
        driver.set_window_size(1280, 1000)


async def _check_the_call_page(driver: WebDriver) -> None:
    """From the list's first row: both waveforms drawn, the player plays, the timeline tells."""

    def open_call() -> None:
        driver.find_element(By.CSS_SELECTOR, "#calls tbody tr a").click()
        _wait(driver, "document.querySelectorAll('canvas.waveform[data-drawn]').length === 2")

    await _in_browser(open_call)
    caller = await _in_browser(lambda: driver.execute_script(DRAWN_PIXELS, 0))
    heard = await _in_browser(lambda: driver.execute_script(DRAWN_PIXELS, 1))
    assert isinstance(caller, int) and caller > 500, caller
    assert isinstance(heard, int) and heard > 500, heard
    timeline = driver.find_element(By.ID, "timeline").text
    assert "checkpoint greeting played" in timeline and "DTMF digit 7" in timeline
    _screenshot(driver, "console-call.png")
    await _in_browser(
        lambda: driver.execute_script("document.querySelector('audio.player').play();")
    )
    await _in_browser(
        lambda: _wait(driver, "document.querySelector('audio.player').currentTime > 0.5")
    )


async def test_the_console_in_chromium(start_server: StartServer, tmp_path: Path) -> None:
    running = await start_server(greeter, admin_token=TOKEN)
    base = running.base
    await a_call(running, from_number="+15550001111", dtmf=((1.0, "7"),), hangup_after=4.0)
    await a_call(running, from_number="+15550002222", hangup_after=1.0)
    with chromium(tmp_path / "profile") as driver:
        # Without a sign-in, the pages send the browser to the login form.
        await _in_browser(lambda: driver.get(base + "/ui"))
        assert "/ui/login" in driver.current_url
        token = driver.find_element(By.ID, "token")
        assert driver.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Admin token"

        def sign_in() -> None:
            token.send_keys(TOKEN)
            token.submit()
            _wait(driver, "location.pathname === '/ui' && !!document.getElementById('calls')")

        await _in_browser(sign_in)
        assert len(_rows(driver, "#calls")) == 2

        # A call running now shows on top, with its levels, then moves to the list.
        long_call = asyncio.create_task(
            run_call(
                base + "/",
                FIXTURE,
                CallOptions(from_number="+15550003333", hangup_after=5.0),
            )
        )
        await _in_browser(
            lambda: _wait(
                driver,
                "[...document.querySelectorAll('#live-table tbody tr')]"
                ".some(r => r.textContent.includes('+15550003333'))"
                " && !document.getElementById('live').hidden",
            )
        )
        assert driver.find_elements(By.CSS_SELECTOR, "#live-table meter")
        _screenshot(driver, "console-list.png")
        report = await long_call
        assert report.completed, report.failure
        await _in_browser(
            lambda: _wait(
                driver,
                "document.getElementById('live').hidden && [...document.querySelectorAll("
                "'#calls tbody tr')].some(r => r.textContent.includes('+15550003333')"
                " && r.textContent.includes('ended'))",
            )
        )

        # Searching by a part of a number finds that call and hides the others.
        def search() -> None:
            field = driver.find_element(By.ID, "number")
            field.clear()
            field.send_keys("0001111")
            field.submit()
            _wait(driver, "location.search.includes('number=0001111')")

        await _in_browser(search)
        [found] = _rows(driver, "#calls")
        assert "+15550001111" in found

        await _check_the_call_page(driver)

        # Signing out (a POST from the page's button) sends the pages back to the login form.
        def sign_out() -> None:
            driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
            _wait(driver, "location.pathname === '/ui/login'")
            driver.get(base + "/ui")

        await _in_browser(sign_out)
        assert "/ui/login" in driver.current_url

    # A browser without a sign-in gets a 401 from the API.
    with chromium(tmp_path / "profile2") as driver:
        await _in_browser(lambda: driver.get(base + "/api/calls"))
        assert "admin token" in driver.find_element(By.TAG_NAME, "body").text
