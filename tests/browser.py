"""Headless Chromium for the report.html tests: open a page from disk, read what its
check script wrote into the DOM, take screenshots.

Needs Debian's chromium (``apt-get install -y chromium``; .ci/run installs it).
Without it a test fails with the install command, it is never skipped.
"""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from analysis.html import CHECK_ID

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 60
INSTALL_HINT = (
    "headless Chromium is needed for the report.html tests and was not found "
    f"(looked for {', '.join(BROWSERS)} on PATH). Install Debian's package: "
    "`apt-get update && apt-get install -y chromium` (with sudo when not root), "
    "as .ci/run does."
)


def find_browser() -> str:
    """Chromium's path; a test failure (never a skip) telling how to install it."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(INSTALL_HINT, pytrace=False)


def chromium(page_file: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a file. --no-sandbox: as root (CI, here) Chromium will
    not start with its sandbox; the page is our own. The virtual time budget lets
    the load event and the page's check run before the DOM is dumped or shot."""
    profile = page_file.parent / f"chromium-profile-{os.getpid()}"
    command = [
        find_browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
        page_file.resolve().as_uri(),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    shutil.rmtree(profile, ignore_errors=True)
    # stderr always carries noise here (no D-Bus, Debian's launcher script): shown
    # only when Chromium itself failed.
    noise = re.compile(r"dbus|unexpected operator")
    lines = done.stderr.splitlines()
    stderr = "\n".join(line for line in lines if not noise.search(line))
    assert done.returncode == 0, f"chromium exited {done.returncode}:\n{stderr}"
    return done


class _Check(HTMLParser):
    """The <body> attributes and the text of <pre id=CHECK_ID> of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.text, self._inside = "", False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        self._inside = tag == "pre" and attrs.get("id") == CHECK_ID

    def handle_endtag(self, tag):
        if tag == "pre":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.text += data


def page_check(page: str, folder: Path, name: str = "report.html") -> dict:
    """Open ``page`` from disk in headless Chromium; what its script wrote."""
    path = folder / name
    path.write_text(page, encoding="utf-8")
    parser = _Check()
    parser.feed(chromium(path, "--dump-dom").stdout)
    body = parser.body
    assert body.get("data-checked") == "true", "the page's check did not run"
    check = json.loads(parser.text)
    assert int(body["data-images-total"]) == check["images_total"]
    assert int(body["data-images-loaded"]) == check["images_loaded"]
    assert int(body["data-errors"]) == check["errors"]
    return check
