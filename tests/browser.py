"""Serving the studio on loopback and driving it in Debian's headless Chromium (Playwright)."""
from __future__ import annotations

import shutil
import socket
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]

needs_chromium = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(settings):
    """Start the real app (same options as ``launch``) on a free loopback port; close it afterwards."""
    from design_studio.app import create, launch_options

    settings.port = free_port()
    studio, demo = create(settings)
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.launch(**launch_options(settings), prevent_thread_lock=True, quiet=True)
    try:
        yield studio, f"http://127.0.0.1:{settings.port}/"
    finally:
        demo.close()


@contextmanager
def browser_page(width: int = 1440, height: int = 900):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
