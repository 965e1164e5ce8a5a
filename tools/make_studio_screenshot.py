"""Make docs/img/studio.png: the studio in headless Chromium after a run, a blend and a mix on the pad.

    python tools/make_studio_screenshot.py [--out docs/img/studio.png] [--chromium /usr/bin/chromium]

Needs the studio extra, Playwright's Python package and Debian's chromium (no Playwright browser download).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from studio_server import serve  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "studio.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with serve() as (base, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        page.goto(base)
        page.wait_for_function("() => document.querySelectorAll('#method option').length > 0")
        page.click("#sample-photos .chip >> nth=1")
        page.click("#sample-styles .chip >> nth=3")
        page.click("#sample-styles .chip >> nth=1")
        page.eval_on_selector("#opt-max_size", "el => { el.value = '512'; el.dispatchEvent(new Event('input')); }")
        page.click("#run")
        page.wait_for_selector(".card.selected img[src*='/result']", timeout=120_000)
        page.locator("#pad").scroll_into_view_if_needed()
        pad = page.locator("#pad").bounding_box()
        page.mouse.click(pad["x"] + pad["width"] * 0.3, pad["y"] + pad["height"] * 0.4)
        page.wait_for_selector("#mix-preview[src^='blob:']", timeout=180_000)
        page.eval_on_selector("#compare-range", "el => { el.value = '42'; el.dispatchEvent(new Event('input')); }")
        page.wait_for_timeout(500)
        with tempfile.TemporaryDirectory() as tmp:
            shot = Path(tmp) / "shot.png"
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(shot), full_page=True)
            image = Image.open(shot).convert("RGB")
            image = image.resize((image.width * 2 // 3, image.height * 2 // 3), Image.LANCZOS)
            image.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
        browser.close()
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
