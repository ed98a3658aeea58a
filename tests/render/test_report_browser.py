"""A real browser opens the report of specs/legal.genai: the page paints (the screenshot is
not blank) and every panel's title is in the rendered page's text.

Needs Debian's `chromium` (.ci/run installs it); skipped, saying so, where it is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html import unescape

import numpy as np
import pytest

from genaisdk.render.report import PANELS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 2400

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"),
]


def chromium(url: str, profile, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *args, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_chromium_paints_the_report_and_shows_every_panel(full_report, tmp_path):
    url = full_report.resolve().as_uri()
    shot = tmp_path / "report.png"
    done = chromium(url, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}")
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (HEIGHT, WIDTH)
    assert pixels.std() > 20, "a blank (single-colour) screenshot"
    dark = (pixels < 128).mean()
    assert 0.01 < dark < 0.5, f"{dark:.1%} of the pixels are dark"

    dom = chromium(url, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = unescape(re.sub(r"<[^>]+>", " ", dom.stdout))
    for panel in PANELS:
        assert panel.title in text, panel.title
    assert "legal-summarizer" in text and "device memory 85.9 GB" in text  # text inside the SVG plots, too
