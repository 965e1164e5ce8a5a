"""End-to-end tests of the studio page in real headless Chromium (Debian's ``chromium`` package, driven by
Playwright's Python API through ``executable_path``; Playwright's own browser downloads are never used).

Skipped when Chromium or Playwright is missing. CI: ``apt-get install -y chromium`` and ``pip install playwright``.
Set ``BRUSHWORK_SCREENSHOT=path.png`` to keep the screenshot of the studio (docs/img/studio.png is made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import samples

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
sync_api = pytest.importorskip("playwright.sync_api")

from studio_server import serve  # noqa: E402

CHROMIUM = os.environ.get("BRUSHWORK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CAMERA_FLAGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def studio() -> str:
    with serve("--workers", "2") as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS + CAMERA_FLAGS, headless=True)
        yield b
        b.close()


def _open(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["camera"], origin=url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => document.querySelectorAll('#method option').length > 0", timeout=30_000)
    return page, errors


def _choose(page) -> None:
    page.set_input_files("#photo-input", str(samples.SAMPLE_PHOTO))
    page.wait_for_selector("#photo-thumb[src]", state="visible", timeout=30_000)
    page.click("#sample-styles .chip >> nth=0")
    page.wait_for_selector("#chosen-styles li")


def test_upload_run_watch_compare_download(studio: str, browser, tmp_path: Path) -> None:
    page, errors = _open(browser, studio)
    _choose(page)
    # moving a slider shows a quick preview in the compare view
    page.eval_on_selector("#opt-strength", "el => { el.value = '0.8'; el.dispatchEvent(new Event('input')); }")
    page.wait_for_selector("#after[src^='blob:']", state="attached", timeout=30_000)
    page.select_option("#method", "fast")
    page.eval_on_selector("#opt-max_size", "el => { el.value = '256'; el.dispatchEvent(new Event('input')); }")
    page.click("#run")
    page.wait_for_selector("#progress", state="visible")
    page.wait_for_selector(".card.selected img[src*='/result']", timeout=60_000)
    assert "done" in page.inner_text("#progress-text")
    assert page.eval_on_selector(".card.selected img", "img => img.complete && img.naturalWidth") == 256
    # the before/after slider moves the clip of the result
    page.eval_on_selector("#compare-range", "el => { el.value = '30'; el.dispatchEvent(new Event('input')); }")
    assert "30%" in page.eval_on_selector("#after-clip", "el => el.style.clipPath")
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "result.png"
    info.value.save_as(saved)
    with Image.open(saved) as img:
        assert img.format == "PNG" and max(img.size) == 256
    shot = Path(os.environ.get("BRUSHWORK_SCREENSHOT") or tmp_path / "studio.png")
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    assert errors == []


def test_every_method_in_a_grid_and_a_live_optimization(studio: str, browser) -> None:
    page, errors = _open(browser, studio)
    _choose(page)
    page.select_option("#method", "optimize")
    # a short optimization that shows a preview at every step
    page.click("#advanced summary")
    page.fill("#advanced-fields [data-option=iterations]", "4")
    page.fill("#advanced-fields [data-option=preview_every]", "1")
    page.select_option("#advanced-fields [data-option=optimizer]", "adam")
    page.select_option("#advanced-fields [data-option=init]", "content")
    page.eval_on_selector("#opt-max_size", "el => { el.value = '64'; el.dispatchEvent(new Event('input')); }")
    methods = page.eval_on_selector_all("#method option", "o => o.map(x => x.value)")
    page.click("#run-all")
    done = f"() => document.querySelectorAll('#results .card').length >= {len(methods)} && "
    done += "[...document.querySelectorAll('#results .card')].every(c => c.dataset.result || c.matches('.failed'))"
    page.wait_for_function(done, timeout=240_000)
    cards = page.eval_on_selector_all(
        "#results .card", "cs => cs.map(c => [c.dataset.method, !!c.dataset.result, c.innerText])"
    )
    assert sorted(c[0] for c in cards) == sorted(methods)
    assert all(ok for _, ok, _ in cards), cards
    # the optimization's progress came with losses and intermediate pictures
    assert page.eval_on_selector("#progress-preview", "img => img.src").startswith("data:image/jpeg")
    assert "optimize" in page.inner_text("#progress-text")
    # clicking a card of the grid compares that method's result
    page.click("#results .card[data-method=fast]")
    assert "fast" in page.inner_text("#download")
    assert errors == []


def test_video_clip(studio: str, browser, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    pytest.importorskip("brushwork.video")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(4):
            rgb = np.zeros((64, 96, 3), np.uint8)
            rgb[:, : 20 + 12 * i] = (200, 90, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    page, errors = _open(browser, studio)
    page.click("#sample-styles .chip >> nth=0")
    page.set_input_files("#video-input", str(clip))
    page.wait_for_selector("#video-run:not([disabled])", timeout=30_000)
    page.click("#video-run")
    finished = (
        "() => !document.querySelector('#video-download').hidden || document.querySelector('#message').textContent"
    )
    page.wait_for_function(finished, timeout=120_000)
    assert page.inner_text("#message") == ""
    assert page.get_attribute("#video-out", "src").endswith("/result")
    assert errors == []


def test_camera_streams_stylized_frames(studio: str, browser) -> None:
    page, errors = _open(browser, studio)
    page.click("#sample-styles .chip >> nth=0")
    page.click("#camera-start")
    page.wait_for_function(
        "() => Number(document.querySelector('#camera-out').dataset.frames || 0) >= 3", timeout=60_000
    )
    assert page.eval_on_selector("#camera-out", "img => img.naturalWidth") > 0
    page.click("#camera-stop")
    assert errors == []
