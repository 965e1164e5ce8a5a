"""Benchmark MicroAST against the fast path: warm rendering of one photo at the same size, in the same process.

    python bench/bench_microast.py [--repeats 5] [--width 1024 --height 768] [--runtime auto|onnxruntime|openvino]
                                   [--threads N] [--graphs] [--profile] [--openvino-profile]

Both methods render the same photo through the public API (``brushwork.api.renderer(...).render``) with one
style image whose per-style work (the fast path's style code, MicroAST's style signal) is done before timing
(warm: with ``--runtime auto``, the default, that is OpenVINO once a size repeats). Runs alternate between the
two so that drifting load on a shared machine hits both alike. Prints the medians, the ratio of paired runs
(goal: MicroAST at most 0.5 s and at most 1.5× the fast path at 1024×768), and the process CPU time per render
(with ``--threads 1`` a measure of work that load on a shared machine disturbs less than wall time).
``--graphs`` also times the two networks alone in each runtime on 1 thread (CPU time per run, paired ratios).
``--profile`` prints where MicroAST's time goes, per node of its onnxruntime graph (onnxruntime's profiler).
``--openvino-profile`` does the same in OpenVINO (the warm runtime) for both networks, and prints the floor: the
time of MicroAST's large convolutions alone against the whole fast path.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brushwork import api, io, samples, store  # noqa: E402
from brushwork.methods import fast, microast  # noqa: E402


def _ort_threads(threads: int | None) -> None:
    """Make onnxruntime sessions created from now on use ``threads`` threads (None: its default)."""
    if threads is None:
        return
    import onnxruntime as ort

    original = ort.SessionOptions

    def options() -> ort.SessionOptions:
        o = original()
        o.intra_op_num_threads = threads
        return o

    ort.SessionOptions = options  # the runtimes build their sessions lazily, with these options


def timed(fn: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def networks(photo: np.ndarray, signal: np.ndarray, code: np.ndarray) -> dict[str, tuple[str, list[np.ndarray]]]:
    """The two networks the benchmark compares and their inputs for ``photo``: name → (store network, arrays)."""
    image = np.ascontiguousarray(photo.transpose(2, 0, 1)[None])
    return {"microast": (microast.RENDER_NET, [image, signal[None]]), "fast": ("ghiasi-transformer", [image, code])}


def openvino_model(core: Any, net: str, arrays: list[np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
    """``net`` as the OpenVINO runtime compiles it (``fast.for_openvino``), reshaped for ``arrays``; and its feeds."""
    model = fast.for_openvino(core.read_model(str(store.export_onnx(net, *fast._EXPORTS[net]))))
    names = [i.get_any_name() for i in model.inputs]
    model.reshape({n: list(a.shape) for n, a in zip(names, arrays, strict=True)})
    return model, dict(zip(names, arrays, strict=True))


def onnxruntime_session(net: str, threads: int = 1, **options: Any) -> Any:
    """``net`` as the onnxruntime runtime runs it (its cached variant, ``fast._ort_variant``)."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.log_severity_level = 3
    for key, value in options.items():
        setattr(o, key, value)
    path = fast._ort_variant(store.export_onnx(net, *fast._EXPORTS[net]))
    return ort.InferenceSession(str(path), o, ["CPUExecutionProvider"])


def profile(rgb: np.ndarray, signal: np.ndarray, top: int = 15) -> None:
    with tempfile.TemporaryDirectory() as folder:  # the profiler's file, not in the working directory
        prefix = str(Path(folder) / "profile")
        session = onnxruntime_session(microast.RENDER_NET, enable_profiling=True, profile_file_prefix=prefix)
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
    print(f"\nwhere MicroAST's time goes (onnxruntime profiler, 1 thread, {total / runs / 1000:.0f} ms per run):")
    for name, dur in by_node.most_common(top):
        print(f"  {100 * dur / total:5.1f}%  {name}")


