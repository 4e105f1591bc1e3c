"""A real headless browser for tests: Debian's Chromium and ChromeDriver, driven by selenium.

`require_chromium()` finds /usr/bin/chromium and /usr/bin/chromedriver; as root with apt-get it
installs Debian's packages when they are missing (as tests/spark.py does for Java); otherwise
the test is skipped with the reason. Nothing is downloaded by selenium itself: both paths are
given, so Selenium Manager never looks for a driver on the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PACKAGES = ("chromium", "chromium-driver")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# This machine's network is closed: without these, Chromium keeps trying Google's services.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic", "--window-size=1440,900")  # fmt: skip


def require_chromium() -> None:
    pytest.importorskip("selenium", reason="selenium is missing: pip install -e '.[dev]'")
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"no headless browser (apt-get install {' '.join(PACKAGES)}, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)


@contextmanager
def headless_chromium() -> Iterator:
    """A selenium WebDriver on a fresh profile; quit (and its processes gone) on exit."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="gz-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def wait_for_text(driver, texts: tuple[str, ...], timeout: float = 60.0) -> str:
    """The page's visible text once every one of `texts` shows (the UI renders after fetches)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        body = d.find_element(By.TAG_NAME, "body").text
        return body if all(t in body for t in texts) else False

    try:
        return WebDriverWait(driver, timeout).until(shown)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        missing = [t for t in texts if t not in body]
        pytest.fail(f"the page never showed {missing}; it showed:\n{body[:3000]}")


def wait_for_element(driver, xpath: str, timeout: float = 60.0):
    """The element at `xpath` once the page has rendered it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(
            expected_conditions.element_to_be_clickable((By.XPATH, xpath))
        )
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"the page never showed {xpath}; it showed:\n{body[:3000]}")
