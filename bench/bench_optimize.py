"""Benchmark of ``brushwork optimize``: speed per iteration, peak memory, and time to reach a fixed loss.

Run by hand (never by the tests)::

    python bench/bench_optimize.py                       # everything (about 5 minutes on 2 CPU cores)
    python bench/bench_optimize.py --part speed          # seconds per iteration and peak memory
    python bench/bench_optimize.py --part converge       # time to a fixed loss: --init fast, multi-scale

speed: for each backbone and size, the median seconds per L-BFGS iteration (one forward and backward pass through
the layers up to the deepest loss layer, plus the losses), in a fresh process so that its peak resident memory
(CPU; peak allocated memory on CUDA) belongs to that configuration alone. VGG runs with random weights (speed does
not depend on the values); MobileNetV2 with its pretrained weights.

converge: with the pretrained MobileNetV2 at ``--size``, the reference run (content init, one scale) gives the
target loss L* = its best loss after ``--reference-iterations``; then each variant runs until its loss *at the
final scale* (the same objective) reaches L*, and reports the wall time including everything it does first
(coarse scales, the fast network). Seeds are fixed; images come from ../shared/corpus (synthetic if absent).

On a machine shared with other jobs OpenMP's busy-waiting makes PyTorch several times slower than the compute
needs; this script therefore sets OMP_WAIT_POLICY=PASSIVE (unless already set) before importing torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("BRUSHWORK_CORPUS", ROOT.parent / "shared" / "corpus"))
CONTENT = "content/coco-sample_06_skateboarder.jpg"
STYLE = "styles/vincent-van-gogh_the-starry-night.jpg"


def images(size: int):  # -> tuple[Tensor, Tensor, str]
    """Content and style tensors (``1×3×H×W``) and where they came from."""
    import torch

    from brushwork import io

    if (CORPUS / CONTENT).is_file() and (CORPUS / STYLE).is_file():
        c = io.to_tensor(io.resize_to_max(io.load_image(CORPUS / CONTENT).rgb, 2 * size))
        s = io.to_tensor(io.resize_to_max(io.load_image(CORPUS / STYLE).rgb, 2 * size))
        return c, s, f"{CONTENT} + {STYLE}"
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    c = torch.stack([xx, yy, 1 - xx * yy])[None]
    s = torch.rand(1, 3, size, size, generator=g)
    return c, s, "synthetic (corpus not found)"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def speed_worker(backbone: str, size: int, iterations: int, device: str) -> dict:
    import torch

    from brushwork.methods.optimize import optimize, resolve_device
    from brushwork.nets.backbone import build_backbone

    dev = resolve_device(device)
    content, style, source = images(size)
    net = build_backbone(backbone, "imagenet" if backbone == "mobilenet" else "random", device=dev)
    before = rss_mib()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stamps: list[float] = []

    def callback(i: int, losses: dict, image) -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    optimize(content, style, backbone=net, size=size, iterations=iterations + 2, device=dev, callback=callback)
    per_iteration = [b - a for a, b in zip(stamps[2:], stamps[3:], strict=False)]  # after 2 warm-up iterations
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    record = {
        "backbone": backbone,
        "size": size,
        "median_s_per_iteration": statistics.median(per_iteration),
        "iterations_timed": len(per_iteration),
        "peak_rss_mib": round(peak),
        "rss_before_run_mib": round(before),
        "images": source,
        "device": str(dev),
    }
    if dev.type == "cuda":
        record["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return record


def run_speed(args: argparse.Namespace) -> list[dict]:
    rows = []
    for backbone in args.backbones:
        for size in args.sizes:
            n = args.iterations if backbone == "mobilenet" else max(3, args.iterations // 4)
            cmd = [sys.executable, __file__, "--worker", backbone, str(size), str(n), "--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                print(f"{backbone} {size}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{backbone:9s} {size:4d} px  {row['median_s_per_iteration']:7.3f} s/iteration  "
                f"peak RSS {row['peak_rss_mib']:5d} MiB (before the run {row['rss_before_run_mib']} MiB)",
                flush=True,
            )
    return rows


def run_converge(args: argparse.Namespace) -> list[dict]:
    from brushwork.methods.optimize import optimize, pyramid_sizes, resolve_device
    from brushwork.nets.backbone import build_backbone

    dev = resolve_device(args.device)
    size = args.size
    content, style, source = images(size)
    net = build_backbone("mobilenet", device=dev)
    n_ref = args.reference_iterations
    print(f"converge: mobilenet at {size} px, {source}", flush=True)

    def run(label: str, target: float | None, **kwargs) -> dict:
        scales = pyramid_sizes(size, kwargs.get("min_size"))
        final = len(scales) - 1
        coarse = args.coarse_iterations
        iterations = [coarse] * final + [n_ref] if final else n_ref
        state = {"scale_iteration": 0, "reached": None, "best": float("inf")}
        started = time.perf_counter()

        def callback(i: int, losses: dict, image) -> bool:
            if max(image.shape[-2:]) != size:
                return False
            state["scale_iteration"] += 1
            state["best"] = min(state["best"], losses["total"])
            if target is not None and state["best"] <= target and state["reached"] is None:
                state["reached"] = (time.perf_counter() - started, state["scale_iteration"], i)
                return True
            return False

        result = optimize(content, style, backbone=net, size=size, iterations=iterations, device=dev,
                          callback=callback, seed=0, **kwargs)  # fmt: skip
        row = {
            "variant": label,
            "seconds_total": time.perf_counter() - started,
            "best_loss": result.best_loss,
            "iterations_all_scales": result.iterations,
        }
        if state["reached"] is not None:
            row["seconds_to_target"], row["final_scale_iterations"], row["iterations_to_target"] = state["reached"]
        return row

    ref = run("content init, one scale (reference)", None)
    target = ref["best_loss"]
    ref["seconds_to_target"], ref["final_scale_iterations"] = ref["seconds_total"], n_ref
    rows = [ref]
    print(f"  target loss L* = {target:.4g} (reference: {n_ref} iterations, {ref['seconds_total']:.1f} s)", flush=True)
    for label, kwargs in [
        ("--init fast, one scale", {"init": "fast"}),
        (f"multi-scale from {args.min_size}", {"min_size": args.min_size}),
        (f"--init fast + multi-scale from {args.min_size}", {"init": "fast", "min_size": args.min_size}),
    ]:
        row = run(label, target, **kwargs)
        rows.append(row)
    for row in rows:
        reached = row.get("seconds_to_target")
        text = (
            f"{reached:7.1f} s ({row['final_scale_iterations']} iterations at {size} px), "
            f"{ref['seconds_total'] / reached:4.1f}× faster"
            if reached is not None
            else f"not reached in {row['seconds_total']:.1f} s (best {row['best_loss']:.4g})"
        )
        print(f"  {row['variant']:40s} {text}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["all", "speed", "converge"], default="all")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet", "vgg19", "vgg16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--iterations", type=int, default=12, help="timed iterations per speed run (VGG: a quarter)")
    parser.add_argument("--size", type=int, default=512, help="size of the convergence runs")
    parser.add_argument("--reference-iterations", type=int, default=200)
    parser.add_argument("--coarse-iterations", type=int, default=50, help="per coarse scale")
    parser.add_argument("--min-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the records here")
    parser.add_argument("--worker", nargs=3, metavar=("BACKBONE", "SIZE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        backbone, size, n = args.worker
        print(json.dumps(speed_worker(backbone, int(size), int(n), args.device)))
        return
    import torch

    print(
        f"brushwork optimize benchmark — torch {torch.__version__}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
        flush=True,
    )
    record: dict = {}
    if args.part in ("all", "speed"):
        record["speed"] = run_speed(args)
    if args.part in ("all", "converge"):
        record["converge"] = run_converge(args)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
