"""Debian's chromium, driven by selenium through chromium-driver, for the console's tests.

:func:`chromium` installs ``chromium`` and ``chromium-driver`` with apt-get when they are missing
(as root, on Debian) and skips the test, saying why, only when that is impossible. Nothing is
downloaded by selenium itself: the driver's path is given, so its driver manager never runs.
The browser runs headless in a new, empty profile folder, with everything that would reach the
network on its own turned off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.webdriver import WebDriver

PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver"}
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,1000",
)


def _install_missing() -> str | None:
    """Install what is missing; the reason it cannot be, or None once both are there."""
    missing = [package for tool, package in PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return None
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return f"{' and '.join(missing)} missing and apt-get cannot install them here (not root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        ["install", "-y", "-q", *missing],
        ["update", "-q"],
        ["install", "-y", "-q", *missing],
    ):
        done = subprocess.run([apt, *args], env=env, capture_output=True, timeout=900, check=False)
        if args[0] == "install" and done.returncode == 0:
            return None
    return f"apt-get could not install {' '.join(missing)}: {done.stderr.decode()[-300:]}"


@contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """A headless chromium with a new profile in ``profile``."""
    reason = _install_missing()
    if reason is not None:
        pytest.skip(f"NO BROWSER TEST: {reason}")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
