"""Benchmark of ``method="optimize"`` at large sizes: coarse-to-fine with the finest scale in tiles.

Run by hand (never by the tests)::

    python bench/bench_optimize_large.py             # 1024 px and 3840×2160
    python bench/bench_optimize_large.py --part 1024                               # tiled against untiled only

Every configuration runs in a fresh process (so that its peak resident memory is its own) through the contract
(``brushwork.api.stylize_picture``) on the project's sample photo and a sample style (brushwork/assets), MobileNetV2
(pretrained, offline), ``init="fast"``. Printed per configuration: wall time, peak RSS (before the evaluation), the
whole-image loss terms of the result under the untiled objective at the output's size (at 3840×2160 the tiled
statistics pass's style loss instead, since the untiled evaluation alone would exceed the budget), and the seam
energy: mean |difference| of neighbouring pixels across the tile borders divided by the same elsewhere (1 = no
trace of the borders). Configurations:

- ``fast``: the fast path alone (the start image), 1024 px.
- ``untiled``: the usual optimisation at 1024 px (``tile=0``), ``--iterations`` L-BFGS iterations.
- ``tiled``: ``tile=384`` at 1024 px: the coarse scale (512 px) whole with ``--iterations``, then
  ``--tile-iterations`` per tile at 1024 px.
- ``4k``: 3840×2160, automatic tiling with the default 1 GB budget, ``--iterations-4k`` / ``--tile-iterations-4k``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTO = ROOT / "brushwork" / "assets" / "sample_photo.jpg"
STYLE = ROOT / "brushwork" / "assets" / "styles" / "swirls.jpg"


def content_at(width: int, height: int, path: Path) -> Path:
    """The sample photo resized to width×height (a project image, upscaled), written to ``path``."""
    from brushwork import io

    rgb = io.resize(io.load_image(PHOTO).rgb, (width, height))
    io.save_image(rgb, path)
    return path


def evaluate(out_path: Path, content_path: Path) -> dict[str, float]:
    """The untiled objective's terms (weighted) for the image at ``out_path`` at its own size."""
    import torch

    from brushwork import io
    from brushwork.methods import optimize as opt
    from brushwork.options import OptimizeOptions

    o = OptimizeOptions()
    out = io.to_tensor(io.load_image(out_path).rgb)
    content = io.to_tensor(io.load_image(content_path).rgb)
    style = io.to_tensor(io.load_image(STYLE).rgb)
    net, c_layers, s_layers = opt._network("mobilenet", "imagenet", o.pool, o.swag, torch.device("cpu"), 0, None,
                                           None, None, o.style_weight)  # fmt: skip
    longer = opt._style_longer(max(out.shape[-2:]), 1.0)
    s_img = opt.resize(style, opt.fit_size(style.shape[-1], style.shape[-2], longer))
    weights = {"content": o.content_weight, "style": o.style_weight, "tv": o.tv_weight}
    objective = opt._Objective(net, o.loss, content, [s_img], [1.0], c_layers, s_layers, weights, None, False)
    with torch.no_grad():
        return objective(out)[1]


def worker(config: str, args: argparse.Namespace) -> dict:
    from brushwork import api, io
    from brushwork.methods.optimize_large import seam_energy

    tmp = Path(args.tmp)
    size = (3840, 2160) if config == "4k" else (1024, 683)
    content = content_at(*size, tmp / f"content-{size[0]}.png")
    options: dict = dict(backbone="mobilenet", max_size=None, init="fast", seed=0)
    if config == "fast":
        method, options = "fast", dict(max_size=None, tile=0)
    elif config == "untiled":
        method = "optimize"
        options |= dict(tile=0, iterations=args.iterations)
    elif config == "tiled":
        method = "optimize"
        options |= dict(tile=384, iterations=args.iterations, tile_iterations=args.tile_iterations)
    else:
        method = "optimize"
        options |= dict(iterations=args.iterations_4k, tile_iterations=args.tile_iterations_4k)
    events = []
    started = time.perf_counter()
    picture = api.stylize_picture(content, STYLE, method=method, progress=events.append, **options)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = tmp / f"{config}.png"
    io.save_image(picture, out)
    row: dict = {"config": config, "size": f"{size[0]}×{size[1]}", "seconds": seconds, "peak_mib": peak}
    tiled_events = [e for e in events if e.message.startswith("tile")]
    if tiled_events:
        row["tile_side"] = int(tiled_events[0].message.split("(")[1].split(" px")[0])
        row["last_event"] = dict(tiled_events[-1].losses)
        row["first_tile_event"] = dict(tiled_events[0].losses)
        row["tile_events"] = len(tiled_events)
    rgb = io.load_image(out).rgb
    row["seam"] = seam_energy(rgb, row.get("tile_side", 384))  # untiled / fast: the same lines, for reference
    if config != "4k":
        row["loss"] = evaluate(out, content)
    return row


def run(config: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", config, "--tmp", args.tmp, "--iterations", str(args.iterations),
           "--tile-iterations", str(args.tile_iterations), "--iterations-4k", str(args.iterations_4k),
           "--tile-iterations-4k", str(args.tile_iterations_4k)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{config} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["all", "1024", "4k"], default="all")
    p.add_argument("--iterations", type=int, default=40, help="whole iterations (untiled; tiled: the coarse scale)")
    p.add_argument("--tile-iterations", type=int, default=10)
    p.add_argument("--iterations-4k", type=int, default=20)
    p.add_argument("--tile-iterations-4k", type=int, default=5)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        configs = {"all": ["fast", "untiled", "tiled", "4k"], "1024": ["fast", "untiled", "tiled"], "4k": ["4k"]}
        for config in configs[args.part]:
            row = run(config, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print("| configuration | size | time | peak RSS | style | content | TV | seam ratio (borders / elsewhere) |")
    print("|---|---|---|---|---|---|---|---|")
    names = {
        "fast": "fast path alone (start image)",
        "untiled": f"untiled, {args.iterations} iterations",
        "tiled": f"tiled 384 px, {args.iterations} coarse + {args.tile_iterations} per tile",
        "4k": f"tiled (1 GB budget), {args.iterations_4k} coarse + {args.tile_iterations_4k} per tile",
    }
    for r in rows:
        loss = r.get("loss") or r.get("last_event") or {}
        seam = f"{r['seam'][2]:.3f}" if r.get("seam") else "—"
        print(f"| {names[r['config']]} | {r['size']} | {r['seconds']:.0f} s | {r['peak_mib']:.0f} MiB | "
              f"{loss.get('style', float('nan')):.1f} | {loss.get('content', float('nan')):.2f} | "
              f"{loss.get('tv', float('nan')):.2f} | {seam} |")  # fmt: skip
    by = {r["config"]: r for r in rows}
    if "untiled" in by and "tiled" in by:
        u, t = by["untiled"], by["tiled"]
        print(f"\ntiled / untiled at 1024 px: time {t['seconds'] / u['seconds']:.2f}×, peak RSS "
              f"{t['peak_mib'] / u['peak_mib']:.2f}×, style loss {t['loss']['style'] / u['loss']['style']:.2f}×, "
              f"total loss {t['loss']['total'] / u['loss']['total']:.2f}×")  # fmt: skip


if __name__ == "__main__":
    main()
