"""Throughput of a folder on a local Ray runtime against the single-process run (``brushwork stylize DIR``).

    python bench/bench_ray.py [--images 200] [--width 1024 --height 768] [--repeats 3] [--workers 1 2]

Makes ``--images`` photos (crops of the sample photo, each shifted and tinted so that no two are alike) and
stylizes them with ``builtin:5`` (fast method, default runtime) three ways, each timed as a whole job from the
list of files to the last output written:

  * one process: the same code as ``brushwork stylize DIR`` (a renderer made once, then every photo in turn);
  * Ray with N workers (actors) for each N of ``--workers``, each with cores / N CPUs and as many threads, on a
    local Ray runtime started once before the timed runs (its start is printed apart: on a cluster it is already
    running). A job's time includes making its workers and loading their networks, as a user's run does.

Prints the median time and images/s of each, the ratio to one process, and the overhead of one worker
(acceptance: at most 10 %). Runs alternate between the kinds, so that a change in the machine's load falls on all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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


def single(pairs: list[tuple[Path, Path]], style: str) -> None:
    from brushwork import api, io

    render = api.renderer([style])
    for src, dst in pairs:
        picture = render.render_picture(src)
        io.save_image(picture, dst, alpha=picture.alpha)


def on_ray(pairs: list[tuple[Path, Path]], style: str, workers: int, cpus: float) -> None:
    from brushwork import cluster

    cluster.stylize_images(pairs, [style], settings=cluster.Settings(workers=workers, worker_cpus=cpus))


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
        kinds: dict[str, object] = {"one process": lambda pairs: single(pairs, style)}
        for n in args.workers:
            kinds[f"Ray, {n} worker{'s' if n > 1 else ''}"] = lambda pairs, n=n: on_ray(
                pairs, style, n, max(1.0, args.cpus / n)
            )
        times: dict[str, list[float]] = {k: [] for k in kinds}
        single(list(zip(sources[:1], [root / "warm.png"], strict=True)), style)  # the network's export, once
        for _ in range(args.repeats):
            for name, job in kinds.items():
                out = root / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                pairs = [(p, out / f"{p.stem}.png") for p in sources]
                t = time.perf_counter()
                job(pairs)  # type: ignore[operator]
                times[name].append(time.perf_counter() - t)
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