def openvino_profile(photo: np.ndarray, signal: np.ndarray, code: np.ndarray, repeats: int, top: int = 12) -> None:
    """Where the warm runtime's time goes: both networks in OpenVINO (as the runtime compiles them, default
    threads, per-node counters, medians over ``repeats`` runs), by kind of node and MicroAST's largest nodes;
    then the floor: MicroAST's large convolutions alone (3×3 and larger, at least 16 channels in and out or a
    9×9 layer) against the whole fast path, the ratio that would remain if everything else in MicroAST were free."""
    import openvino as ov

    nets = networks(photo, signal, code)
    core = ov.Core()
    per_node: dict[str, dict[tuple[str, str], list[float]]] = {}
    walls: dict[str, list[float]] = {}
    for name, (net, arrays) in nets.items():
        model, feeds = openvino_model(core, net, arrays)
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
        large = set()  # the names of the large convolutions (profiling keeps the model's node names)
        for op in model.get_ordered_ops():
            weight = op.input(1).get_partial_shape() if op.get_type_name() == "Convolution" else None
            if weight is not None and weight.is_static:  # the decoder's are built from the signal in the graph
                o, i, k, _ = (d.get_length() for d in weight)
                if k >= 3 and (min(o, i) >= 16 or k >= 9):
                    large.add(op.get_friendly_name())
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
        request.infer(feeds)
        nodes: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        walls[name] = []
        for _ in range(repeats):
            walls[name].append(timed(lambda r=request, f=feeds: r.infer(f))[0])
            for info in request.get_profiling_info():
                kind = "large convolution" if info.node_name in large else info.node_type
                nodes[(kind, info.node_name)].append(info.real_time.total_seconds())
        per_node[name] = nodes
    for name in nets:
        nodes = per_node[name]
        kinds: collections.Counter[str] = collections.Counter()
        for (kind, _), times in nodes.items():
            kinds[kind] += statistics.median(times)
        total = sum(kinds.values())
        wall = 1000 * statistics.median(walls[name])
        print(f"\n{name} in OpenVINO: {wall:.0f} ms per run (nodes {1000 * total:.0f} ms):")
        for kind, t in kinds.most_common(8):
            print(f"  {1000 * t:7.1f} ms {100 * t / total:5.1f}%  {kind}")
    nodes = per_node["microast"]
    print(f"\nMicroAST's {top} largest nodes:")
    for (kind, node), times in sorted(nodes.items(), key=lambda kv: -statistics.median(kv[1]))[:top]:
        print(f"  {1000 * statistics.median(times):7.1f} ms  {kind:<18} {node}")
    conv = sum(statistics.median(t) for (kind, _), t in nodes.items() if kind == "large convolution")
    fast_total = sum(statistics.median(t) for t in per_node["fast"].values())
    print(
        f"floor: MicroAST's large convolutions alone take {1000 * conv:.0f} ms, {conv / fast_total:.2f}x the whole fast"
        f" path ({1000 * fast_total:.0f} ms): the ratio left if everything else in MicroAST were free"
    )


def graphs(rgb: np.ndarray, signal: np.ndarray, code: np.ndarray, repeats: int) -> None:
    """The two networks alone (no API), each runtime on 1 thread: CPU time per run, the work a render costs
    with less disturbance from other processes than wall time; runs alternate, ratios are of paired runs."""
    import openvino as ov

    runs = {}
    core = ov.Core()
    for name, (net, arrays) in networks(rgb, signal, code).items():
        session = onnxruntime_session(net)
        feeds = dict(zip([i.name for i in session.get_inputs()], arrays, strict=True))
        runs[("onnxruntime", name)] = lambda s=session, f=feeds: s.run(None, f)
        model, inputs = openvino_model(core, net, arrays)
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}
        request = core.compile_model(model, "CPU", config).create_infer_request()
        runs[("openvino", name)] = lambda r=request, f=inputs: r.infer(f)
    for fn in runs.values():
        fn()
    cpus: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            cpus[key].append(timed(fn)[1])
    print(f"\nthe networks alone, 1 thread, CPU time per run (median, min of {repeats}):")
    for runtime in ("onnxruntime", "openvino"):
        m, f = cpus[(runtime, "microast")], cpus[(runtime, "fast")]
        ratio = statistics.median(a / b for a, b in zip(m, f, strict=True))
        print(
            f"  {runtime:<12} microast {1000 * statistics.median(m):5.0f} ms (min {1000 * min(m):5.0f})"
            f"   fast {1000 * statistics.median(f):5.0f} ms (min {1000 * min(f):5.0f})   microast / fast {ratio:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--runtime", default="auto", choices=["auto", "onnxruntime", "openvino"])
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime's threads (default: its own)")
    parser.add_argument("--profile", action="store_true", help="where MicroAST's time goes, node by node (onnxruntime)")
    parser.add_argument(
        "--openvino-profile", action="store_true", help="where the warm runtime's time goes, and the floor (OpenVINO)"
    )
    parser.add_argument("--graphs", action="store_true", help="also time the two networks alone, 1 thread each")
    args = parser.parse_args()

    photo = io.resize(io.load_image(samples.SAMPLE_PHOTO).rgb, (args.width, args.height))
    style = io.load_image(samples.SAMPLE_STYLE).rgb
    _ort_threads(args.threads)
    renderers = {m: api.renderer([style], method=m, device="cpu", runtime=args.runtime) for m in ("fast", "microast")}
    runs = {m: (lambda r=r: r.render(photo)) for m, r in renderers.items()}
    for fn in runs.values():  # warm-up: export, session, compilation (auto: OpenVINO from a size's second run)
        for _ in range(3):
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
    signal = renderers["microast"]._engine("all", renderers["microast"].styles).signals[0]
    code = renderers["fast"]._engine("all", renderers["fast"].styles).target[1][None].astype(np.float32)
    if args.graphs:
        graphs(photo, signal, code, args.repeats)
    if args.openvino_profile:
        openvino_profile(photo, signal, code, args.repeats)
    if args.profile:
        profile(photo, signal)


if __name__ == "__main__":
    main()
