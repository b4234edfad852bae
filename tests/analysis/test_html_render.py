"""report.html renders in a real browser: a headless Chromium screenshot is not blank (slow)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rundirs import small_run

from smpmem.analysis import analyze

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_report_html_screenshot_not_blank(tmp_path: Path) -> None:
    """Headless Chromium renders report.html (offline) to a screenshot with text, tables and plots on it."""
    image = pytest.importorskip("matplotlib.image")
    d = small_run(tmp_path / "run")
    analyze(d)
    shot = tmp_path / "shot.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400",
           f"--screenshot={shot}", (d / "report.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    px = image.imread(str(shot))[:, :, :3]
    assert px.shape[0] >= 2000 and px.shape[1] >= 1200
    non_white = (px.min(axis=2) < 0.9).mean()
    assert non_white > 0.03, f"only {non_white:.1%} of the screenshot is not white"
    # the plots' colours are there (the blue of kswapd spans / free-page lines): images were decoded
    blue = ((px[:, :, 2] > 0.6) & (px[:, :, 0] < 0.3)).mean()
    assert blue > 0.001
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
