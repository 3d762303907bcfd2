"""A real browser for the page tests: Debian's `chromium` driven by Playwright's Python package.

Playwright's own browser download is never used: `.ci/run` installs the distribution's chromium with apt-get, and
the tests launch that executable. A page is opened with its console errors, uncaught exceptions and every request
recorded, so a test can say "no console error" and "no network request" about what the browser really did.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

VIEWPORT = {"width": 1280, "height": 900}


def find_chromium() -> str | None:
    """The path of an installed Chromium (Debian names it `chromium`), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@dataclass
class PageLog:
    """What the browser reported while a page was open."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def network_requests(self) -> list[str]:
        """Requests that would leave the machine: anything but local `file:` paths and inline `data:` URIs."""
        return [url for url in self.requests if not url.startswith(("file:", "data:"))]

    @property
    def other_files(self) -> list[str]:
        """Requests for anything but the page itself and inline `data:` URIs (a single-file page makes none)."""
        return [url for url in self.requests if url != self.url and not url.startswith("data:")]


def launch_chromium(playwright):
    """A headless Chromium browser from the system's executable, or a skip saying why there is none."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium executable on PATH (`.ci/run` installs it with apt-get as root): browser test skipped")
    # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
    return playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])


def open_page(browser, path: Path, *, viewport: dict | None = None, wait_for: str | None = None):
    """Open the local file `path` in a fresh context; return (page, log). `wait_for` is a JS expression that
    becomes true when the page has finished its own start-up."""
    context = browser.new_context(viewport=viewport or VIEWPORT)
    page = context.new_page()
    log = PageLog(url=Path(path).resolve().as_uri())
    page.on("console", lambda message: message.type == "error" and log.console_errors.append(message.text))
    page.on("pageerror", lambda error: log.page_errors.append(str(error)))
    page.on("request", lambda request: log.requests.append(request.url))
    page.goto(log.url, wait_until="load")
    if wait_for:
        page.wait_for_function(wait_for, timeout=60_000)
    return page, log
