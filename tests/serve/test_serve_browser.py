"""sagan-serve in a real browser: the command starts the page on a free local port, headless Chromium
(Debian's ``chromium`` driven by Selenium through ``chromedriver``; no browser download) picks a class and
a seed, and the image the page shows is sample.py's grid for the same inputs, pixel for pixel; a bad
input shows its message on the page."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from export_utils import NAMES, write_run
from sagan.config import load_config
from sagan.commands.sample import main as sample_cli

pytest.importorskip("gradio")
pytest.importorskip("selenium", reason="needs selenium: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SAGAN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SAGAN_CHROMEDRIVER", "/usr/bin/chromedriver")
HOW_TO_GET_ONE = ("no headless browser here: install Debian's chromium and its driver (apt-get install chromium "
                  "chromium-driver), or point SAGAN_CHROMIUM / SAGAN_CHROMEDRIVER at a Chromium and its chromedriver")

# not marked slow, so that CI (.ci/run installs chromium) runs it: ~35 s on 2 busy cores, most of it the
# server's start (importing torch and gradio)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(HOW_TO_GET_ONE)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``python -m sagan.commands.serve`` on a tiny run, on a free port of 127.0.0.1; yields (url, run folder)."""
    run = write_run(tmp_path_factory.mktemp("run"), load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"]))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sagan.commands.serve", "--checkpoint", str(run),
                                 "--port", str(port), "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sagan-serve did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url, run
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()  # bad input never became a server traceback


def pick_class(driver, wait, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, "#classes input")
    field.click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'[role=option][aria-label="{label}"]'))[0].click()
    field.send_keys(Keys.ESCAPE)


def type_into(driver, elem_id: str, value) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input, #{elem_id} textarea")
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(str(value), Keys.TAB)


def message(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "#message").text


def test_the_page_shows_sample_pys_grid_and_a_bad_input_message(browser, served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, run = served
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#classes input"))
    pick_class(browser, wait, f"4: {NAMES[4]}")
    type_into(browser, "seed", 11)
    type_into(browser, "per_class", 6)
    browser.find_element(By.CSS_SELECTOR, "#draw_grid").click()
    wait.until(lambda d: message(d).startswith("grid: "))
    src = browser.find_element(By.CSS_SELECTOR, "#figure img").get_attribute("src")
    assert src.startswith("http://127.0.0.1:")
    shown = np.asarray(Image.open(io.BytesIO(urllib.request.urlopen(src).read())).convert("RGB"))

    out = tmp_path / "grid.png"
    result = CliRunner().invoke(sample_cli, ["--checkpoint", str(run), "--out", str(out), "--classes", "4",
                                             "--per-class", "6", "--seed", "11", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(shown, np.asarray(Image.open(out).convert("RGB")))

    type_into(browser, "truncation", -1)  # a bad input: its message on the page
    browser.find_element(By.CSS_SELECTOR, "#draw_grid").click()
    wait.until(lambda d: message(d).lower().startswith("error:"))  # bold text, capitalised by the theme
    assert "truncation must be > 0" in message(browser)
    type_into(browser, "truncation", "")
    type_into(browser, "per_class", 1000)  # more than the cap
    browser.find_element(By.CSS_SELECTOR, "#draw_grid").click()
    wait.until(lambda d: "more than this page draws at once" in message(d))
