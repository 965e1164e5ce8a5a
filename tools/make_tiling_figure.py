"""Make docs/img/tiling_crop.jpg: the sample photo enlarged to print size, stylized in tiles within the default
1 GB budget, shown small next to a 1:1 crop (run from the repo root; a few minutes on a laptop CPU).

    python tools/make_tiling_figure.py [--width 6000] [--style swirls] [--method fast]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from brushwork import api, io, samples

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "tiling_crop.jpg"


def peak_mb() -> float | None:
    """This process's peak resident memory (VmHWM), where /proc has it."""
    try:
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=6000, help="width of the enlarged photo (pixels)")
    parser.add_argument("--style", default="swirls", choices=sorted(samples.STYLES))
    parser.add_argument("--method", default="fast", choices=["fast", "microast", "adain", "wct"])
    parser.add_argument("--crop", type=int, default=440, help="side of the 1:1 crop (pixels)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    # export the tiled segments first in a child process (once, cached): exporting imports torch, whose memory
    # would otherwise count in this process's peak
    warm = "from brushwork import api, samples; import sys; api.stylize_picture(samples.SAMPLE_PHOTO, [sys.argv[1]], "
    warm += "method=sys.argv[2], tile=64)"
    subprocess.run([sys.executable, "-c", warm, str(samples.STYLES[args.style]), args.method], check=True)
    photo = io.load_pixels(samples.SAMPLE_PHOTO).rgb  # 8-bit, 600×400
    h, w = photo.shape[:2]
    size = (args.width, round(h * args.width / w))
    big = cv2.resize(photo, size, interpolation=cv2.INTER_LANCZOS4)  # 8-bit: no float copy of the whole picture
    start = time.perf_counter()
    picture = api.stylize_picture(
        io.Picture(rgb=big, alpha=None, path=None, bit_depth=8),
        [samples.STYLES[args.style]],
        method=args.method,
        max_size=None,
        memory_budget="1GB",
    )
    seconds, peak = time.perf_counter() - start, peak_mb()
    out = picture.rgb  # 8-bit when tiled (float32 for a small --width, rendered whole)
    if out.dtype != np.uint8:
        out = (np.clip(out, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    H, W = out.shape[:2]

    small_w = 660
    small_h = round(H * small_w / W)
    small = Image.fromarray(cv2.resize(out, (small_w, small_h), interpolation=cv2.INTER_AREA))
    side = min(args.crop, small_h)
    cy, cx = int(H * 0.45), int(W * 0.55)  # the crop: 1:1 pixels from the middle of the picture
    y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
    crop = Image.fromarray(np.ascontiguousarray(out[y0 : y0 + side, x0 : x0 + side]))
    draw = ImageDraw.Draw(small)
    s = small_w / W
    draw.rectangle([x0 * s, y0 * s, (x0 + side) * s, (y0 + side) * s], outline="white", width=2)

    pad, band = 8, 22
    sheet = Image.new("RGB", (pad * 3 + small_w + side, pad * 2 + band + max(small_h, side)), "white")
    sheet.paste(small, (pad, pad + band))
    sheet.paste(crop, (pad * 2 + small_w, pad + band))
    text = ImageDraw.Draw(sheet)
    memory = f", peak {peak:.0f} MB" if peak else ""
    title = f"{W}x{H}, {args.method} - {args.style}.jpg, automatic tiling in a 1 GB budget{memory}"
    text.text((pad, pad + 4), title, fill="black")
    text.text((pad * 2 + small_w, pad + 4), f"1:1 crop ({side}x{side} px)", fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.save_image(np.asarray(sheet, dtype=np.float32) / 255.0, args.out, quality=85)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB; stylized {W}×{H} in {seconds:.0f} s{memory}")


if __name__ == "__main__":
    main()
