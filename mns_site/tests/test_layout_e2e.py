"""The front page and the admin in headless Chromium, at 1 280 px and at a phone's 390 px: nothing scrolls sideways.

Runs ``testsupport.screenshots`` (its own throw-away gateway with example rows) into a temporary folder and reads
what it measured on each page: the page's width against the window's, and how far any table scrolls in its box.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_no_page_scrolls_sideways(tmp_path: Path, width: int, height: int) -> None:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    command = [sys.executable, "-m", "testsupport.screenshots", "--out", str(tmp_path)]
    command += ["--width", str(width), "--height", str(height)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = re.findall(
        r"(\S+)\.png: page (\d+) px wide in a (\d+) px window; a table scrolls (\d+) px", result.stdout
    )
    pages = {Path(name).name: (int(page), int(window), int(table)) for name, page, window, table in measured}
    assert set(pages) == {"front", "admin-index", "admin-messages", "admin-add-peer"}
    assert pages == {name: (width, width, 0) for name in pages}
