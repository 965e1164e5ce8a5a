"""Benchmark MicroAST against the fast path: warm rendering of one photo at the same size, in the same process.

    python bench/bench_microast.py [--repeats 5] [--width 1024 --height 768] [--runtime onnxruntime|openvino]
                                   [--threads N] [--profile]

Both methods render the same photo with one style image whose per-style work (the fast path's style code,
MicroAST's style signal) is done before timing; runs alternate between the two so that drifting load on a
shared machine hits both alike. Prints the medians, the ratio (goal: MicroAST at most 0.5 s and at most 1.5× the
fast path at 1024×768), and the process CPU time per render (with ``--threads 1`` a measure of work that load
on a shared machine disturbs less than wall time). ``--profile`` prints where MicroAST's time goes, per node of
its exported graph (onnxruntime's profiler).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brushwork import io, samples, store  # noqa: E402
from brushwork.methods import fast, microast  # noqa: E402


def _threads(runtime: object, threads: int | None) -> None:
    """Make the runtime's sessions use ``threads`` threads (None: the runtime's default)."""
    if threads is None:
        return
    if isinstance(runtime, fast._OpenVinoRuntime):
        runtime._core.set_property("CPU", {"INFERENCE_NUM_THREADS": threads})
        return
    import onnxruntime as ort

    original = ort.SessionOptions

    def options() -> ort.SessionOptions:
        o = original()
        o.intra_op_num_threads = threads
        return o

    ort.SessionOptions = options  # the runtime builds its sessions lazily, with these options


def timed(fn: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def profile(runtime: str, rgb: np.ndarray, signal: np.ndarray, top: int = 15) -> None:
    import onnxruntime as ort

    path = store.export_onnx(microast.RENDER_NET, *fast._EXPORTS[microast.RENDER_NET])
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, ["CPUExecutionProvider"])
    feeds = {"image": np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), "signal": signal[None]}
    runs = 3
    for _ in range(runs):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_node: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_node[f"{e['args']['op_name']:<14} {e['name'][:-12]}"] += e["dur"]
    total = sum(by_node.values())
    print(f"\nwhere MicroAST's time goes (onnxruntime profiler, {runs} runs, {total / runs / 1000:.0f} ms per run):")
    for name, dur in by_node.most_common(top):
        print(f"  {100 * dur / total:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "openvino"])
    parser.add_argument("--threads", type=int, default=None, help="threads per network (default: the runtime's)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    photo = io.resize(io.load_image(samples.SAMPLE_PHOTO).rgb, (args.width, args.height))
    style = io.load_image(samples.SAMPLE_STYLE).rgb
    fast_stylizer = fast.FastStylizer("cpu", runtime=args.runtime)
    micro = microast.Engine([style], microast.MicroastOptions(device="cpu", runtime=args.runtime))
    micro.stylizer = microast.MicroastStylizer("cpu", args.runtime)  # its own runtime (not the shared one)
    micro.signals = np.stack([micro.stylizer.signal(style)])
    for runtime in (fast_stylizer.runtime, micro.stylizer.runtime):
        _threads(runtime, args.threads)
    target = fast_stylizer.target([style])
    runs = {"fast": lambda: fast_stylizer.render(photo, target), "microast": lambda: micro.render(photo)}
    for fn in runs.values():  # warm-up: export, session, first-run allocations
        fn()
        fn()
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            wall, cpu = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)

    threads = args.threads or "default"
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.width}x{args.height};", end=" ")
    print(f"runtime {args.runtime}, {threads} threads; {args.repeats} alternating warm runs each; medians")
    for name in runs:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"  {name:<9} wall {1000 * wall:8.0f} ms (min {1000 * min(walls[name]):6.0f})   cpu {1000 * cpu:8.0f} ms")
    # the ratio of medians of paired runs' ratios: each pair ran back to back, under about the same load
    ratio = statistics.median(m / f for m, f in zip(walls["microast"], walls["fast"], strict=True))
    cpu_ratio = statistics.median(m / f for m, f in zip(cpus["microast"], cpus["fast"], strict=True))
    ms = 1000 * statistics.median(walls["microast"])
    print(f"  microast / fast: wall {ratio:.2f}, cpu {cpu_ratio:.2f}   (goal: <= 1.5; microast <= 500 ms: {ms:.0f} ms)")
    if args.profile:
        profile(args.runtime, photo, micro.signals[0])


if __name__ == "__main__":
    main()
