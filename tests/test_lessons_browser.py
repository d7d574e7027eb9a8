"""Lesson 1 in a real browser: serve it with ``marimo run``, move the β slider in headless
Chromium, and check the KL the page shows against ``fe.kl`` of the exact tilt.

Uses Debian's ``chromium`` through Python ``playwright`` (``executable_path``; no browser
download). Skipped only when chromium is missing outside CI; in CI (``CI`` set) it must run.
All traffic stays on 127.0.0.1. On failure a screenshot is saved to ``test-artifacts/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import freeenergy as fe

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "lessons" / "01_gibbs_tilt.py"
ARTIFACTS = ROOT / "test-artifacts"
HOST = "127.0.0.1"

BETA_RE = re.compile(r"At β = ([0-9.eE+-]+) the tilt has")
KL_RE = re.compile(r"KL\(q‖p0\) = ([0-9.eE+-]+) nats")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_until_serving(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"marimo exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"marimo did not serve {url} within {timeout} s")


def _lesson_inputs():
    """The reference and reward the lesson defines, read from the notebook itself."""
    sys.path.insert(0, str(LESSON.parent))
    try:
        spec = importlib.util.spec_from_file_location("lesson01_for_browser", LESSON)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _, defs = module.app.run()
    finally:
        sys.path.remove(str(LESSON.parent))
    return defs["logp0"], defs["reward"]


def _read_beta_and_kl(page, timeout_ms: int = 60_000, not_beta: str | None = None):
    """(β text, KL text) as shown on the page, waiting until both are present (and β changed)."""
    deadline = time.monotonic() + timeout_ms / 1000
    text = ""
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        beta, kl = BETA_RE.search(text), KL_RE.search(text)
        if beta and kl and beta.group(1) != not_beta:
            return beta.group(1), kl.group(1)
        page.wait_for_timeout(200)
    raise AssertionError(f"β and KL not shown (or β did not change); page text: {text[:2000]}")


@pytest.fixture
def chromium():
    """Debian's chromium: skipped without it outside CI, an error in CI."""
    path = _chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
def marimo_server(chromium):
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    env["FREEENERGY_LESSON_TINY"] = "1"
    cmd = [sys.executable, "-m", "marimo", "run", str(LESSON), "--headless",
           "--host", HOST, "--port", str(port), "--no-token"]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://{HOST}:{port}/"
    try:
        _wait_until_serving(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def test_beta_slider_moves_the_exact_kl(chromium, marimo_server):
    if os.environ.get("CI"):  # in CI the test must run: a missing playwright is an error
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    logp0, reward = _lesson_inputs()

    def exact_kl(beta: float) -> float:
        return float(fe.kl(fe.gibbs(logp0, -reward, beta), logp0))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
        try:
            page.goto(marimo_server, wait_until="domcontentloaded")
            beta0, kl0 = _read_beta_and_kl(page)
            assert float(kl0) == pytest.approx(exact_kl(float(beta0)), rel=0, abs=1e-11)

            slider = page.get_by_role("slider").first
            slider.focus()
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            beta1, kl1 = _read_beta_and_kl(page, not_beta=beta0)
            assert float(beta1) > float(beta0)
            assert float(kl1) == pytest.approx(exact_kl(float(beta1)), rel=0, abs=1e-11)
            # hotter means closer to p0: the KL must have gone down, by a visible amount
            assert float(kl1) < float(kl0) - 1e-3
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "lesson01_browser_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
