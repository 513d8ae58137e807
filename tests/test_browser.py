"""The web page in a real browser: Playwright driving Debian's Chromium, headless."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from livedepth.inference.estimator import DepthEstimator
from livedepth.web.server import WebOptions
from test_web import FIXTURE_PNG, SyntheticSource, running_pipeline

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")

#: A hash of the live <img>'s current pixels, drawn through a canvas.
LIVE_PIXELS = """() => {
  const img = document.getElementById("live");
  if (!img.naturalWidth) return null;
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) >>> 0;
  return h;
}"""


def test_page_streams_updates_stats_and_turns_a_photo_into_depth(tmp_path: Path, weights_pt: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    estimator = DepthEstimator(weights=weights_pt, size=128, threads=2).load()
    options = WebOptions(port=0, token="browser-token")
    with running_pipeline(estimator, SyntheticSource(320, 240, fps=15.0), options) as (pipeline, server), \
            sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1100, "height": 1000},
        )
        try:
            page = context.new_page()
            page.goto(server.url())
            page.wait_for_function(f"({LIVE_PIXELS})() !== null", timeout=30_000)
            first = page.evaluate(LIVE_PIXELS)
            stats_before = page.locator("#stats").inner_text()
            time.sleep(2)
            assert page.evaluate(LIVE_PIXELS) != first, "the live image advances"
            expect(page.locator("#stats")).to_contain_text("fps", timeout=10_000)
            page.wait_for_function(f"document.getElementById('stats').textContent !== {stats_before!r}",
                                   timeout=10_000)
            assert "processed" in page.locator("#stats").inner_text()

            page.select_option("#layout", "side")
            page.locator("#photo").set_input_files(str(FIXTURE_PNG))
            page.wait_for_function(
                "() => { const r = document.getElementById('result'); return !r.hidden && r.naturalWidth > 0; }",
                timeout=60_000,
            )
            size = page.evaluate("() => [result.naturalWidth, result.naturalHeight]")
            assert size == [1280, 480], "the photo's depth, side by side in the chosen layout"
            assert page.locator("#photo-error").inner_text() == ""
            page.wait_for_function(f"({LIVE_PIXELS})() !== null")
            assert pipeline.colorizer.layout == "side", "the layout control changed the live stream too"
            shot = tmp_path / "web_page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "web_page.png")
