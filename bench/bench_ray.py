"""Throughput of a folder on a local Ray runtime against the single-process run (``brushwork stylize DIR``).

    python bench/bench_ray.py [--images 200] [--width 1024 --height 768] [--repeats 3] [--workers 1 2]

Makes ``--images`` photos (crops of the sample photo, each shifted and tinted so that no two are alike) and
stylizes them with ``builtin:5`` (fast method, default runtime), each job a fresh command, timed as a whole:

  * one process: ``brushwork stylize DIR builtin:5 -o OUT``;
  * Ray with N workers for each N of ``--workers``: the same command with ``--ray ADDRESS --workers N
    --worker-cpus cores/N``, joining a local Ray runtime that this script starts once before the timed runs (its
    start is printed apart: on a cluster it is already running). A job's time includes the driver joining the
    cluster, making its workers and loading their networks, as a user's run does.

Prints the median time and images/s of each, the ratio to one process, and the overhead of one worker
(acceptance: at most 10 %). Runs alternate between the kinds, so that a change in the machine's load falls on all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a runtime on loopback only (below), gone when the run ends


def make_photos(folder: Path, n: int, width: int, height: int) -> None:
    from brushwork import io, samples

    base = io.load_image(samples.SAMPLE_PHOTO).rgb
    big = io.resize(base, (width + 64, height + 64)) if min(base.shape[:2]) < height + 64 else base
    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = rng.integers(0, big.shape[0] - height + 1), rng.integers(0, big.shape[1] - width + 1)
        tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        io.save_image(np.clip(big[y : y + height, x : x + width] * tint, 0, 1), folder / f"photo{i:04d}.jpg")


def job(photos: Path, out: Path, style: str, *ray: str) -> float:
    """Seconds of one ``brushwork stylize`` command, from start to exit."""
    cmd = [sys.executable, "-m", "brushwork", "stylize", str(photos), style, "-o", str(out), "-q", *ray]
    t = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if run.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{run.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="photos per job (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs of each kind (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray workers to try")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs to use (default: all)")
    args = parser.parse_args()

    import ray

    style = "builtin:5"
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        photos = root / "photos"
        photos.mkdir()
        make_photos(photos, args.images, args.width, args.height)
        sources = sorted(photos.iterdir())
        t = time.perf_counter()
        ray.init(
            num_cpus=args.cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            _node_ip_address="127.0.0.1",
        )
        start = time.perf_counter() - t
        address = ray.get_runtime_context().gcs_address
        kinds: dict[str, list[str]] = {"one process": []}
        for n in args.workers:
            cpus = f"{max(1.0, args.cpus / n):g}"
            kinds[f"Ray, {n} worker{'s' if n > 1 else ''}"] = [
                "--ray",
                address,
                "--workers",
                str(n),
                "--worker-cpus",
                cpus,
            ]
        times: dict[str, list[float]] = {k: [] for k in kinds}
        warm = root / "warm"
        warm.mkdir()
        shutil.copy(sources[0], warm)
        job(warm, root / "warm-out", style)  # the network's ONNX export, once: no timed job pays it
        for _ in range(args.repeats):
            for name, flags in kinds.items():
                out = root / "out"
                shutil.rmtree(out, ignore_errors=True)
                times[name].append(job(photos, out, style, *flags))
                assert len(list(out.iterdir())) == len(sources)
        ray.shutdown()
        print(f"{args.images} photos {args.width}×{args.height}, fast method ({style}), {args.cpus} CPUs, "
              f"{args.repeats} jobs each (median); local Ray runtime start {start:.1f} s (not counted)")  # fmt: skip
        base = statistics.median(times["one process"])
        print(f"{'':<20} {'job s':>8} {'images/s':>9} {'time / one process':>19}")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"{name:<20} {m:>8.2f} {args.images / m:>9.2f} {m / base:>19.2f}")
        one = [k for k in times if k.startswith("Ray, 1 ")]
        if one:
            overhead = statistics.median(times[one[0]]) / base - 1
            print(f"overhead of one Ray worker: {overhead * 100:+.1f} % (acceptance: at most +10 %)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
